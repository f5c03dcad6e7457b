"""benchmarks/suite.py: the shipped suites parse and cover every model; bad suite files are refused."""

from __future__ import annotations

import pytest

from exprbench.benchmarks.suite import SuiteError, load_suite
from exprbench.cli import main
from exprbench.models import MODELS

from .bench_helpers import write_suite


@pytest.mark.parametrize("name", ["smoke", "quick", "full"])
def test_shipped_suites_cover_every_model(name):
    suite = load_suite(name)
    assert {p.model for p in suite.grid} == set(MODELS.names())
    assert suite.metrics and len({p.name for p in suite.grid}) == len(suite.grid)


def test_full_suite_keeps_each_configs_budget():
    suite = load_suite("full")
    steps = {p.name: suite.run_config(p).train.steps for p in suite.grid}
    assert steps["cgan-reference-s0"] == 22430 and steps["gan-reference-s0"] == 11215
    assert steps["cgan-default-s0"] == 20000
    assert {p.seed for p in suite.grid} == {0, 1, 2}


def test_grid_overrides(tmp_path):
    suite = load_suite(write_suite(tmp_path / "s.toml"))
    assert [p.name for p in suite.grid] == ["gan-default-s0", "cgan-default-s0"]
    cfg = suite.run_config(suite.grid[1], data="x.csv")
    assert cfg.model_cfg.ch == 8 and cfg.train.steps == 6 and cfg.train.batch_size == 8 and cfg.data.path == "x.csv"


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('name = "cgan"', 'name = "stylegan9"'), "unknown model 'stylegan9'"),
    (lambda s: s.replace("steps = 6", "steps = -3"), "steps = -3 must be a positive integer"),
    (lambda s: s.replace("steps = 6", "steps = 6\nminutes = 2"), "exactly one of steps or minutes"),
    (lambda s: s.replace("steps = 6", "steps = 2.5"), "must be a positive integer"),
    (lambda s: s.replace('configs = ["default"]', 'configs = ["best"]', 1), "has no config 'best'"),
    (lambda s: s.replace('"model.ch" = 8', '"model.chh" = 8', 1), "unknown config key 'model.chh'"),
    (lambda s: s.replace("seeds = [0]", "seeds = []"), r"seeds = \[\] must be a non-empty list"),
    (lambda s: s.replace('["fid70_train", "acc_gen70"]', '["fidd"]'), "unknown metric protocol 'fidd'"),
    (lambda s: s + "\nbogus = 1\n", "unknown field 'bogus'"),
    (lambda s: s.replace("[budget]", "[budget"), "not valid TOML"),
])
def test_bad_suite_files(tmp_path, edit, message):
    p = write_suite(tmp_path / "s.toml")
    p.write_text(edit(p.read_text()))
    with pytest.raises(SuiteError, match=message):
        load_suite(p)


def test_bad_suite_exits_2(tmp_path, capsys):
    p = write_suite(tmp_path / "s.toml")
    p.write_text(p.read_text().replace('name = "cgan"', 'name = "nope"'))
    assert main(["bench", str(p), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "nosuchsuite"]) == 2
    assert "unknown suite 'nosuchsuite'" in capsys.readouterr().err
