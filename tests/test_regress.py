"""benchmarks/regress.py: tolerances, verdicts and the gate's exit codes."""

from __future__ import annotations

import json

import pytest

from exprbench.benchmarks.regress import Tolerance, parse_tolerance
from exprbench.benchmarks.report import write_report
from exprbench.cli import main
from exprbench.errors import UserError



@pytest.fixture
def baseline(bench_results, tmp_path):
    out = write_report(bench_results, figures=False)
    data = json.loads((out / "baseline.json").read_text())
    return data


def _write(tmp_path, data):
    p = tmp_path / "baseline.json"
    p.write_text(json.dumps(data))
    return p


def test_same_results_pass(bench_results, baseline, tmp_path, capsys):
    assert main(["regress", str(bench_results), "--baseline", str(_write(tmp_path, baseline))]) == 0
    assert "no regression" in capsys.readouterr().out


def test_worse_metric_fails_with_table(bench_results, baseline, tmp_path, capsys):
    fid = baseline["models"]["cgan/default"]["fid70_train"]
    fid["mean"] = fid["mean"] / 2  # the baseline was twice as good: current is a regression
    assert main(["regress", str(bench_results), "--baseline", str(_write(tmp_path, baseline))]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and "fid70_train" in out and "quality regression" in out
    # a tolerance wide enough lets it pass
    assert main(["regress", str(bench_results), "--baseline", str(_write(tmp_path, baseline)),
                 "--tolerance", "fid70_train=200%"]) == 0


def test_missing_model_reported(bench_results, baseline, tmp_path, capsys):
    baseline["models"]["vae/default"] = {"fid70_train": {"mean": 1.0, "std": None, "n": 1, "higher_is_better": False}}
    path = _write(tmp_path, baseline)
    assert main(["regress", str(bench_results), "--baseline", str(path)]) == 1
    assert "missing" in capsys.readouterr().out
    assert main(["regress", str(bench_results), "--baseline", str(path), "--allow-missing"]) == 0


def test_sd_tolerance():
    assert Tolerance(sd=2).allowed(10.0, 0.5) == (1.0, "2 sd")
    allowed, how = Tolerance(sd=2).allowed(10.0, None)
    assert allowed == pytest.approx(1.0) and "no seed spread" in how
    assert parse_tolerance("10%").relative == pytest.approx(0.1) and parse_tolerance("3sd").sd == 3
    with pytest.raises(UserError, match="expected a fraction"):
        parse_tolerance("lots")


def test_bad_baseline_exits_2(bench_results, tmp_path, capsys):
    assert main(["regress", str(bench_results), "--baseline", str(tmp_path / "none.json")]) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["regress", str(bench_results), "--baseline", str(tmp_path / "bad.json")]) == 2
    assert main(["regress", str(bench_results), "--baseline", str(tmp_path / "bad.json"), "--tolerance", "x"]) == 2
