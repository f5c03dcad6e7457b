"""Tests of metrics/run/sweep.py: ``exprbench sweep`` evaluates one checkpoint at several sampling settings."""

from __future__ import annotations

import json

import pytest

from exprbench.core.errors import UserError
from exprbench.data import load_fer2013
from exprbench.metrics.run.sweep import parse_setting, sweep_run
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator, tiny_run, write_fer_csv

DATA = real_data_path()
pytestmark = pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)")
METRICS = ["acc_gen14", "fid20_train_ml"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small FER2013 CSV, a tiny evaluator, a tiny diffusion run (2 steps, 2 sampler steps) and a tiny cGAN run."""
    root = tmp_path_factory.mktemp("sweep")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    small = subset(load_fer2013(DATA), {"train": 30, "val": 10, "test": 20})
    csv = write_fer_csv(small, root / "fer2013.csv")
    ds = load_fer2013(csv)
    ev = tiny_evaluator(ds, root / "ev.pt")
    runs = {m: tiny_run(csv, root / m, m, dataset=ds) for m in ("diffusion", "cgan")}
    cfg = json.loads((runs["diffusion"] / "config.json").read_text())
    cfg["model_cfg"]["sample_steps"] = 2  # cheap sampling for the test
    (runs["diffusion"] / "config.json").write_text(json.dumps(cfg))
    yield {"ev": ev, "runs": runs}
    mp.undo()


def test_parse_setting():
    assert parse_setting("model.guidance=0,0.5, 2") == ("guidance", [0, 0.5, 2])
    for bad in ("guidance=1", "model.guidance=", "train.lr=1,2", "model.guidance=1,1"):
        with pytest.raises(UserError):
            parse_setting(bad)


def test_guidance_sweep_writes_one_point_per_value_and_resumes(world):
    run = world["runs"]["diffusion"]
    doc = sweep_run(run, "guidance", [0, 1], METRICS, device="cpu", evaluator_weights=world["ev"])
    assert [p["value"] for p in doc["points"]] == [0.0, 1.0]
    assert [p["sampling"]["guidance"] for p in doc["points"]] == [0.0, 1.0]
    assert doc["points"][1]["sampling"]["evaluations"] == 2 * doc["points"][0]["sampling"]["evaluations"]
    for p in doc["points"]:
        assert all(p["metrics"][m]["status"] == "ok" for m in METRICS)
    assert json.loads((run / "sweeps" / "guidance.json").read_text()) == json.loads(json.dumps(doc))
    again = sweep_run(run, "guidance", [0, 1, 2], METRICS, device="cpu", evaluator_weights=world["ev"])
    assert [p["value"] for p in again["points"]] == [0.0, 1.0, 2.0]
    assert again["points"][:2] == doc["points"]  # kept (wall times and evaluation times included), not computed again


@pytest.mark.parametrize("setting, value, match", [
    ("lr", 1.0, "not a sampling setting of 'diffusion'"),
    ("guidance", -1.0, "model.guidance"),
])
def test_sweep_refuses_what_is_not_a_sampling_value(world, setting, value, match):
    with pytest.raises(UserError, match=match):
        sweep_run(world["runs"]["diffusion"], setting, [value], METRICS, device="cpu", evaluator_weights=world["ev"])


def test_sweep_refuses_a_model_without_sampling_settings_and_protocols_that_need_more(world):
    with pytest.raises(UserError, match="its sampling settings: none"):
        sweep_run(world["runs"]["cgan"], "guidance", [1.0], METRICS, device="cpu", evaluator_weights=world["ev"])
    with pytest.raises(UserError, match="does not score generated images"):
        sweep_run(world["runs"]["diffusion"], "guidance", [1.0], ["edit_success"], device="cpu",
                  evaluator_weights=world["ev"])


def test_report_shows_a_sweep_as_a_table_and_a_figure(world, tmp_path):
    import shutil

    from exprbench.benchmarks.report.build import write_report
    from exprbench.metrics.run.evaluate import evaluate_run

    run = tmp_path / "runs" / "diffusion-default-s0"
    shutil.copytree(world["runs"]["diffusion"], run)
    evaluate_run(run, metrics=["acc_gen14"], device="cpu", evaluator_weights=world["ev"])
    sweep_run(run, "guidance", [0, 2], METRICS, device="cpu", evaluator_weights=world["ev"])
    out = write_report(tmp_path, html=True)
    md = (out / "leaderboard.md").read_text()
    assert "## Sampling sweeps" in md and "| model.guidance | evaluations / image | acc_gen14 | fid20_train_ml |" in md
    assert "\n| 2 | 6 | " in md  # w = 2: two sampler steps, 3 evaluations of D, twice with guidance
    assert (out / "figures" / "sweep_diffusion-default-s0_guidance.png").is_file()
    assert 'id="sweeps"' in (out / "index.html").read_text()
