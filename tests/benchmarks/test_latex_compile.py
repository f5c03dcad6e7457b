"""The report's LaTeX compiles: leaderboard.tex and figures/figures.tex inside a two-column article, with
only the packages their header comments name, by a real pdflatex; nothing overflows a column or the
page, and the first page renders to PNG (pdftoppm).

Skipped only where pdflatex is not installed (``.ci/run`` installs it: texlive-latex-base,
texlive-latex-recommended, poppler-utils)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from exprbench.benchmarks.report.build import write_report
from exprbench.benchmarks.report.latex import is_wide, to_latex
from exprbench.benchmarks.report.tables import Table

from ..conftest import REPO
from .synthetic import make_results, write_figure_inputs

pytestmark = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                reason="pdflatex not installed (apt-get install texlive-latex-base "
                                       "texlive-latex-recommended poppler-utils; .ci/run does)")

OVERFULL = re.compile(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)")


def _packages(*tex: Path) -> list[str]:
    """The packages the files' header comments say they need (``% needs \\usepackage{a,b}``)."""
    out: list[str] = []
    for path in tex:
        for line in path.read_text().splitlines():
            if line.startswith("%"):
                for group in re.findall(r"\\usepackage\{([^}]*)\}", line):
                    out += [p.strip() for p in group.split(",") if p.strip() not in out]
    return out


def _compile(folder: Path, body: list[str], packages: list[str]) -> tuple[subprocess.CompletedProcess, str]:
    doc = "\n".join([r"\documentclass[twocolumn]{article}", r"\tracinglostchars=2",
                     *(rf"\usepackage{{{p}}}" for p in packages), r"\begin{document}", *body, r"\end{document}", ""])
    (folder / "paper.tex").write_text(doc)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=folder,
                          capture_output=True, text=True, timeout=60)
    log = (folder / "paper.log").read_text(errors="replace") if (folder / "paper.log").exists() else ""
    return proc, log


def _narrow_table() -> Table:
    """A table that fits one column (a ``table``, not ``table*``)."""
    return Table(name="narrow", title="A narrow table", headers=["model", "FID ↓ (fid70_train)"],
                 rows=[["gan_a", "12.0 ± 1.0"], ["cgan", "9.0 ± 0.5"]], bold=[[False, False], [False, True]],
                 values=[["gan_a", 12.0], ["cgan", 9.0]], columns=[None, "fid70_train"])


def test_report_latex_compiles_in_a_two_column_article(tmp_path):
    res = make_results(tmp_path)
    write_figure_inputs(res / "runs" / "cgan-default-s1", names=("samples",))
    out = write_report(res, figures=True, html=False)
    cpu = write_report(REPO / "results" / "cpu", out=tmp_path / "cpu-report", figures=False, html=False)
    narrow = _narrow_table()
    assert not is_wide(narrow)
    (out / "narrow.tex").write_text(to_latex(narrow, "synthetic"))
    shutil.copy(cpu / "leaderboard.tex", out / "cpu-leaderboard.tex")
    lb, figs = out / "leaderboard.tex", out / "figures" / "figures.tex"
    assert r"\includegraphics" in figs.read_text()
    packages = _packages(lb, figs, out / "cpu-leaderboard.tex")
    assert {"booktabs", "graphicx"} <= set(packages)  # what the headers name is all the document loads

    proc, log = _compile(out, [r"\input{leaderboard.tex}", r"\input{narrow.tex}", r"\input{cpu-leaderboard.tex}",
                               r"\clearpage", r"\input{figures/figures.tex}"], packages)
    assert proc.returncode == 0, log[-3000:]
    pdf = out / "paper.pdf"
    assert pdf.is_file() and pdf.stat().st_size > 0
    too_wide = [float(w) for w in OVERFULL.findall(log)]
    assert not [w for w in too_wide if w > 1.0], [line for line in log.splitlines() if "Overfull" in line]
    assert "Missing character" not in log and "Float too large" not in log
    assert "Unicode character" not in log and "undefined" not in log.lower()

    if shutil.which("pdftoppm") is None:
        pytest.fail("pdftoppm not installed (apt-get install poppler-utils): the page cannot be rendered")
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "paper.pdf", str(tmp_path / "page")],
                   cwd=out, check=True, capture_output=True, timeout=60)
    png = next(tmp_path.glob("page*.png"))
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (680, 880)  # US letter at 80 dpi
        lo, hi = im.convert("L").getextrema()
    assert lo < 64 and hi == 255  # ink on white paper
