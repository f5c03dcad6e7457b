"""Issue 12 protocols through evaluate_run on a tiny run: dc/mem entries, ci95 on fidelity and accuracy
entries, the closest-pairs files, balanced accuracy beside chance and majority baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from exprbench.data import load_fer2013
from exprbench.metrics.run.context import EvalContext
from exprbench.metrics.run.evaluate import evaluate_run
from exprbench.metrics.families.fidelity import fid_from_features, fidelity_features, fidelity_scores
from exprbench.metrics.protocols.catalog import resolve_metric
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator, tiny_run, write_fer_csv

DATA = real_data_path()
pytestmark = pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    mp.setattr(torch.hub, "get_dir", lambda: str(root / "hub"))
    small = subset(load_fer2013(DATA), {"train": 30, "val": 10, "test": 20})
    csv = write_fer_csv(small, root / "fer2013.csv")
    ds = load_fer2013(csv)
    ev = tiny_evaluator(ds, root / "ev.pt")
    run = tiny_run(csv, root / "cgan", "cgan", dataset=ds)
    metrics = ["fid70_train", "kid70_train", "pr70_train", "dc70_train", "mem70_train", "ifid70_train", "acc_gen70",
               "cas140"]
    res = evaluate_run(run, metrics=metrics, device="cpu", evaluator_weights=ev)
    yield {"root": root, "csv": csv, "ev": ev, "run": run, "ds": ds, "res": res}
    mp.undo()


def test_registered():
    assert resolve_metric("dc10k_train").family == "dc" and resolve_metric("mem10k_train").family == "mem"
    assert resolve_metric("dc1k_train").n_samples == 1000
    assert resolve_metric("mem10k_train").with_n(2000).name == "mem2k_train"


def test_entries_and_keys(world):
    res = world["res"]
    m, fl = res["metrics"], res["references"]
    on_disk = json.loads((world["run"] / "eval.json").read_text())
    assert on_disk["metrics"]["dc70_train"]["details"]["density"] == m["dc70_train"]["details"]["density"]
    for name in ("fid70_train", "kid70_train", "pr70_train", "dc70_train", "mem70_train", "ifid70_train", "acc_gen70",
                 "cas140"):
        for e in (m[name], fl[name]):
            assert e["status"] == "ok", (name, e)
            lo, hi = e["ci95"]
            assert lo <= e["value"] <= hi and e["ci_draws"] == 200 and isinstance(e["ci_seed"], int), (name, e)
    d = m["dc70_train"]["details"]
    assert m["dc70_train"]["value"] == d["coverage"] and d["k"] == 5 and d["density"] >= 0
    pr = m["pr70_train"]["details"]
    assert {"precision", "recall", "precision_ci95", "recall_ci95"} <= set(pr)
    assert pr["precision_ci95"][0] <= pr["precision"] <= pr["precision_ci95"][1]
    fd = m["fid70_train"]["details"]
    assert isinstance(fd["fid_inf"], float) and len(fd["fid_at_n"]) == 3
    # memorisation: the real-data value is ~5% of the test faces by construction (70 of the 140 here)
    mem = m["mem70_train"]["details"]
    assert len(mem["closest_pairs"]) == 16 and 0.0 <= m["mem70_train"]["value"] <= 1.0
    assert 0.0 <= fl["mem70_train"]["value"] <= 0.15
    # every fidelity reference at the protocol's count: 70 of the 140 PrivateTest faces
    for name in ("fid70_train", "kid70_train", "pr70_train", "dc70_train"):
        assert fl[name]["n_samples"] == 70 and fl[name]["details"]["reference_set"] == "PrivateTest", name
        assert fl[name]["details"]["reference_selection"] == "random70-seed0" and fl[name]["n_protocol"] == 70
    assert fl["ifid70_train"]["details"]["n_reference_per_class"] == {n: 10 for n in world["ds"].class_names}
    arr = np.load(world["run"] / mem["pairs_files"]["npy"])
    assert arr.shape == (16, 2, 48, 48) and arr.dtype == np.uint8
    assert (world["run"] / "figures_input" / "mem70_train_pairs.png").exists()
    ds = world["ds"]
    train = ds.split("train")
    first = mem["closest_pairs"][0]
    assert np.array_equal(arr[0, 1], train.images[first["train_index"], 0].numpy())
    # class-balanced accuracy and the trivial baselines
    for name in ("acc_gen70", "cas140"):
        det = m[name]["details"]
        assert 0.0 <= det["balanced_acc"] <= 1.0 and det["chance"] == pytest.approx(1 / 7)
        assert det["majority_class"] in ds.class_names and det["majority_balanced_acc"] == pytest.approx(1 / 7)
    assert m["acc_gen70"]["details"]["majority_acc"] == pytest.approx(1 / 7)  # 10 per class generated
    ref = fl["acc_gen70"]
    assert ref["value"] == ref["details"]["balanced_acc"] and ref["details"]["accuracy"] is not None
    assert "stratified by class" in ref["ci_method"]
    cas, cas_ref = m["cas140"], fl["cas140"]  # CAS: the balanced accuracy on the imbalanced test split, both sides
    assert cas["value"] == cas["details"]["balanced_acc"] and cas_ref["value"] == cas_ref["details"]["balanced_acc"]
    assert cas["details"]["ratio_to_real"] == pytest.approx(cas["value"] / cas_ref["value"])
    assert res["warnings"] == [] and res["data"]["fingerprint_match"] in (True, None)


def test_fid_equals_torch_fidelity(world):
    """The headline FID is torch-fidelity's; recomputed from the features it cached it agrees to 1e-6."""
    from exprbench.runs.loader import load_trained

    res = world["res"]
    _, model, _, _ = load_trained(world["run"], torch.device("cpu"), "latest")
    ctx = EvalContext(model, world["ds"], torch.device("cpu"), world["ev"], None)
    gen, _ = ctx.generate(70, 0, per_class=False)
    direct = fidelity_scores(gen, ctx.train.images, ("fid",), evaluator_weights=world["ev"])["fid"]
    assert direct == pytest.approx(res["metrics"]["fid70_train"]["value"], rel=1e-9, abs=1e-12)
    from torch_fidelity.metric_fid import fid_features_to_statistics

    gf = fidelity_features(gen, None, evaluator_weights=world["ev"])
    rf = fidelity_features(ctx.train.images, None, evaluator_weights=world["ev"], role="real")
    assert abs(fid_from_features(gf, fid_features_to_statistics(rf)) - direct) <= 1e-6 * max(1.0, direct)


