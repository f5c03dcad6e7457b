"""Ctrl-C during training: the first one asks the training loop to stop at the end of the current step (and
save it), a second one stops at once."""

from __future__ import annotations

import signal
import threading


class StopOnSigint:
    """While installed, the first Ctrl-C (SIGINT) only sets ``requested`` (the training loop stops at
    the end of the current step and saves it); a second one raises KeyboardInterrupt at once.

    Installed only in the main thread and only over Python's default SIGINT handler (a process that
    ignores SIGINT, or set its own handler, keeps it).
    """

    def __init__(self) -> None:
        self.requested = False
        self._installed = False

    def install(self) -> "StopOnSigint":
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            self.restore()
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False
