"""Report figures are written atomically: a report killed or out of disk mid-write keeps the previous figure."""

from __future__ import annotations

import errno

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from exprbench.benchmarks.figures import _Writer  # noqa: E402


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
