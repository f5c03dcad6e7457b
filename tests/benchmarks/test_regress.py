"""benchmarks/gate/regress.py: tolerances, baseline schema, verdicts, --allow-missing and the gate's exit codes.
Report formats (--format, --output) are in test_regress_formats.py."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from exprbench.benchmarks.gate.tolerances import Tolerance, Tolerances, parse_tolerance, parse_tolerances
from exprbench.benchmarks.report.build import write_report
from exprbench.cli import main
from exprbench.core.errors import UserError

from ..conftest import REPO
from ..regress_helpers import entry, make_case, write_baseline, write_run
from .test_smoke_suite import REGRESS_OPTIONS


@pytest.fixture
def baseline(bench_results, tmp_path):
    out = write_report(bench_results, figures=False)
    data = json.loads((out / "baseline.json").read_text())
    return data


def _write(tmp_path, data):
    return write_baseline(tmp_path, data)


def _regress(res, base, *args):
    return main(["regress", str(res), "--baseline", str(base), *args])


# ---------------------------------------------------------------- end to end with a real report baseline

def test_same_results_pass_with_the_ci_recipe(bench_results, baseline, tmp_path, capsys):
    """docs/gate.md's CI recipe holds on unchanged results (two seeds: the sd tolerance has a spread)."""
    assert main(["regress", str(bench_results), "--baseline", str(_write(tmp_path, baseline))]) == 0
    assert "no regression" in capsys.readouterr().out
    assert _regress(bench_results, _write(tmp_path, baseline), *REGRESS_OPTIONS) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("no regression: ")


