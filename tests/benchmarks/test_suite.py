"""benchmarks/suite.py: the shipped suites parse and cover every model; bad suite files are refused."""

from __future__ import annotations

import pytest

from exprbench.benchmarks.suite import SuiteError, load_suite
from exprbench.cli import main

from ..bench_helpers import write_suite


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
    (lambda s: s.replace('configs = ["default"]', 'configs = ["default"]\nskip_metrics = ["cas350"]', 1),
     r"'gan': skip_metrics names 'cas350', which is not in \[eval\] metrics"),
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


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "a/b", "", ".hidden", "a b", 5])
def test_suite_name_must_be_a_plain_name(tmp_path, monkeypatch, capsys, name):
    import json

    p = write_suite(tmp_path / "s.toml")
    p.write_text(p.read_text().replace('name = "tiny"', f"name = {json.dumps(name)}"))
    with pytest.raises(SuiteError, match="must be a plain name"):
        load_suite(p)
    monkeypatch.chdir(tmp_path)
    assert main(["bench", str(p)]) == 2
    assert "must be a plain name" in capsys.readouterr().err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.toml"]  # nothing written, inside or out


def test_identity_ignores_device_and_data_path_only(tmp_path):
    from exprbench.benchmarks.suite import identity_hash

    base = write_suite(tmp_path / "a.toml")
    other_device = tmp_path / "b.toml"
    other_device.write_text(base.read_text().replace('device = "cpu"', 'device = "auto"'))
    wider = tmp_path / "c.toml"
    wider.write_text(base.read_text().replace('"model.ch" = 8', '"model.ch" = 16'))

    def digest(p, i=1):
        s = load_suite(p)
        return identity_hash(s.identity(s.grid[i]))

    assert digest(base) == digest(other_device) != digest(wider)
    assert digest(base, 0) != digest(base, 1)
    ident = load_suite(base).identity(load_suite(base).grid[1])
    assert ident["model.ch"] == 8 and ident["name.model"] == "cgan" and "data.path" not in ident


def test_dependencies_follow_runs_placeholders():
    suite = load_suite("smoke")
    deps = {p.name: suite.dependencies(p) for p in suite.grid}
    seeds = sorted({p.seed for p in suite.grid})
    for s in seeds:  # InterFaceGAN interprets the suite's own GAN run of the same seed
        assert deps[f"interfacegan-default-s{s}"] == [f"gan-default-s{s}"]
    assert all(not v for k, v in deps.items() if not k.startswith("interfacegan-"))


@pytest.mark.parametrize("text, message", [
    ('[eval]\ncurve_every = "often"\n', r"\[eval\] curve_every = 'often' must be an integer"),
    ('models = 3\n', r"models = 3 must be a list"),
    ('train = 3\n', r"train = 3 must be a table"),
    ('[[models]]\nname = "gan"\nset = 3\n', r"\[\[models\]\] entry 1 set = 3 must be a table"),
    ('[eval]\ncurve_every = -1\n', r"curve_every = -1 must be >= 0"),
    ('[eval]\nci_draws = -5\n', r"\[eval\] ci_draws = -5 must be >= 0"),
    ('[eval]\nci_draws = "many"\n', r"\[eval\] ci_draws = 'many' must be an integer"),
])
def test_suite_values_of_the_wrong_type_are_refused_in_one_line(tmp_path, text, message):
    from exprbench.benchmarks.suite import SuiteError, load_suite

    head = 'name = "t"\nseeds = [0]\n[budget]\nsteps = 2\n'
    body = text if text.startswith("[") else ""
    top = "" if body else text
    tail = "" if "[[models]]" in text else '\n[[models]]\nname = "gan"\n'
    p = tmp_path / "t.toml"
    p.write_text(top + head + body + (tail if top == "" or "models" not in top else ""))
    with pytest.raises(SuiteError, match=message):
        load_suite(p)


def test_suite_ci_draws_reaches_the_suite():
    """``[eval] ci_draws`` (the smoke suite's cheaper intervals) is parsed; absent means the metrics' default."""
    assert load_suite("smoke").ci_draws == 20
    assert load_suite("cpu").ci_draws is None


def test_skip_metrics_reach_the_grid_points():
    """The smoke gate runs CAS on the cGAN only: every other model's points skip it, and nothing else."""
    suite = load_suite("smoke")
    skips = {p.model: p.skip_metrics for p in suite.grid}
    assert skips["cgan"] == () and skips["gan"] == () and skips["acgan"] == ("cas350",)
    assert {m for s in skips.values() for m in s} == {"cas350"} and "cas350" in suite.metrics
