"""What an evaluation says while it runs: one line per protocol as it starts and ends, a line for
every one-time computation (reference statistics, real-data references), and progress bars on a terminal.

:func:`~exprbench.metrics.run.evaluate.evaluate_run` calls the hooks of an :class:`EvalReporter`; the base
class is silent (the library default), :class:`ConsoleReporter` prints (the CLI's). Another front end
(``exprbench bench``'s live display) can subclass :class:`EvalReporter` and override the hooks it needs.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


class EvalReporter:
    """Silent hooks of an evaluation; subclass and override to show progress.

    Call order per protocol ``i`` of ``total`` (1-based): :meth:`protocol_start`, any number of
    :meth:`note` and :meth:`bar`, then :meth:`protocol_end`.
    """

    def begin(self, names: list[str], what: str) -> None:
        """The evaluation starts: protocol ``names`` in order; ``what`` names the run or image source."""

    def protocol_start(self, index: int, total: int, name: str, what: str) -> None:
        """Protocol ``name`` (``index`` of ``total``) starts; ``what`` says in words what it computes."""

    def note(self, index: int, total: int, name: str, text: str) -> None:
        """A phase of protocol ``name`` worth a line, e.g. ``train reference statistics, one-time, 28,709 images``."""

    @contextlib.contextmanager
    def bar(self, desc: str, total: int) -> Iterator[Callable[[int], None]]:
        """A progress bar over ``total`` items; yields ``advance(n)``."""
        yield lambda n=1: None

    def protocol_end(self, index: int, total: int, name: str, entry: dict, reference: dict | None, seconds: float) -> None:
        """Protocol ``name`` ended: its eval.json ``entry``, its real-data ``reference`` entry, wall ``seconds``."""

    def end(self, result: dict) -> None:
        """The evaluation ended with eval.json content ``result``."""


def format_value(v) -> str:
    """A metric value in 4 significant digits (``-`` for None)."""
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return f"{v:.4g}" if abs(v) >= 1 or abs(v) < 1e-2 else f"{v:.4f}"


def entry_summary(entry: dict) -> str:
    """``9.14`` / ``0.012 ± 0.003`` for an ok entry, ``skipped (reason)`` / ``unavailable (reason)`` otherwise."""
    if entry.get("status") != "ok":
        reason = entry.get("reason")
        return f"{entry.get('status')}" + (f" ({reason})" if reason else "")
    text = format_value(entry.get("value"))
    if entry.get("std") is not None:
        text += f" ± {entry['std']:.2g}"
    return text


class ConsoleReporter(EvalReporter):
    """Lines on a rich console (stderr by default) and, on a terminal, rich progress bars.

    Args:
        console: a ``rich.console.Console`` (default: one on stderr).
        bars: show progress bars; None: only when the console is a terminal (quiet in logs and pipes).
    """

    def __init__(self, console=None, bars: bool | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.bars = self.console.is_terminal if bars is None else bool(bars)
        self._progress = None
        self._open = 0

    def _line(self, text: str) -> None:
        target = self._progress.console if self._progress is not None else self.console
        target.print(text, highlight=False, markup=False, soft_wrap=True)

    def begin(self, names: list[str], what: str) -> None:
        self._line(f"evaluating {what}: {len(names)} protocol{'s' if len(names) != 1 else ''} ({', '.join(names)})")

    def protocol_start(self, index: int, total: int, name: str, what: str) -> None:
        self._line(f"[{index}/{total}] {name}: {what}")

    def note(self, index: int, total: int, name: str, text: str) -> None:
        self._line(f"[{index}/{total}] {name}: {text}")

    @contextlib.contextmanager
    def bar(self, desc: str, total: int) -> Iterator[Callable[[int], None]]:
        if not self.bars or total <= 0:
            yield lambda n=1: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if self._progress is None:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True)
            self._progress.start()
        self._open += 1
        task = self._progress.add_task(desc, total=total)
        state = {"done": 0, "removed": False}

        def advance(n: int = 1) -> None:
            if state["removed"]:
                return
            state["done"] += n
            self._progress.update(task, completed=min(state["done"], total))
            if state["done"] >= total:  # finished: take it off the screen at once (the next may start)
                state["removed"] = True
                self._progress.remove_task(task)

        try:
            yield advance
        finally:
            if not state["removed"]:
                self._progress.remove_task(task)
            self._open -= 1
            if self._open == 0:
                self._progress.stop()
                self._progress = None

    def protocol_end(self, index: int, total: int, name: str, entry: dict, reference: dict | None, seconds: float) -> None:
        text = f"[{index}/{total}] {name}: {entry_summary(entry)}"
        if entry.get("status") == "ok":
            text += f" ({seconds:.1f} s)"
            if reference and reference.get("status") == "ok":
                n = reference.get("n_samples")
                text += f"; real data {format_value(reference.get('value'))}" + (f" (N={n:,})" if isinstance(n, int) else "")
        self._line(text)
