"""Tests of metrics/cli.py: exit codes and output of evaluate / evaluator info / metrics."""

from __future__ import annotations

import pytest

from exprbench.cli import main
from exprbench.data import load_fer2013
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator

DATA = real_data_path()


@pytest.mark.parametrize("argv", [
    ["evaluate", "/nonexistent/run"],
    ["evaluate", "/nonexistent/run", "--n-samples", "0"],
    ["evaluator", "info", "--weights", "/nonexistent/ev.pt"],
    ["evaluator", "train", "--epochs", "0"],
])
def test_bad_input_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err


def test_unknown_metric_exits_2(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert main(["evaluate", str(tmp_path), "--metrics", "fid_bogus"]) == 2
    assert "unknown metric protocol" in capsys.readouterr().err


def test_metrics_list(capsys):
    assert main(["metrics"]) == 0
    assert "fid10k_train" in capsys.readouterr().out


@pytest.mark.skipif(DATA is None, reason="FER2013 not found")
def test_evaluator_info(tmp_path, capsys):
    ev = tiny_evaluator(subset(load_fer2013(DATA), {"train": 10, "val": 5, "test": 5}), tmp_path / "ev.pt", epochs=1)
    assert main(["evaluator", "info", "--weights", str(ev)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    ev.write_bytes(ev.read_bytes() + b"0")
    assert main(["evaluator", "info", "--weights", str(ev)]) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and len(err.strip().splitlines()) == 1
