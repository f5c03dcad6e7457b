"""exprbench.core.io: atomic writers (file modes from the umask, strict JSON), stale temp cleanup, writability checks."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from exprbench.core import io as xio
from exprbench.core.errors import UserError
from exprbench.core.io import (check_writable_dir, check_writable_file, current_umask, remove_stale_temps, write_json,
                          write_text)


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_files_get_0666_minus_the_umask(tmp_path, umask):
    umask(0o022)
    assert current_umask() == 0o022
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "a.json", {"a": 1})
    assert _mode(tmp_path / "a.txt") == 0o644 and _mode(tmp_path / "a.json") == 0o644
    umask(0o027)
    write_text(tmp_path / "a.txt", "y")  # a rewrite gets the current umask too
    assert _mode(tmp_path / "a.txt") == 0o640


def test_write_json_is_strict_json_non_finite_as_null(tmp_path):
    p = tmp_path / "s.json"
    write_json(p, {"loss": float("nan"), "x": [1.0, float("inf"), (float("-inf"), 2)], "n": np.float32("nan"),
                   "ok": 0.5})
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(c):
        raise AssertionError(f"non-JSON constant {c}")

    assert json.loads(text, parse_constant=refuse) == {"loss": None, "x": [1.0, None, [None, 2]], "n": None, "ok": 0.5}


def test_write_json_unserializable_leaves_the_old_file(tmp_path):
    p = tmp_path / "s.json"
    write_json(p, {"a": 1})
    with pytest.raises(TypeError):
        write_json(p, {"a": object()})
    assert json.loads(p.read_text()) == {"a": 1} and list(tmp_path.iterdir()) == [p]


def test_remove_stale_temps(tmp_path):
    (tmp_path / ".step_000002.pt.k3j2_a.tmp").write_bytes(b"partial")
    (tmp_path / ".step_000002.sha256.x.tmp").write_text("partial")
    keep = [tmp_path / "step_000002.pt", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for k in keep:
        k.write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert len(removed) == 2 and sorted(tmp_path.iterdir()) == sorted(keep)
    assert remove_stale_temps(tmp_path / "missing") == []


def test_check_writable_paths(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file, expected a folder"):
        check_writable_dir(f)
    with pytest.raises(UserError, match="is a file, so the folder cannot be created"):
        check_writable_dir(f / "sub")
    with pytest.raises(UserError, match=r"--out .*: is a folder, expected a file name"):
        check_writable_file(tmp_path)
    deep = tmp_path / "a" / "b" / "c"
    assert check_writable_dir(deep) == deep and not (tmp_path / "a").exists()  # nothing is created
    assert list(tmp_path.iterdir()) == [f]  # and no probe file is left
    monkeypatch.setattr(xio, "_can_create_in", lambda folder: False)  # as a read-only folder answers
    with pytest.raises(UserError, match=r"--out .*/a/b/c: cannot write there \(its nearest existing folder .*\): "
                                        "permission denied or read-only"):
        check_writable_dir(deep)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_writable_dir_real_permissions(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UserError, match="permission denied or read-only"):
            check_writable_dir(ro / "run")
        with pytest.raises(UserError, match="permission denied or read-only"):
            check_writable_file(ro / "x.png")
    finally:
        ro.chmod(0o700)


def test_json_safe_keeps_finite_values():
    assert xio.json_safe({"a": (1, 2.5, "s", None, True)}) == {"a": [1, 2.5, "s", None, True]}
    assert xio.json_safe(math.pi) == math.pi
