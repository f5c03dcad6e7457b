"""benchmarks/report/build.py + figures.py on a real tiny bench suite: tables, real-data reference, bold best,
determinism, figures. (Result-file-only cases: tests/benchmarks/.)"""

from __future__ import annotations

import json
import shutil


from exprbench.benchmarks.report.results import aggregate, collect
from exprbench.benchmarks.report.tables import leaderboard_cells, leaderboard_tables, to_markdown
from exprbench.benchmarks.report.latex import to_latex
from exprbench.benchmarks.report.build import write_report
from exprbench.cli import main



def _section(md: str, title: str) -> list[str]:
    return [ln for ln in md.split(f"## {title}\n\n", 1)[1].split("\n\n", 1)[0].splitlines() if ln.startswith("|")]


def test_tables_and_baseline(bench_results):
    out = write_report(bench_results, figures=False)
    md = (out / "leaderboard.md").read_text()
    fid = _section(md, "Fidelity to the training faces")
    acc = _section(md, "Class-aware generation")
    assert "FID ↓ (fid70_train)" in fid[0] and "ACC_GEN ↑ (acc_gen70)" in acc[0]
    assert fid[2].startswith("| real data (reference") and acc[2].startswith("| real data (reference")
    assert len(fid) == 2 + 1 + 2  # header, rule, reference, gan, cgan
    assert len(acc) == 2 + 1 + 1  # the unconditional gan has no row there
    # bold only where intervals are apart (tiny runs may have none): the rule is stated under the tables
    assert " ± " in md and "does not overlap the runner-up's" in md and "(1 seed)" not in md and "floor" not in md
    assert "| cgan | default | 2 |" in md and "| CPU |" in md
    base = json.loads((out / "baseline.json").read_text())
    assert set(base["models"]) == {"gan/default", "cgan/default"}
    fid = base["models"]["cgan/default"]["fid70_train"]
    assert fid["n"] == 2 and fid["std"] is not None and fid["higher_is_better"] is False
    assert "acc_gen70" not in base["models"]["gan/default"]  # unconditional: skipped, not zero
    tex = (out / "leaderboard.tex").read_text()
    assert r"fid70\_train" in tex and r"$\pm$" in tex and (r"\begin{table}" in tex or r"\begin{table*}" in tex)
    assert "real data (reference" in (out / "leaderboard.csv").read_text()
    assert "Not completed yet" not in md
    assert "bench" in (out / "leaderboard.csv").read_text()


def test_pending_grid_points_are_listed(bench_results, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bench_results, copy)
    info = json.loads((copy / "suite.json").read_text())
    info["grid"].append("acgan-default-s0")
    (copy / "suite.json").write_text(json.dumps(info))
    md = (write_report(copy, figures=False) / "leaderboard.md").read_text()
    assert "Not completed yet (1 of 5 grid points): acgan-default-s0." in md


def test_best_value_is_bold_per_direction(bench_results):
    runs, floors, _ = collect(bench_results)
    agg = aggregate(runs)
    headers, rows, bold = leaderboard_cells(agg, floors, "fidelity")
    col = headers.index("FID ↓ (fid70_train)")
    means = {r[0]: float(r[col].split(" ")[0]) for r in rows[1:]}
    best_model = min(means, key=means.get)
    marked = [r[0] for r, b in zip(rows, bold) if b[col]]
    assert marked in ([], [best_model])  # bold only when the intervals of best and runner-up are apart
    table = next(t for t in leaderboard_tables(agg, floors) if t.name == "fidelity")
    assert (to_markdown(headers, rows, bold).count("**") >= 2) == bool(marked)
    assert (r"\textbf{" in to_latex(table, "tiny")) == any(any(b) for b in bold)
    assert "does not overlap the runner-up" in to_latex(table, "tiny")


def test_report_is_reproducible(bench_results, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bench_results, copy)
    a = write_report(copy, figures=False)
    first = {n: (a / n).read_bytes() for n in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "baseline.json",
                                                "index.html", "tables/fidelity.tex")}
    b = write_report(copy, figures=False)
    assert first == {n: (b / n).read_bytes() for n in first}


def test_figures(bench_results, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(bench_results, copy)
    assert main(["report", str(copy)]) == 0
    figs = {p.name for p in (copy / "report" / "figures").iterdir()}
    for name in ("samples_cgan-default", "samples_gan-default", "comparison", "curve_fid70_train",
                 "bar_fid70_train", "confusion_cgan-default"):
        assert f"{name}.png" in figs and f"{name}.pdf" in figs, name
    page = (copy / "report" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == len([f for f in figs if f.endswith(".png")])
    assert "<script" in page and "http://" not in page and "https://" not in page  # offline: nothing fetched


def test_report_without_runs_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "has no runs/ directory" in capsys.readouterr().err


def test_capability_leaderboard_and_translation_grids(tmp_path):
    """Encoder/translation metrics get their own table; translating models get a translation grid;
    a model that cannot sample (CCycleGAN) gets no sample grid."""
    from exprbench.benchmarks.runner import run_suite
    from exprbench.benchmarks.suite import load_suite

    from ..bench_helpers import need_evaluator, write_suite
    from ..conftest import write_csv

    need_evaluator()
    data = write_csv(tmp_path / "fer2013.csv", per_class=10)
    suite = write_suite(tmp_path / "s.toml", models=("bicogan", "ccyclegan"), curve="",
                        metrics='["fid70_train", "enc_acc70_test", "recon70_test", "translate_acc70_test"]')
    run_suite(load_suite(suite), tmp_path / "out", data_path=str(data), progress=False)
    out = write_report(tmp_path / "out")
    enc = (out / "tables" / "encoder.md").read_text()
    tra = (out / "tables" / "translation.md").read_text()
    assert "TRANSLATE_ACC ↑ (translate_acc70_test)" in tra and "IDENTITY_L1 ↓ (translate_acc70_test)" in tra
    assert "ENC_ACC ↑ (enc_acc70_test)" in enc and "RECON_L1 ↓ (recon70_test)" in enc
    assert "| bicogan |" in tra and "| ccyclegan |" in tra and "| ccyclegan |" not in enc
    assert "enc_acc" not in (out / "tables" / "fidelity.md").read_text()
    figs = {p.name for p in (out / "figures").iterdir()}
    assert {"translation_bicogan-default.png", "translation_ccyclegan-default.png", "samples_bicogan-default.png"} <= figs
    assert "samples_ccyclegan-default.png" not in figs
