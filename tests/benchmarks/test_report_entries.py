"""exprbench report on result files alone (synthetic run directories: no model, no dataset): every
entry with an eval.json and its source, paper tables (LaTeX environment, seeds column, precision and
recall, --metrics), the real-data reference, median-FID sample seed, chance level, rows kept from an
earlier leaderboard.csv, and bad result files as one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest

from exprbench.benchmarks.report.charts import chance_level
from exprbench.benchmarks.report.figure_inputs import representative_runs
from exprbench.benchmarks.report.results import aggregate, collect
from exprbench.benchmarks.report.build import build_report, write_report
from exprbench.benchmarks.report.latex import is_wide
from exprbench.core.errors import UserError

from .synthetic import eval_json, make_results, write_images_entry, write_run


@pytest.fixture()
def results(tmp_path):
    return make_results(tmp_path)


def _table(md: str, title: str) -> list[list[str]]:
    block = md.split(f"## {title}\n\n", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in block.splitlines() if ln.startswith("|")]


def test_every_entry_with_an_eval_json_and_its_source(results):
    runs, floors, _ = collect(results)
    src = dict(zip(runs["run"], runs["source"]))
    assert src["gan-default-s0"] == "bench" and src["vae-default-s0"] == "train+evaluate"
    assert src["external-folder"] == "images"
    assert runs.set_index("run").loc["external-folder", "model"] == "ddpm"  # source.json's name
    agg = aggregate(runs)  # the shape regress reads
    assert {"model", "config", "seeds", "fid70_train|mean", "fid70_train|std", "fid70_train|n"} <= set(agg.columns)
    assert set(agg["model"]) == {"gan", "cgan", "vae", "ddpm"}
    assert floors["pr70_train:precision"] == pytest.approx(0.92)


def test_images_entry_without_a_name_is_named_after_its_folder(tmp_path):
    runs_dir = tmp_path / "r" / "runs"
    write_images_entry(runs_dir, None, 5.0)
    runs, _, _ = collect(tmp_path / "r")
    assert list(runs["model"]) == ["external-folder"] and list(runs["source"]) == ["images"]


def test_train_evaluate_runs_alone_are_reported(tmp_path):
    """The measured failure: `report` on train + evaluate runs said "no completed run"."""
    write_run(tmp_path / "r" / "runs", "cgan", 0, eval_json(9.0, acc=0.3), bench=False)
    write_run(tmp_path / "r" / "runs", "gan", 0, None, bench=False)  # trained, never evaluated: not reported
    md = (write_report(tmp_path / "r", figures=False, html=False) / "leaderboard.md").read_text()
    rows = _table(md, "Fidelity to the training faces")
    assert [r[0] for r in rows[2:]] == ["real data (reference, N=70)", "cgan"]
    assert "train+evaluate" in md


def test_run_directories_given_directly(tmp_path, results):
    extra = write_run(tmp_path / "elsewhere", "flow", 0, eval_json(11.0), bench=False)
    out = write_report(results, figures=False, html=False, extra=[extra])
    assert "| flow | default |" in (out / "leaderboard.md").read_text()


def test_paper_tables(results):
    out = write_report(results, figures=False, html=False)
    md = (out / "leaderboard.md").read_text()
    fid = _table(md, "Fidelity to the training faces")
    assert fid[0][:4] == ["model", "config", "seeds", "source"]
    assert {"PRECISION ↑ (pr70_train)", "RECALL ↑ (pr70_train)", "F ↑ (pr70_train)"} <= set(fid[0])
    assert fid[2][0] == "real data (reference, N=70)" and "floor" not in md
    assert "(1 seed)" not in md and "vae | default | 1 |" in md
    tex = (out / "leaderboard.tex").read_text()
    for s in (r"\caption{Fidelity", r"\label{tab:synthetic-fidelity}", r"\toprule",
              r"\bottomrule", r"$\pm$", r"real data (reference, N=70)", r"\usepackage{booktabs,graphicx}"):
        assert s in tex, s
    # the synthetic results carry no ci95: nothing is bold, and the caption and the notes say why
    assert r"\textbf{" not in tex and "want of an interval" in tex and "want of an interval" in md
    # a table too wide for one column of a two-column page spans both (table*); each scaled down only if wider
    tables = [t for t in ("fidelity", "class_aware", "cost") if (out / "tables" / f"{t}.tex").exists()]
    assert tex.count(r"\begin{table}") + tex.count(r"\begin{table*}") == len(tables) == 3
    assert tex.count(r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%") == 3
    for t in build_report(results).tables:
        env = "table*" if is_wide(t) else "table"
        if t.name in tables:
            body = (out / "tables" / f"{t.name}.tex").read_text()
            assert body.startswith(f"\\begin{{{env}}}") and body.rstrip().endswith(f"\\end{{{env}}}")
    one = (out / "tables" / "class_aware.tex").read_text()
    assert one.count(r"\midrule") == 2  # under the header and under the reference row
    csv = (out / "leaderboard.csv").read_text()
    assert "pr70_train:precision|mean" in csv and "reference,real data (reference)" in csv and ",images," in csv
    base = json.loads((out / "baseline.json").read_text())
    assert base["models"]["cgan/default"]["pr70_train:recall"]["n"] == 3


def test_metric_selection(results, capsys):
    out = write_report(results, figures=False, html=False, metrics=["fid", "pr70_train:recall"])
    md = (out / "leaderboard.md").read_text()
    assert "FID ↓ (fid70_train)" in md and "RECALL ↑ (pr70_train)" in md
    assert "PRECISION" not in md and "ACC_GEN" not in md and "Training cost" not in md
    with pytest.raises(UserError, match="--metrics 'fidd': no such metric"):
        write_report(results, figures=False, html=False, metrics=["fidd"])


def test_median_fid_seed_and_chance_level(results):
    rep = build_report(results)
    pick = {k: r["seed"] for k, (r, _) in representative_runs(rep.runs).items()}
    assert pick[("cgan", "default")] == 2  # FIDs 30 (collapsed), 8, 9: the median
    assert pick[("gan", "default")] == 1  # FIDs 12, 10: the lower median, not the lowest seed
    assert chance_level(rep, "acc_gen70") == pytest.approx(1 / 7)
    assert chance_level(rep, "fid70_train") is None


def test_rows_of_an_earlier_report_are_kept_when_runs_are_absent(results, tmp_path):
    first = write_report(results, figures=False, html=False)
    before = (first / "leaderboard.md").read_text()
    copy = tmp_path / "committed"
    copy.mkdir()
    shutil.copytree(first, copy / "report")  # a committed report without its git-ignored runs/
    shutil.copy(results / "suite.json", copy)
    again = (write_report(copy, figures=False, html=False) / "leaderboard.md").read_text()
    assert "Kept from the earlier `report/leaderboard.csv`" in again
    strip = lambda md: md.split("## ", 1)[1].replace(" | source", "")  # noqa: E731
    assert strip(again) == strip(before)
    write_images_entry(copy / "runs", "newcomer", 6.0)  # a new entry beside the stored leaderboard
    md = (write_report(copy, figures=False, html=False) / "leaderboard.md").read_text()
    models = [r[0] for r in _table(md, "Fidelity to the training faces")[2:]]
    assert "newcomer" in models and "cgan" in models
    assert "**6.000**" not in md and "want of an interval" in md  # best FID, but no ci95 in these results: no bold


def test_bad_result_files_are_one_line_errors(results):
    (results / "runs" / "gan-default-s0" / "curve.jsonl").write_text('{"step": 3, "fid70_train": 1.0}\n{"step": 6, "fi')
    with pytest.raises(UserError, match=r"gan-default-s0/curve.jsonl:2: malformed JSON line"):
        collect(results)
    (results / "runs" / "gan-default-s0" / "curve.jsonl").unlink()
    (results / "runs" / "cgan-default-s0" / "eval.json").write_text("{")
    with pytest.raises(UserError, match=r"cgan-default-s0/eval.json:1: malformed JSON"):
        collect(results)


def test_cli_report_exit_codes(results, tmp_path, capsys):
    from exprbench.cli import main

    assert main(["report", str(results), "--no-figures", "--no-html", "--metrics", "fid"]) == 0
    assert "FID ↓ (fid70_train)" in capsys.readouterr().out
    assert main(["report", str(results), "--no-figures", "--metrics", "nope"]) == 2
    assert "no such metric" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty")]) == 2


def test_sample_sheet_without_figure_inputs_uses_the_training_grid(results, tmp_path):
    """No figures/samples.png: the median-FID run's own samples/step_*.png, said as such; else a
    placeholder panel and a line saying why."""
    from PIL import Image

    from exprbench.benchmarks.report.figures import _Writer, sheets

    run = results / "runs" / "cgan-default-s2"  # the median-FID cgan seed
    (run / "samples").mkdir()
    Image.new("L", (100, 60), 128).save(run / "samples" / "step_000006.png")
    rep = build_report(results)
    w, skipped = _Writer(tmp_path / "figures"), []
    got = sheets(rep, w, skipped)
    assert sorted(w.written) == ["samples_cgan-default", "samples_ddpm-images", "samples_gan-default",
                                 "samples_vae-default"]  # one sheet, three placeholders
    assert got[("cgan", "default")].fallback == "the training grid samples/step_000006.png"
    why = dict(skipped)
    assert set(why) == {"samples_cgan-default", "samples_gan-default", "samples_vae-default", "samples_ddpm-images"}
    assert "training grid samples/step_000006.png is shown instead" in why["samples_cgan-default"]
    assert "images entry" in why["samples_ddpm-images"]
    assert "gan-default-s1/figures/samples.png is not there" in why["samples_gan-default"]


def test_coverage_and_memorisation_table_and_pairs_figure(tmp_path):
    """An older evaluation's figures_input/<protocol>_pairs.png stands in for figures/closest_pairs.png."""
    from PIL import Image

    from exprbench.benchmarks.report.figures import _Writer, sheets

    ev = eval_json(9.0)
    ev["metrics"]["dc70_train"] = {"status": "ok", "value": 0.6, "details": {"density": 0.9, "coverage": 0.6}}
    ev["metrics"]["mem70_train"] = {"status": "ok", "value": 0.07,
                                    "details": {"pairs_files": {"png": "figures_input/mem70_train_pairs.png"}}}
    run = write_run(tmp_path / "r" / "runs", "gan", 0, ev)
    (run / "figures_input").mkdir()
    Image.new("L", (200, 50), 90).save(run / "figures_input" / "mem70_train_pairs.png")
    rep = build_report(tmp_path / "r")
    t = next(t for t in rep.tables if t.name == "coverage")
    assert t.headers[3:] == ["COVERAGE ↑ (dc70_train)", "DENSITY ↑ (dc70_train)", "MEMORISED ↓ (mem70_train)"]
    w, skipped = _Writer(tmp_path / "figures"), []
    sheets(rep, w, skipped)
    assert "memorisation_gan-default" in w.written
    assert "figures_input/mem70_train_pairs.png of mem70_train is shown instead" in dict(skipped)["memorisation_gan-default"]


