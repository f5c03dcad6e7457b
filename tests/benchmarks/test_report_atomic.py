"""Report figures are written atomically: a report killed or out of disk mid-write keeps the previous figure."""

from __future__ import annotations

import errno

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from exprbench.benchmarks.report.figures import _Writer  # noqa: E402


def _fig():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_a_failed_rewrite_keeps_the_previous_figure_whole(tmp_path, monkeypatch):
    w = _Writer(tmp_path)
    w.save(_fig(), "curve")
    before = {ext: (tmp_path / f"curve.{ext}").read_bytes() for ext in ("png", "pdf")}
    real = Figure.savefig

    def disk_full(self, fh, **kw):  # half a file written, then the disk is full
        real(self, fh, **kw)
        fh.truncate(10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OSError):
        w.save(_fig(), "curve")
    assert {ext: (tmp_path / f"curve.{ext}").read_bytes() for ext in ("png", "pdf")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.pdf", "curve.png"]  # no temporary left behind


def test_a_report_killed_mid_write_keeps_the_previous_figure(tmp_path):
    """SIGKILL while a figure is being written: the final path still holds the previous, whole figure."""
    import os
    import signal
    import subprocess
    import sys
    import time

    w = _Writer(tmp_path)
    w.save(_fig(), "curve")
    before = (tmp_path / "curve.png").read_bytes()
    marker = tmp_path / "writing"
    child = f"""
import time, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from exprbench.benchmarks.report.figures import _Writer
real = Figure.savefig
def slow(self, fh, **kw):  # half the file out, then hang until killed
    real(self, fh, **kw)
    fh.truncate(100)
    fh.flush()
    open({str(marker)!r}, "w").close()
    time.sleep(60)
Figure.savefig = slow
fig, ax = plt.subplots()
ax.plot([0, 1], [0, 1])
_Writer(__import__("pathlib").Path({str(tmp_path)!r})).save(fig, "curve")
"""
    proc = subprocess.Popen([sys.executable, "-c", child])
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "the child never started writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert (tmp_path / "curve.png").read_bytes() == before