def test_worse_metric_fails_with_table(bench_results, baseline, tmp_path, capsys):
    fid = baseline["models"]["cgan/default"]["fid70_train"]
    fid["mean"] = fid["mean"] / 2  # the baseline was twice as good: current is a regression
    assert main(["regress", str(bench_results), "--baseline", str(_write(tmp_path, baseline))]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and "fid70_train" in out and "quality regression" in out
    # a tolerance wide enough lets it pass
    assert main(["regress", str(bench_results), "--baseline", str(_write(tmp_path, baseline)),
                 "--tolerance", "fid70_train=200%"]) == 0


def test_gate_doc_recipe_is_what_the_gate_study_runs():
    """docs/gate.md's CI recipe ("Using the regression gate in your model's CI") is exactly what the committed
    gate study ran (benchmarks/gate/gate_study.py): the gate suite's seed 0, then `regress` with its options; and
    the smoke pipeline check's own `regress` line uses the options of tests/benchmarks/test_smoke_suite.py."""
    from exprbench.benchmarks.gate.gate_study import REGRESS_OPTIONS as GATE_OPTIONS, SUITE

    doc = (REPO / "docs" / "gate.md").read_text()
    assert len([ln for ln in doc.splitlines() if ln.strip().startswith(f"exprbench bench {SUITE} --seed 0 --out /tmp/{SUITE} ")]) == 1
    for out, options in ((f"/tmp/{SUITE}", GATE_OPTIONS), ("/tmp/smoke", REGRESS_OPTIONS)):
        lines = [ln.strip() for ln in doc.splitlines() if ln.strip().startswith(f"exprbench regress {out} ")]
        assert len(lines) == 1, (out, lines)
        argv = shlex.split(lines[0])
        assert argv[:5] == ["exprbench", "regress", out, "--baseline", argv[4]] and argv[5:] == options, argv


# ---------------------------------------------------------------- tolerances

def test_tolerance_allowances():
    assert Tolerance(sd=2).allowed(10.0, 0.5) == (1.0, "2 sd")
    assert Tolerance(relative=0.025).allowed(-10.0, None) == (pytest.approx(0.25), "2.5%")
    # no seed spread: no allowance without a floor, the floor with one (and the table says so)
    assert Tolerance(sd=2).allowed(10.0, None) == (None, "")
    assert Tolerance(sd=2).allowed(10.0, 0.0) == (None, "")
    allowed, how = Tolerance(sd=2).allowed(10.0, None, floor=0.1)
    assert allowed == pytest.approx(1.0) and how == "10% floor (no seed spread)"
    # the floor is the least allowance: max(2 sd, 10%)
    assert Tolerance(sd=2).allowed(10.0, 0.1, floor=0.1) == (pytest.approx(1.0), "10% floor")
    assert Tolerance(sd=2).allowed(10.0, 1.0, floor=0.1) == (2.0, "2 sd")
    assert Tolerance(relative=0.2).allowed(10.0, None, floor=0.1) == (pytest.approx(2.0), "20%")


def test_parse_tolerances():
    assert parse_tolerance("10%").relative == pytest.approx(0.1) and parse_tolerance("3sd").sd == 3
    assert parse_tolerance(" 0.25 ").relative == 0.25 and parse_tolerance("2SD").sd == 2
    t = parse_tolerances(["2sd", "fid70_train=25%"], ["10%", "acc_gen70=0.2"])
    assert t.default == Tolerance(sd=2) and t.per_metric == {"fid70_train": Tolerance(relative=0.25)}
    assert t.floor == pytest.approx(0.1) and t.per_metric_floor == {"acc_gen70": 0.2}
    assert t.for_metric("fid70_train") == (Tolerance(relative=0.25), pytest.approx(0.1))
    assert t.for_metric("acc_gen70") == (Tolerance(sd=2), 0.2)
    assert parse_tolerances([]) == Tolerances()  # 10%, no floor
    assert t.describe() == "2sd, floor 10%, fid70_train=25%, acc_gen70 floor 20%"


@pytest.mark.parametrize("specs, floors, match", [
    (["lots"], [], "expected a fraction"),
    (["10x"], [], r"'10x': expected a fraction"),
    (["2sd|10%"], [], "expected a fraction"),
    (["nan"], [], "finite"),
    (["inf"], [], "finite"),
    (["-5%"], [], "finite number >= 0"),
    (["10"], [], r"bare number is a fraction .*1000%.*write 10%"),
    (["=5%"], [], "empty metric name"),
    (["fid70_train="], [], r"'fid70_train=': expected a fraction"),
    (["5%", "10%"], [], "default --tolerance is given twice"),
    (["fid70_train=5%", "fid70_train=2sd"], [], "'fid70_train' is given twice"),
    ([], ["2sd"], r"--tolerance-floor '2sd': must be relative"),
    ([], ["acc_gen70=1sd"], "must be relative"),
    ([], ["5%", "6%"], "default --tolerance-floor is given twice"),
])
def test_malformed_tolerances_refused(specs, floors, match):
    with pytest.raises(UserError, match=match):
        parse_tolerances(specs, floors)


@pytest.mark.parametrize("args, match", [
    (["--tolerance", "10x"], "--tolerance '10x'"),
    (["--tolerance", "fid70_trian=25%"], r"--tolerance fid70_trian=25%: unknown metric 'fid70_trian'; "
                                          r"the baseline has: acc_gen70, fid70_train$"),
    (["--tolerance-floor", "acc=5%"], r"--tolerance-floor acc=5%: unknown metric 'acc'; the baseline has: acc_gen70"),
    (["--tolerance", "2sd"], r"--tolerance 2sd: cgan/default acc_gen70 \(and 1 more\) has no seed spread .*std 0\).*"
                             r"--tolerance-floor 10%"),
])
def test_bad_tolerances_exit_2_with_one_line(tmp_path, capsys, args, match):
    res, base = make_case(tmp_path)
    assert _regress(res, _write(tmp_path, base), *args) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err
    assert cap.out == ""  # refused before any report


def test_no_spread_hint_names_seed_count(tmp_path, capsys):
    res, base = make_case(tmp_path)
    base["models"] = {"gan/default": {"fid70_train": entry(31.0)}}
    assert _regress(res, _write(tmp_path, base), "--tolerance", "2sd") == 2
    assert "gan/default fid70_train has no seed spread in the baseline (std null, n 1)" in capsys.readouterr().err


def test_no_spread_needs_no_floor_where_nothing_is_compared(tmp_path, capsys):
    """Rows missing from the results need no allowance: 2sd without a floor is not refused for them."""
    res, base = make_case(tmp_path)
    base["models"] = {"cgan/default": base["models"]["cgan/default"], "flow/default": base["models"]["flow/default"]}
    base["models"]["cgan/default"]["acc_gen70"]["std"] = 0.01
    assert _regress(res, _write(tmp_path, base), "--tolerance", "2sd", "--allow-missing") == 1  # cgan fid regressed
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[-2:] == ["1 missing row hidden (--allow-missing)",
                          "quality regression: 1 regressed, 1 ok, 2 new in 3 models"]


# ---------------------------------------------------------------- verdicts, summary line, --allow-missing

def _table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in ln.strip("│").split("│")] for ln in out.splitlines() if ln.startswith("│")]


