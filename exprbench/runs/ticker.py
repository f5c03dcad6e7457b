"""A progress line a log can show: when stderr is not a terminal (a log file, CI, ``make train 2>&1 | cat``),
long loops print one plain line at a steady interval instead of a progress bar that only a terminal draws."""

from __future__ import annotations

import sys
import time
from typing import TextIO

INTERVAL_S = 30.0


def fmt_duration(seconds: float) -> str:
    """``3725`` -> ``1h02m``, ``95`` -> ``1m35s``, ``7`` -> ``7s``."""
    s = int(round(max(seconds, 0.0)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class LogTicker:
    """Prints ``desc: step 120/3,000 (4%), 56.1 img/s, 2m08s elapsed, ETA 54m40s`` every ``interval`` seconds.

    Args:
        desc: what runs (e.g. ``cgan/default``); total: steps in all (None: unknown, no ETA);
        initial: steps already done (a resumed run); images_per_step: batch size (img/s);
        interval: seconds between lines (default :data:`INTERVAL_S`); stream: where to print (default stderr);
        enabled: None = only when ``stream`` is not a terminal.
    """

    def __init__(self, desc: str, total: int | None, initial: int = 0, images_per_step: int = 1,
                 interval: float | None = None, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.desc, self.total, self.n, self.per = desc, total, initial, images_per_step
        self.interval = INTERVAL_S if interval is None else interval
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = (not isatty()) if enabled is None else enabled
        self.t0 = self.t_last = time.perf_counter()
        self.n0 = initial

    def line(self, now: float) -> str:
        """The progress line at time ``now`` (perf_counter seconds)."""
        done = self.n - self.n0
        rate = done / max(now - self.t0, 1e-9)
        head = f"{self.desc}: step {self.n:,}" + (f"/{self.total:,} ({100 * self.n / self.total:.0f}%)" if self.total else "")
        eta = f", ETA {fmt_duration((self.total - self.n) / rate)}" if self.total and rate > 0 else ""
        return f"{head}, {rate * self.per:.1f} img/s, {fmt_duration(now - self.t0)} elapsed{eta}"

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps; print a line when ``interval`` seconds have passed since the last one."""
        self.n += n
        now = time.perf_counter()
        if self.enabled and now - self.t_last >= self.interval:
            self.t_last = now
            print(self.line(now), file=self.stream, flush=True)
