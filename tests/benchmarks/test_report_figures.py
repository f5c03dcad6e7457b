"""Report figures composed from the figure inputs runs wrote (figures/*.png + index.json), on
synthetic run directories: labels from index.json, one comparison panel per model, placeholders and
notes for what is missing, and no model or dataset code imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exprbench.benchmarks.report.figure_inputs import read_index
from exprbench.benchmarks.report.figures import _Writer, comparison_sheet, sheets
from exprbench.benchmarks.report.build import build_report, write_report
from exprbench.core.errors import UserError

from .synthetic import CLASSES, make_results, write_figure_inputs

REPO = Path(__file__).resolve().parents[2]
ALL = ("samples", "translations", "edits", "closest_pairs")


class _Recorder(_Writer):
    """A writer that also keeps, per figure, each axes' tick labels and image shapes."""

    def __init__(self, out):
        super().__init__(out)
        self.axes = {}

    def save(self, fig, name):
        self.axes[name] = [{"y": [t.get_text() for t in ax.get_yticklabels()],
                            "x": [t.get_text() for t in ax.get_xticklabels()],
                            "images": [im.get_array().shape for im in ax.get_images()],
                            "title": ax.get_title(), "texts": [t.get_text() for t in ax.texts]}
                           for ax in fig.axes]
        super().save(fig, name)


@pytest.fixture()
def results(tmp_path):
    res = make_results(tmp_path)
    runs = res / "runs"
    write_figure_inputs(runs / "cgan-default-s2", ALL)  # the median-FID cgan seed: every input
    write_figure_inputs(runs / "gan-default-s1", classes=[])  # unconditional: one row of samples
    return res


def test_sheets_are_labelled_from_the_index(results, tmp_path):
    w, skipped = _Recorder(tmp_path / "f"), []
    sheets(build_report(results), w, skipped)
    for name in ("samples", "translation", "edit", "memorisation"):
        assert f"{name}_cgan-default" in w.written, name
    s = w.axes["samples_cgan-default"][0]
    assert s["y"] == CLASSES and s["images"] == [(7 * 12, 8 * 12)] and "seed 2: median fid70_train" in s["title"]
    t = w.axes["translation_cgan-default"][0]
    assert t["x"] == ["source", *CLASSES] and t["y"] == CLASSES
    assert w.axes["edit_cgan-default"][0]["y"] == [f"to {c}" for c in CLASSES]
    assert w.axes["samples_gan-default"][0]["title"].endswith(", unconditional")
    # no figure input and no training grid: a placeholder panel and a line saying so
    why = dict(skipped)
    assert "vae-default-s0/figures/samples.png is not there" in why["samples_vae-default"]
    assert any("no figure input" in t for t in w.axes["samples_vae-default"][0]["texts"])
    assert "translation_gan-default" not in w.written  # nothing of gan's asks for translations


def test_comparison_has_one_panel_per_model(results, tmp_path):
    w, skipped = _Recorder(tmp_path / "f"), []
    comparison_sheet(sheets(build_report(results), _Writer(tmp_path / "s"), []), w, skipped)
    panels = w.axes["comparison"]
    assert [p["title"] for p in panels] == ["cgan/default", "ddpm/images", "gan/default*", "vae/default"]
    assert panels[0]["images"] == [(7 * 12, 4 * 12)]  # the first 4 latents of each class
    assert panels[2]["images"] == [(12, 4 * 12)]  # unconditional: one row
    # class names once, left of the first conditional panel (elsewhere they overlapped the neighbour)
    assert panels[0]["y"] == CLASSES and all(not any(p["y"]) for p in panels[1:])
    assert panels[3]["images"] == [] and "no samples.png" in panels[3]["texts"]
    assert "placeholder panels for ddpm/images, vae/default" in dict(skipped)["comparison"]


def test_report_says_which_figures_have_no_input(results):
    out = write_report(results)
    md = (out / "leaderboard.md").read_text()
    notes = md.split("## Figures without their inputs\n\n", 1)[1]
    assert "- samples_vae-default: vae-default-s0/figures/samples.png is not there" in notes
    assert "- comparison: placeholder panels for ddpm/images, vae/default" in notes
    assert "samples_cgan-default" not in notes
    figs = {p.name for p in (out / "figures").iterdir()}
    assert {"comparison.png", "samples_cgan-default.png", "translation_cgan-default.pdf",
            "samples_vae-default.png"} <= figs
    page = (out / "index.html").read_text()
    assert "vae-default-s0/figures/samples.png is not there" in page


def test_malformed_index_is_one_line_error(results):
    run = results / "runs" / "gan-default-s1"
    (run / "figures" / "index.json").write_text(json.dumps({"samples": {"file": "samples.png", "cell": [12]}}))
    with pytest.raises(UserError, match=r"gan-default-s1/figures/index.json: samples.cell must be \[H, W\]"):
        read_index(run)
    (run / "figures" / "index.json").write_text("{")
    with pytest.raises(UserError, match=r"index.json:1: malformed JSON"):
        read_index(run)


def test_listed_file_that_is_not_there_is_not_an_input(results):
    run = results / "runs" / "gan-default-s1"
    (run / "figures" / "samples.png").unlink()
    assert read_index(run) == {}


CHECK = """
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.benchmarks.synthetic import make_results, write_figure_inputs
import exprbench.benchmarks.report.build as report
res = make_results(Path({tmp!r}))
write_figure_inputs(res / "runs" / "cgan-default-s2", {names!r})
report.write_report(res)
bad = sorted(m for m in sys.modules if m.split(".")[0] == "models" or m.startswith(("exprbench.models",
             "exprbench.data", "exprbench.runs.harness", "torch")))
print(json.dumps(bad))
"""


def test_report_imports_no_model_and_no_dataset_code(tmp_path):
    code = CHECK.format(repo=str(REPO), tmp=str(tmp_path), names=ALL)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_unlabelled_rows_are_an_unconditional_grid(results, tmp_path):
    """An unconditional G drawn on the 7-row grid (rows labelled "") is marked unconditional, with no
    class labels, in its sheet and in the comparison."""
    write_figure_inputs(results / "runs" / "gan-default-s1", classes=[""] * 7)
    w, skipped = _Recorder(tmp_path / "f"), []
    comparison_sheet(sheets(build_report(results), w, skipped), w, skipped)
    assert w.axes["samples_gan-default"][0]["title"].endswith(", unconditional")
    gan = next(p for p in w.axes["comparison"] if p["title"].startswith("gan/"))
    assert gan["title"] == "gan/default*" and not any(gan["y"])
