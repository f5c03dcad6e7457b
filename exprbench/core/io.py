"""Atomic file output: every file exprbench writes appears whole or not at all.

A writer gets a temporary file in the destination's folder; on success it is flushed, fsynced and
renamed over the destination (``os.replace`` is atomic on POSIX), on any error it is removed. A
crash or SIGKILL at any moment therefore leaves the previous version of the file, never a partial one.
A full disk (ENOSPC, or EDQUOT: a quota) while writing is raised as an ``OSError`` of that errno whose
``filename`` is the destination (:func:`no_space`), whatever library was writing; the CLI reports it in one
line (exit code 1: an environment failure, not bad input).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from exprbench.core.errors import UserError

TEMP_PATTERN = ".*.tmp"  # what :func:`atomic_open` names its temporary files (``.<name>.<random>.tmp``)
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def no_space(e: BaseException, path: str | os.PathLike | None = None) -> OSError | None:
    """``e`` as the one error a full disk gives (``OSError(ENOSPC|EDQUOT, "No space left on device", path)``),
    or None when ``e`` is not a full disk. ``path`` names the file being written when ``e`` does not."""
    if not isinstance(e, OSError) or e.errno not in NO_SPACE_ERRNOS:
        return None
    where = e.filename if e.filename is not None else (str(path) if path is not None else None)
    return OSError(e.errno, os.strerror(e.errno), where)


def current_umask() -> int:
    """The process's umask (read from ``/proc/self/status`` on Linux, else by setting and restoring it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing (``"w"`` text or ``"wb"`` binary); rename on success."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), got mode {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a normal file is 0666 minus the umask
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        full = no_space(e)
        if full is not None:  # the temporary file's name means nothing to the user: name the destination
            raise OSError(full.errno, full.strerror, str(path)) from None
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path) as fh:
        fh.write(text)


def atomic_torch_save(obj: Any, dest: str | os.PathLike) -> None:
    """``torch.save`` ``obj`` to ``dest`` atomically.

    The object is serialized in memory first and written in one call: torch's own writer reports a failed
    write as a ``RuntimeError`` about stream positions, which would hide a full disk.

    Raises:
        OSError: the file cannot be written (ENOSPC/EDQUOT with ``filename`` = ``dest``, see :func:`no_space`).
    """
    import io as _io

    import torch

    buf = _io.BytesIO()
    torch.save(obj, buf)
    with atomic_open(dest, "wb") as fh:
        fh.write(buf.getbuffer())


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf, also numpy's) replaced by None, recursively
    through dicts, lists and tuples (tuples become lists), so the result is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return json_safe(obj.item())
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted, strict JSON atomically: NaN and +-inf are written as
    ``null`` (a bare ``NaN`` is not JSON; see :func:`json_safe`).

    Raises:
        ValueError: ``obj`` holds something JSON cannot represent.
    """
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False)
    with atomic_open(path) as fh:
        fh.write(text + "\n")


def content_key(parts: dict, length: int = 24) -> str:
    """The first ``length`` hex digits of the sha256 of ``parts`` as sorted-key JSON (sets as sorted lists):
    the cache keys of references, predictions and CAS, made from everything the cached value depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=sorted).encode()).hexdigest()[:length]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike) -> Any | None:
    """The parsed JSON file at ``path``, or None when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) and delete the file on release, so no
    lock file stays behind.

    Safe between processes and threads: only the holder deletes the file, and a waiter that gets the lock of
    a file deleted meanwhile sees that ``path`` no longer names the file it locked, and locks the current one.
    Needs POSIX ``flock``; elsewhere a :class:`filelock.FileLock` is held (its file stays).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        from filelock import FileLock

        with FileLock(str(path)):
            yield
        return
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
            break
        os.close(fd)  # the holder before us deleted it: lock the file that is there now
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # gone already, or a folder we may not delete in: it stays
            os.unlink(path)  # still locked by us: no one else holds it
        os.close(fd)


def cached_json(path: str | os.PathLike, compute: Callable[[], Any], keep: Callable[[Any], bool] | None = None) -> Any:
    """The JSON cached at ``path``, else ``compute()``'s result, written there atomically when ``keep(result)``.

    One process computes it: another asking for the same ``path`` meanwhile waits on ``<path>.lock``
    (:func:`file_lock`, deleted after use) and then reads it, so runners sharing a cache (two ``bench``
    processes on one ``--out``, Ray workers on one machine) never compute it twice. A file that is not valid
    JSON is computed again.

    Args:
        path: the cache file (its folder is created); compute: makes the object (JSON-serialisable).
        keep: whether a result is cached (default: every result).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(f"{path}.lock"):
        cached = read_json(path)
        if cached is not None:
            return cached
        obj = compute()
        if keep is None or keep(obj):
            write_json(path, obj)
        return obj


def read_json_object(path: str | os.PathLike, what: str = "a JSON object", hint: str = "") -> dict:
    """The JSON object in the file at ``path``, for files a user may hand-edit or a killed run may tear.

    Args:
        path: the file (it must exist; callers decide what a missing file means).
        what: what the object is, for the message (``a JSON object (a run config)``).
        hint: what to do about a malformed file, appended to its message.

    Raises:
        UserError: unreadable, not valid JSON (names the line), or not an object.
    """
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg}){'; ' + hint if hint else ''}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected {what}, got {type(data).__name__}")
    return data


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_open` writes left in ``folder`` (not recursive).

    Only call it where no other process writes at the same time (e.g. a run directory being started).
    Returns the removed paths.
    """
    removed = []
    for p in Path(folder).glob(TEMP_PATTERN):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _can_create_in(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".exprbench-probe-"):
            return True
    except OSError:
        return False


def check_writable_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work starts, that the folder ``path`` can be created (if missing) and written.

    Nothing is created: the nearest existing ancestor is probed with an anonymous temporary file.

    Args:
        path: the folder that will be written.
        what: how the user gave it (``--out``, ``$EXPRBENCH_CACHE``), for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        UserError: ``path`` is a file, or its folder cannot be written (no permission, read-only).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} {p}: is a file, expected a folder")
    anc = _nearest_existing(p)
    if not anc.is_dir():
        raise UserError(f"{what} {p}: {anc} is a file, so the folder cannot be created")
    if not _can_create_in(anc):
        where = "" if anc == p.absolute() else f" (its nearest existing folder {anc})"
        raise UserError(f"{what} {p}: cannot write there{where}: permission denied or read-only")
    return p


def check_writable_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work starts, that the file ``path`` can be written atomically (its folder
    can be created and written, and ``path`` is not a folder).

    Raises:
        UserError: ``path`` is a folder, or its folder cannot be written.
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p}: is a folder, expected a file name (e.g. {p / 'out.png'})")
    check_writable_dir(p.parent, what=f"{what} {p}: folder")
    return p
