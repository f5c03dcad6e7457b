"""Claims: at most one runner (local or a Ray worker, on any host) works on a grid point at a time.

A runner claims a grid point's run directory before it trains or evaluates it, and gives the claim back
when the point's ``record.json`` is written. A run directory then holds::

    claim.lock      the lock file: a ``filelock.SoftFileLease`` marker naming the holder's host, pid,
                    process start and claim token; the holder's background heartbeat thread refreshes
                    its mtime every ``lease_s / 6`` seconds. Removed on release.
    claim.json      who holds it, for people and for progress displays: owner, runner, host, pid,
                    claimed_at (Unix time). Removed on release.
    attempts.jsonl  one line per attempt to run the point: attempt, owner, runner, host, pid,
                    started_at, resume_step (the newest checkpoint it resumes from, 0 = fresh),
                    took_over (the claim was taken from a dead or silent holder).

A claim is taken over when its holder is gone: at once when the holder ran on this host and its
process has exited (SIGKILL included), and after ``lease_s`` seconds without a heartbeat otherwise (a
dead node, a hung process). The new holder resumes the run from its last checkpoint. Every runner that
works on one results folder must use the same ``lease_s`` (``$EXPRBENCH_CLAIM_LEASE_S``, default 60).
The marker protocol needs no lock daemon, so it works on a shared filesystem such as NFS.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

from filelock import LeaseSettingsMismatch, SoftFileLease, Timeout

from exprbench.core.errors import UserError
from exprbench.core.io import read_json, write_json

CLAIM_LOCK, CLAIM_INFO, ATTEMPTS = "claim.lock", "claim.json", "attempts.jsonl"


def default_lease_s() -> float:
    """Seconds without a heartbeat after which a claim may be taken over (``$EXPRBENCH_CLAIM_LEASE_S``, 60).

    Raises:
        UserError: the variable is not a positive number.
    """
    raw = os.environ.get("EXPRBENCH_CLAIM_LEASE_S", "60")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise UserError(f"EXPRBENCH_CLAIM_LEASE_S={raw!r} must be a positive number of seconds")
    return value


def this_host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def holder(run_dir: Path, lease_s: float | None = None) -> dict | None:
    """Who holds the claim on ``run_dir`` and whether it looks alive, or None when it is unclaimed.

    Returns ``claim.json``'s fields (may be empty while a claim is being written) plus
    ``heartbeat_age_s`` (seconds since the lock file's last refresh, by this host's clock) and
    ``alive`` (heartbeat younger than half the lease, and, on this host, the holder's process exists).
    A hint for schedulers and progress displays; :meth:`Claim.acquire` is what decides.
    """
    lease_s = lease_s or default_lease_s()
    lock = Path(run_dir) / CLAIM_LOCK
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None
    info = read_json(Path(run_dir) / CLAIM_INFO) or {}
    alive = age < lease_s / 2
    if alive and info.get("host") == this_host() and isinstance(info.get("pid"), int):
        alive = _pid_alive(info["pid"])
    return {**info, "heartbeat_age_s": round(age, 1), "alive": alive}


class Claim:
    """An exclusive, heartbeat-renewed claim on one run directory (see the module docstring).

    Args:
        run_dir: the grid point's run directory (created on acquire).
        runner: what holds it, e.g. ``local`` or ``ray``; recorded in claim.json and attempts.jsonl.
        lease_s: seconds without a heartbeat before others may take the claim (default
            :func:`default_lease_s`); every runner on one results folder must agree.

    Use as ``if claim.acquire(): try: ... finally: claim.release()``.
    """

    def __init__(self, run_dir: str | os.PathLike, runner: str = "local", lease_s: float | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.runner = runner
        self.lease_s = float(lease_s or default_lease_s())
        self.owner = f"{runner}:{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.took_over = False
        self._lease: SoftFileLease | None = None

    @property
    def held(self) -> bool:
        return self._lease is not None

    @property
    def lost(self) -> bool:
        """True when another runner took this claim while it was held (this holder stalled past the lease)."""
        return self._lease is not None and self._lease.compromise is not None

    def acquire(self, wait: float = 0.0) -> bool:
        """Claim the run directory, waiting up to ``wait`` seconds; True when claimed, False when busy.

        A claim whose holder exited on this host is taken at once; one whose heartbeat stopped is taken
        once it has been seen unchanged for ``lease_s`` (so pass ``wait > lease_s`` to take it over).

        Raises:
            UserError: the lock was written by a runner with another lease length.
        """
        if self._lease is not None:
            return True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.run_dir / CLAIM_LOCK
        existed = lock_path.exists()
        lease = SoftFileLease(lock_path, lease_duration=self.lease_s, heartbeat_interval=self.lease_s / 6,
                              thread_local=False)
        try:
            lease.acquire(timeout=wait, poll_interval=min(1.0, max(self.lease_s / 20, 0.05)))
        except Timeout:
            return False
        except LeaseSettingsMismatch:
            raise UserError(
                f"{lock_path} was written by a runner with another claim lease: set EXPRBENCH_CLAIM_LEASE_S "
                f"to the same value ({self.lease_s:g} here) for every runner on this results folder"
            ) from None
        self._lease = lease
        self.took_over = existed
        write_json(self.run_dir / CLAIM_INFO, {"owner": self.owner, "runner": self.runner, "host": this_host(),
                                               "pid": os.getpid(), "claimed_at": round(time.time(), 3),
                                               "lease_s": self.lease_s})
        return True

    def log_attempt(self, resume_step: int) -> int:
        """Append this attempt to ``attempts.jsonl`` (only the holder writes it); returns the attempt number."""
        n = len(read_attempts(self.run_dir)) + 1
        line = json.dumps({"attempt": n, "owner": self.owner, "runner": self.runner, "host": this_host(),
                           "pid": os.getpid(), "started_at": round(time.time(), 3), "resume_step": resume_step,
                           "took_over": self.took_over}) + "\n"
        fd = os.open(self.run_dir / ATTEMPTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write of one short line: whole or absent after a crash
            os.fsync(fd)
        finally:
            os.close(fd)
        return n

    def release(self) -> None:
        """Give the claim back (removes claim.json and the lock file). Safe to call when not held."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        info = read_json(self.run_dir / CLAIM_INFO) or {}
        if info.get("owner") == self.owner and lease.compromise is None:
            (self.run_dir / CLAIM_INFO).unlink(missing_ok=True)
        lease.release()

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_attempts(run_dir: Path) -> list[dict]:
    """The parsed lines of ``run_dir/attempts.jsonl`` (a torn last line is skipped)."""
    try:
        text = (Path(run_dir) / ATTEMPTS).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
