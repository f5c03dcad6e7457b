"""Tests of metrics/evaluate.py: evaluate_run on tiny runs writes a complete eval.json."""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.data import load_fer2013
from exprbench.errors import DataError, RegistryError, UserError
from exprbench.metrics.evaluate import evaluate_run, resolve_eval_data_path
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator, tiny_run, write_fer_csv

DATA = real_data_path()
pytestmark = pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)")
ENTRY_KEYS = {"value", "status", "n_samples", "seed", "extractor", "extractor_sha256", "wall_s"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small FER2013 CSV, a tiny evaluator, a tiny cGAN run and a tiny unconditional GAN run."""
    root = tmp_path_factory.mktemp("eval")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    mp.setattr(torch.hub, "get_dir", lambda: str(root / "hub"))  # no Inception weights: "unavailable"
    small = subset(load_fer2013(DATA), {"train": 30, "val": 10, "test": 20})
    csv = write_fer_csv(small, root / "fer2013.csv")
    ds = load_fer2013(csv)
    ev = tiny_evaluator(ds, root / "ev.pt")
    runs = {m: tiny_run(csv, root / m, m, dataset=ds) for m in ("cgan", "gan")}
    yield {"root": root, "csv": csv, "ev": ev, "runs": runs, "ds": ds}
    mp.undo()


def test_evaluate_cgan_run(world):
    run = world["runs"]["cgan"]
    res = evaluate_run(run, n_samples=140, device="cpu", evaluator_weights=world["ev"])
    on_disk = json.loads((run / "eval.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    m, fl = res["metrics"], res["floors"]
    for name in ("fid140_train", "kid140_train", "pr140_train", "ifid140_train", "acc_gen140", "cas140"):
        assert m[name]["status"] == "ok", (name, m[name])
        assert ENTRY_KEYS <= set(m[name]) and isinstance(m[name]["value"], float)
        assert fl[name]["status"] == "ok" and isinstance(fl[name]["value"], float)
    assert m["fid140_train"]["extractor_sha256"] == res["evaluator"]["sha256"]
    assert m["kid140_train"]["details"]["kid_subset_size"] == 140 and "std" in m["kid140_train"]
    assert set(m["pr140_train"]["details"]) >= {"precision", "recall", "f_score"}
    assert len(m["ifid140_train"]["details"]["per_class"]) == 7
    assert len(m["acc_gen140"]["details"]["confusion_matrix"]) == 7
    assert "ratio_to_real" in m["cas140"]["details"]
    # the accuracy floor is the evaluator's accuracy on real test images = its card
    assert fl["acc_gen140"]["value"] == res["evaluator"]["test_accuracy"]
    inc = m["fid140_train_inception"]
    assert inc["status"] == "unavailable" and inc["value"] is None and "inception" in inc["reason"].lower()
    assert res["run"]["model"] == "cgan" and res["run"]["step"] == 2
    assert res["protocol_version"] and "torch" in res["versions"] and res["wall_s"] > 0
    # generated-set features are not left in the cache
    assert not list((world["root"] / "cache" / "fidelity").glob("exprbench-gen-*"))


def test_unconditional_run_skips_class_metrics(world):
    res = evaluate_run(world["runs"]["gan"], metrics=["fid70_train", "ifid_train", "acc_gen"], device="cpu",
                       evaluator_weights=world["ev"])
    m = res["metrics"]
    assert m["fid70_train"]["status"] == "ok" and m["fid70_train"]["n_samples"] == 70
    for name in ("ifid_train", "acc_gen"):
        assert m[name]["status"] == "skipped" and "conditional" in m[name]["reason"] and m[name]["value"] is None


def test_same_seed_same_numbers(world):
    a = evaluate_run(world["runs"]["cgan"], metrics=["fid70_train"], device="cpu", evaluator_weights=world["ev"])
    b = evaluate_run(world["runs"]["cgan"], metrics=["fid70_train"], device="cpu", evaluator_weights=world["ev"])
    assert a["metrics"]["fid70_train"]["value"] == b["metrics"]["fid70_train"]["value"]


def test_bad_inputs(world, tmp_path):
    run = world["runs"]["cgan"]
    with pytest.raises(UserError, match="not a run directory"):
        evaluate_run(tmp_path)
    with pytest.raises(RegistryError):
        evaluate_run(run, metrics=["fid_bogus"])
    with pytest.raises(UserError, match="positive"):
        evaluate_run(run, n_samples=0)
    with pytest.raises(UserError, match="per class"):
        evaluate_run(run, metrics=["acc_gen"], n_samples=3, evaluator_weights=world["ev"])
    with pytest.raises(DataError):
        evaluate_run(run, data=tmp_path / "missing.zip", evaluator_weights=world["ev"])
    with pytest.raises(UserError, match="no such file"):
        evaluate_run(run, inception_weights=tmp_path / "none.pth", evaluator_weights=world["ev"])


def test_data_path_resolution(tmp_path, monkeypatch):
    f = tmp_path / "d.zip"
    f.write_bytes(b"")
    monkeypatch.setenv("EXPRBENCH_DATA", str(f))
    assert resolve_eval_data_path(None, str(tmp_path / "gone.zip")) == str(f)
    assert resolve_eval_data_path(None, str(f)) == str(f)
    monkeypatch.delenv("EXPRBENCH_DATA")
    with pytest.raises(DataError, match="--data"):
        resolve_eval_data_path(None, str(tmp_path / "gone.zip"))



def test_floors_cached_and_shared_between_runs(world, monkeypatch):
    """Floors do not depend on the model: evaluating a second run reads them from the floor cache."""
    import exprbench.metrics.evaluate as ev

    metrics = ["fid70_train", "acc_gen70"]
    first = evaluate_run(world["runs"]["cgan"], metrics=metrics, device="cpu", evaluator_weights=world["ev"])
    floors_dir = ev.fidelity_cache_root() / "floors"
    assert {p.name.split("-")[0] for p in floors_dir.glob("*.json")} >= set(metrics)
    real_roles = []
    real = ev._run_protocol
    monkeypatch.setattr(ev, "_run_protocol", lambda p, ctx, real_role: real_roles.append(real_role) or real(p, ctx, real_role))
    second = evaluate_run(world["runs"]["gan"], metrics=metrics, device="cpu", evaluator_weights=world["ev"])
    assert True not in real_roles, "a floor was recomputed instead of read from the cache"
    assert second["floors"] == first["floors"]
