"""Damaged and hostile inputs for the fault campaign and its tests: edited weights headers, images and arrays
whose headers claim huge sizes, a baseline nested deeper than Python recurses (each writes a small file), and
a simulated full disk (:func:`full_fdopen`)."""

from __future__ import annotations

import errno
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence


def _split(raw: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _join(header: dict, data: bytes) -> bytes:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads its header to 8 bytes
    return struct.pack("<Q", len(text)) + text + data


def edit_weights(path: str | Path, edit: Callable[[dict], Any] | None = None, zero: str | None = None,
                 rehash_tensors: bool = False, resign: bool = False) -> None:
    """Rewrite a ``weights.safetensors`` in place as someone editing it by hand would.

    Args:
        path: the file.
        edit: ``edit(meta)`` changes the exprbench metadata dict in place (spec, step, ...).
        zero: the name of a tensor whose bytes become zeros.
        rehash_tensors: store the edited tensors' ``tensors_sha256`` (as a careful editor would).
        resign: store a fresh ``sha256`` signature over the edited metadata and tensors too.
    """
    from safetensors.torch import load as load_bytes

    from exprbench.runs.weights import signature, tensors_sha256

    path = Path(path)
    header, data = _split(path.read_bytes())
    if zero is not None:
        a, b = header[zero]["data_offsets"]
        data = data[:a] + bytes(b - a) + data[b:]
    meta = json.loads(header["__metadata__"]["exprbench"])
    if edit is not None:
        edit(meta)
    digest = tensors_sha256(load_bytes(_join(header, data)))
    if rehash_tensors or resign:
        meta["tensors_sha256"] = digest
    if resign:
        meta["sha256"] = signature(meta, digest)
    header["__metadata__"]["exprbench"] = json.dumps(meta, sort_keys=True)
    path.write_bytes(_join(header, data))


def as_old_format(path: str | Path) -> None:
    """Turn a weights file into the first format (``exprbench-weights/1``: tensors signed, metadata not)."""
    from exprbench.runs.weights import OLD_FORMAT

    def old(meta: dict) -> None:
        meta["format"] = OLD_FORMAT
        meta.pop("sha256", None)

    edit_weights(path, old)


def first_tensor(path: str | Path) -> str:
    """The name of the first tensor of a safetensors file."""
    header, _ = _split(Path(path).read_bytes())
    return sorted(k for k in header if k != "__metadata__")[0]


def huge_png(path: str | Path, side: int = 15000) -> Path:
    """A PNG whose header says ``side`` x ``side`` pixels (a few hundred bytes: one IHDR, an empty IDAT)."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit gray
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    Path(path).write_bytes(raw)
    return Path(path)


def npy_claiming(path: str | Path, shape: tuple[int, ...], dtype: str = "|u1") -> Path:
    """An ``.npy`` whose header claims ``shape`` but which holds only its header (a few hundred bytes)."""
    import numpy as np

    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": dtype, "fortran_order": False, "shape": shape})
    return Path(path)


def npz_of_many(path: str | Path, n: int = 500_000, side: int = 48) -> Path:
    """An ``.npz`` with ``images`` of ``n`` all-zero side x side images, deflated (500,000 48x48: about 1 MB)."""
    import numpy as np

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("images.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": (n, side, side)})
            block = bytes(side * side * 1000)
            for i in range(0, n, 1000):
                fh.write(block[: side * side * min(1000, n - i)])
    return Path(path)


def deep_json(path: str | Path, depth: int = 200_000) -> Path:
    """A JSON file nested ``depth`` arrays deep (Python's json recurses once per level)."""
    Path(path).write_text('{"models": ' + "[" * depth + "]" * depth + "}")
    return Path(path)


class _FullFile:
    """A file on a full disk: the first write stores half its bytes, then fails with ENOSPC (no file name, as
    the kernel's error has none)."""

    def __init__(self, fh) -> None:
        self._fh = fh

    def write(self, data) -> int:
        data = memoryview(data).cast("B") if not isinstance(data, str) else data
        self._fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def full_fdopen(prefixes: Sequence[str], real: Callable = os.fdopen) -> Callable:
    """An ``os.fdopen`` under which files whose name starts with one of ``prefixes`` (after the leading dot of
    exprbench's temporary files: ``eval.json``, ``step_``) are on a full disk; others open as usual (Linux)."""

    def fdopen(fd, *args, **kwargs):
        fh = real(fd, *args, **kwargs)
        try:
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return fh
        return _FullFile(fh) if any(name.startswith("." + p) for p in prefixes) else fh

    return fdopen


def disk_full(prefixes: Sequence[str]) -> None:
    """Make the disk full for ``prefixes`` in this process (the campaign's subprocesses; tests use
    ``monkeypatch.setattr(os, "fdopen", full_fdopen(...))``)."""
    os.fdopen = full_fdopen(prefixes)