def test_print_eval_shows_new_columns(world):
    import io

    from rich.console import Console

    from exprbench.metrics.run.console import print_eval

    buf = io.StringIO()
    print_eval(world["res"], console=Console(file=buf, width=200))
    out = buf.getvalue()
    assert "density" in out and "coverage" in out and "balanced accuracy" in out and "infinite N" in out


def test_curves_skip_intervals_same_values(world):
    """evaluate_model (training curves) computes the same values without the bootstrap work."""
    from exprbench.metrics.run.evaluate import evaluate_model
    from exprbench.runs.loader import load_trained

    _, model, _, _ = load_trained(world["run"], torch.device("cpu"), "latest")
    names = ["fid70_train", "dc70_train", "mem70_train", "acc_gen70"]
    got = evaluate_model(model, world["ds"], names, evaluator_weights=world["ev"])
    for n in names:
        assert got[n]["status"] == "ok" and "ci95" not in got[n]
        assert got[n]["value"] == world["res"]["metrics"][n]["value"], n
    assert "pairs_files" not in got["mem70_train"]["details"]


def test_references_beyond_the_test_split(world):
    """A count above PrivateTest (140 here) takes PublicTest (70) too; above both, all 210 with FID read at the
    protocol's count from the 1/N fit; intra-class FID per class likewise."""
    res = evaluate_run(world["run"], metrics=["fid200_train", "fid300_train", "mem300_train", "ifid350_train"],
                       device="cpu", evaluator_weights=world["ev"])
    fl = res["references"]
    assert fl["fid200_train"]["n_samples"] == 200 and fl["fid200_train"]["details"]["reference_set"] == (
        "PrivateTest + PublicTest")
    assert "at_protocol_n" not in fl["fid200_train"]["details"]
    big = fl["fid300_train"]
    assert big["n_samples"] == 210 and big["n_protocol"] == 300 and big["details"]["reference_selection"] == "all"
    at = big["details"]["at_protocol_n"]
    fit = big["details"]
    assert at["n"] == 300 and at["value"] == pytest.approx(fit["fid_inf"] + fit["fid_inf_slope"] / 300)
    assert fl["mem300_train"]["details"]["reference_n"] == 210
    assert fl["ifid350_train"]["details"]["n_reference_per_class"] == {n: 30 for n in world["ds"].class_names}
    import io

    from rich.console import Console

    from exprbench.metrics.run.console import print_eval

    buf = io.StringIO()
    print_eval(res, console=Console(file=buf, width=250), only=["fid300_train", "ifid350_train"])
    out = buf.getvalue()
    assert "(N=210)" in out and "protocol's N=300" in out and "at most 50 each" in out


def test_ci_draws_override_keeps_values(world):
    """``evaluate_run(ci_draws=k)``: entries record k draws, and the values equal those at 200 draws."""
    res = evaluate_run(world["run"], metrics=["fid70_train", "acc_gen70"], device="cpu", evaluator_weights=world["ev"],
                       ci_draws=10)
    for name in ("fid70_train", "acc_gen70"):
        e = res["metrics"][name]
        assert e["ci_draws"] == 10 and e["value"] == pytest.approx(world["res"]["metrics"][name]["value"], rel=1e-6), name