def test_verdicts_and_summary_line(tmp_path, capsys):
    res, base = make_case(tmp_path)
    assert _regress(res, _write(tmp_path, base), "--tolerance", "2sd", "--tolerance-floor", "10%") == 1
    out = capsys.readouterr().out
    rows = {(r[0], r[1]): r for r in _table_rows(out)}
    assert rows[("cgan/default", "fid70_train")][5:] == ["2", "2 sd", "regressed"]  # 21 vs 18, allowed 2 x 1
    assert rows[("cgan/default", "acc_gen70")][5:] == ["0.032", "10% floor (no seed spread)", "ok"]
    assert rows[("gan/default", "fid70_train")][-1] == "improved"
    assert rows[("gan/default", "acc_gen70")][-1] == "missing"
    assert rows[("flow/default", "fid70_train")][-1] == "missing"
    assert rows[("vae/default", "*")][-1] == "new"
    # pytest-style: the output ends with one summary line
    assert out.rstrip().splitlines()[-1] == "quality regression: 1 regressed, 2 missing, 1 improved, 1 ok, 1 new in 4 models"


def test_improved_only_beyond_the_allowance(tmp_path, capsys):
    """A gain within the allowance is "ok" (no "improved" noise on unchanged code); beyond it, "improved"."""
    res = tmp_path / "res"
    write_run(res, "cgan", 0, {"fid70_train": 19.0, "acc_gen70": 0.40})
    base = {"suite": "t", "models": {"cgan/default": {"fid70_train": entry(20.0, 1.0, 3),
                                                       "acc_gen70": entry(0.30, 0.01, 3, hib=True)}}}
    assert _regress(res, _write(tmp_path, base), "--tolerance", "2sd") == 0
    rows = {(r[0], r[1]): r[-1] for r in _table_rows(capsys.readouterr().out)}
    assert rows[("cgan/default", "fid70_train")] == "ok"  # 1 better, allowance 2 x 1
    assert rows[("cgan/default", "acc_gen70")] == "improved"  # 0.10 better, allowance 2 x 0.01


def test_allow_missing_hides_and_does_not_count(tmp_path, capsys):
    res, base = make_case(tmp_path)
    del base["models"]["cgan/default"]["fid70_train"]  # the only regression
    path = _write(tmp_path, base)
    assert _regress(res, path) == 1
    out = capsys.readouterr().out
    assert out.count("missing") == 3 and out.rstrip().splitlines()[-1].startswith("quality regression: 2 missing")
    assert _regress(res, path, "--allow-missing") == 0
    out = capsys.readouterr().out
    lines = out.rstrip().splitlines()
    assert "missing" not in "".join(map(str, _table_rows(out)))
    assert {r[0] for r in _table_rows(out)} == {"cgan/default", "gan/default", "vae/default"}
    assert lines[-2] == "2 missing rows hidden (--allow-missing)"
    assert lines[-1] == "no regression: 1 improved, 1 ok, 1 new in 3 models"


