"""What a training run records as it goes (the harness's bookkeeping; the files: :mod:`exprbench.runs.layout`).

``train.jsonl`` gets one record per log window: each log key's mean over the window's steps that returned
it, img/s and the training time so far; ``curve.jsonl`` gets the eval hook's values; TensorBoard gets the
same scalars and the sample sheets; a progress bar (on a terminal) or a plain line every 30 s (in a log)
shows how far the run is.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from exprbench.runs.layout import CURVE_LOG, TENSORBOARD, TRAIN_LOG, read_log_records


class TrainingRecorder:
    """Opens a run directory's logs for a training run that starts (or resumes) at ``step``.

    Args:
        run_dir: the run directory.
        step: the step the run starts at (TensorBoard events after it, left by a killed run, are purged).
        title: what runs, e.g. ``cgan/default`` (the bar's and the log line's label).
        total: the step budget (None: a time budget only).
        batch_size: images per step (img/s).
        progress: show a progress bar (on a terminal), else a log line every 30 s; False: neither.
    """

    def __init__(self, run_dir: Path, step: int, title: str, total: int | None, batch_size: int,
                 progress: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        from exprbench.runs.ticker import LogTicker

        self.batch_size = batch_size
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD), purge_step=step)
        self.curve = run_dir / CURVE_LOG
        done = [rec["step"] for _, rec in read_log_records(self.curve)[0]] if self.curve.exists() else []
        self.last_eval = done[-1] if done else -1  # the step of the newest eval record (-1: none)
        self.bar = tqdm(total=total, initial=step, disable=None if progress else True,
                        desc=title, unit="step", dynamic_ncols=True)
        self.ticker = LogTicker(title, total, step, batch_size,
                                enabled=None if progress else False)  # a line every 30 s where no bar is drawn
        self._sums: dict[str, float] = {}  # per log key: the sum over the window's steps that returned it
        self._counts: dict[str, int] = {}  # ... and how many did (a key a model logs on some steps only is not diluted)
        self._steps, self._t_window = 0, time.perf_counter()
        self.log = open(run_dir / TRAIN_LOG, "a")

    def add_step(self, logs: dict[str, float]) -> None:
        """Count one finished step: add its log values to the window and advance the bar and the log line."""
        for k, v in logs.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
            self._counts[k] = self._counts.get(k, 0) + 1
        self._steps += 1
        self.bar.update(1)
        self.ticker.update(1)

    def write_window(self, step: int, epochs: float, train_seconds: float) -> None:
        """Write the window's record to train.jsonl, TensorBoard and the bar's postfix, and start a new window."""
        now = time.perf_counter()
        img_s = self._steps * self.batch_size / max(now - self._t_window, 1e-9)
        rec = {"step": step, "epoch": round(epochs, 4),
               **{k: v / self._counts[k] for k, v in self._sums.items()}, "img_s": img_s,
               "train_seconds": round(train_seconds, 3)}
        self.log.write(json.dumps(rec) + "\n")
        self.log.flush()
        for k, v in rec.items():
            if k != "step":
                self.writer.add_scalar(k, v, step)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in rec.items() if k not in ("step", "train_seconds")})
        self._sums, self._counts, self._steps, self._t_window = {}, {}, 0, now

    def add_eval(self, step: int, values: dict[str, float]) -> None:
        """Append the eval hook's values at ``step`` to curve.jsonl and to TensorBoard (``eval/<name>``)."""
        with open(self.curve, "a") as fh:
            fh.write(json.dumps({"step": step, **values}) + "\n")
        for k, v in values.items():
            self.writer.add_scalar(f"eval/{k}", v, step)

    def add_sheet(self, sheet: Any, step: int) -> None:
        """Show a sample sheet (a PIL image) in TensorBoard's Images tab (HWC uint8; gray gets a channel axis)."""
        arr = np.asarray(sheet)
        self.writer.add_image("samples", arr if arr.ndim == 3 else arr[:, :, None], step, dataformats="HWC")

    def close(self, failing: bool) -> None:
        """Close train.jsonl, the bar and TensorBoard; ``failing`` (an error is being raised): ignore an OSError
        of closing, so that it does not replace that error."""
        for close in (self.log.close, self.bar.close, self.writer.close):
            with contextlib.suppress(OSError) if failing else contextlib.nullcontext():
                close()
