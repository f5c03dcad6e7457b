"""The decoded-data cache: one file per (source, preprocessing), written atomically, never trusted when damaged.

Decoding a dataset happens once; the result (a dict of tensors and plain values, ``torch.save`` format)
is kept under ``$EXPRBENCH_CACHE/data/`` (default ``~/.cache/exprbench/data/``) in a file named by the
reader from the source's path, sizes and modification times (``fer2013-<key>.pt``,
``celeba-<key>.pt``). Every dataset goes through :func:`cached`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from exprbench.core.errors import DataError, UserError
from exprbench.core.io import atomic_torch_save, check_writable_dir


def cache_dir() -> Path:
    """The cache root: ``$EXPRBENCH_CACHE`` or ``~/.cache/exprbench``."""
    return Path(os.environ.get("EXPRBENCH_CACHE") or Path.home() / ".cache" / "exprbench")


def check_cache_writable(folder: Path) -> None:
    """Check, before a long decode, that a cache entry can be written into ``folder``.

    Raises:
        DataError: the folder cannot be created or written (the message names it and the way out).
    """
    what = "$EXPRBENCH_CACHE" if os.environ.get("EXPRBENCH_CACHE") else "the cache (~/.cache/exprbench)"
    try:
        check_writable_dir(folder, what=f"{what} folder")
    except UserError as e:
        raise DataError(f"{e}; set EXPRBENCH_CACHE to a writable folder") from None


def drop_cache_entry(cfile: Path) -> None:
    """Delete a damaged cache entry; on a read-only shared cache it is just not used."""
    try:
        cfile.unlink(missing_ok=True)
    except OSError:
        pass


def cached(cfile: Path, version: int, build: Callable[[], dict], use_cache: bool = True) -> dict:
    """The decoded data of ``cfile`` when it holds a readable entry of ``version``, else ``build()``'s.

    Args:
        cfile: the cache entry (``cache_dir() / "data" / "<dataset>-<key>.pt"``).
        version: the reader's cache version; an entry of another version is rebuilt.
        build: decodes the source; returns a dict of tensors and plain values (``weights_only``
            loadable) with ``"version": version``.
        use_cache: read and write the entry (False: always ``build()``, nothing written).

    Returns:
        The dict, loaded with ``weights_only=True`` on the CPU or freshly built (then written atomically;
        processes missing the same entry at once decode it once: the others wait on its lock in
        ``<cache>/locks/``).

    Raises:
        DataError: the cache folder cannot be written (checked before decoding), or what ``build`` raises.
    """
    if not use_cache:
        return build()
    raw = _load(cfile, version)
    if raw is not None:
        return raw
    check_cache_writable(cfile.parent)
    from filelock import FileLock

    # one process decodes: another asking for the same entry meanwhile waits, then reads it (the lock files
    # live apart, in <cache>/locks/, so the data folder holds entries only)
    locks = cfile.parent.parent / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{cfile.name}.lock")):
        raw = _load(cfile, version)
        if raw is None:
            raw = build()
            atomic_torch_save(raw, cfile)
    return raw


def _load(cfile: Path, version: int) -> dict | None:
    """The entry at ``cfile`` when it is readable and of ``version``; a damaged or stale one is deleted."""
    if not cfile.exists():
        return None
    try:
        raw = torch.load(cfile, map_location="cpu", weights_only=True)
        if raw.get("version") == version:
            return raw
    except Exception:  # a damaged cache entry is rebuilt, never trusted
        pass
    drop_cache_entry(cfile)
    return None