def test_regression_still_fails_with_allow_missing(tmp_path, capsys):
    res, base = make_case(tmp_path)
    assert _regress(res, _write(tmp_path, base), "--allow-missing") == 1
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == \
        "quality regression: 1 regressed, 1 improved, 1 ok, 1 new in 3 models"


# ---------------------------------------------------------------- baseline schema

@pytest.mark.parametrize("data, match", [
    ({"models": {"cgan/default": {"fid70_train": {"std": 1.0}}}},
     r"model 'cgan/default', metric 'fid70_train': 'mean' is missing$"),
    ({"models": {"cgan/default": {"fid70_train": 21.5}}},
     r"model 'cgan/default', metric 'fid70_train': must be an object \{mean, std, n, higher_is_better\}, got a number 21.5"),
    ({"models": {"cgan/default": {"fid70_train": {"mean": "0.5"}}}},
     r"model 'cgan/default', metric 'fid70_train': 'mean': input should be a valid number, got a string \"0.5\""),
    ({"models": {"cgan/default": {"fid70_train": {"mean": True}}}}, "'mean': input should be a valid number, got a boolean"),
    ('{"models": {"cgan/default": {"fid70_train": {"mean": NaN}}}}', "'mean': input should be a finite number"),
    ({"models": {"cgan/default": {"fid70_train": {"mean": 1.0, "std": -1}}}}, "'std': input should be greater than"),
    ({"models": {"cgan/default": {"fid70_train": {"mean": 1.0, "higher_is_better": "yes"}}}}, "valid boolean"),
    ({"models": {"cgan/default": {"a": {}, "b": {}}}}, r"metric 'a': 'mean' is missing \(and 1 more problem\)"),
    ({"models": {"cgan/default": 3}}, r"model 'cgan/default': must be an object \{metric: "),
    ({"models": []}, "'models' must be an object"),
    ({"models": {}}, "'models' is empty"),
    ({"models": {"cgan": {"fid70_train": {"mean": 1.0}}}}, "model 'cgan': key must be 'model/config'"),
    ({"suite": "x"}, r"not a baseline \(no 'models' table"),
    ([1, 2], "not a baseline: expected a JSON object with 'models', got an array"),
    ('"text"', "got a string"),
    ("{not json", r":1: malformed JSON"),
    ("", r":1: malformed JSON"),
])
def test_bad_baseline_exits_2_with_one_line(tmp_path, capsys, data, match):
    res, _ = make_case(tmp_path)
    path = _write(tmp_path, data)
    assert _regress(res, path) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in cap.err, cap.err
    assert err.startswith(f"error: {path}") and re.search(match, err), err


def test_unreadable_baseline_exits_2(tmp_path, capsys):
    res, _ = make_case(tmp_path)
    assert _regress(res, tmp_path / "none.json") == 2
    assert "baseline not found" in capsys.readouterr().err
    assert _regress(res, tmp_path) == 2  # a directory
    assert "cannot read baseline" in capsys.readouterr().err
    (tmp_path / "latin1.json").write_bytes(b"\xff\xfe{}")
    assert _regress(res, tmp_path / "latin1.json") == 2
    assert "cannot read baseline" in capsys.readouterr().err


def test_baseline_extra_keys_and_int_means_accepted(tmp_path, capsys):
    res, base = make_case(tmp_path)
    base["floors"] = {"fid70_train": 1.0}
    base["models"]["gan/default"]["fid70_train"] = {"mean": 31, "note": "extra keys are kept"}
    base["models"]["gan/default"]["acc_gen70"]["future_field"] = [1, 2]
    assert _regress(res, _write(tmp_path, base), "--allow-missing") == 1  # cgan fid still regressed
    assert "gan/default" in capsys.readouterr().out