def test_an_acc_gen_above_the_evaluators_own_accuracy_on_real_faces_is_marked(tmp_path):
    """The class-evidence flags: acc_gen 0.80 against the evaluator's 0.66 on real faces gets the mark and its note."""
    runs = tmp_path / "r" / "runs"
    write_run(runs, "acgan", 0, eval_json(9.0, acc=0.80), bench=False)
    write_run(runs, "cgan", 0, eval_json(9.0, acc=0.40), bench=False)
    md = (write_report(tmp_path / "r", figures=False, html=False) / "leaderboard.md").read_text()
    rows = {r[0]: r for r in _table(md, "Class-aware generation")[2:]}
    col = _table(md, "Class-aware generation")[0].index(next(h for h in _table(md, "Class-aware generation")[0]
                                                             if "acc_gen70" in h))
    assert rows["acgan"][col].endswith("*") and not rows["cgan"][col].endswith("*")
    assert "* an accuracy above the evaluator's own" in md


def test_paper_latex_precision_wide_tables_notes_and_figure_snippets(tmp_path):
    from exprbench.benchmarks.report.tables import pm

    assert (pm(1.323, 0.1371), pm(0.59763, 0.0167), pm(0.0, 0.0), pm(12.5, None)) == \
        ("1.32 ± 0.14", "0.598 ± 0.017", "0 ± 0", "12.500")  # no std: the tables' own 4 significant digits
    runs = tmp_path / "r" / "runs"
    for seed, fid in ((0, 9.0), (1, 9.4)):
        write_run(runs, "cgan", seed, eval_json(fid, acc=0.80), bench=False)
    out = write_report(tmp_path / "r", figures=True, html=False)
    fid_tex = (out / "tables" / "fidelity.tex").read_text()
    assert "9.20 $\\pm$ 0.28" in fid_tex  # mean 9.2, std 0.283: two significant digits
    assert "not comparable" in fid_tex and "\\caption{" in fid_tex and "Bold:" not in fid_tex.split("\\caption{")[1].split("}")[0]
    snippets = (out / "figures" / "figures.tex").read_text()
    assert "\\includegraphics[width=\\linewidth]{figures/" in snippets and "\\label{fig:" in snippets
