"""The capability protocols (enc_acc, probe, recon_l1, translate_acc, translate_fid) through ``evaluate_run``.

Tiny runs (2 training steps, ``model.ch=8``) of BiCoGAN (encode + conditional + translate), BiGAN (encode),
CCycleGAN (translate) and the unconditional GAN (none of them) on a small FER2013 subset, with a tiny
evaluator: every protocol runs on a model with its capability, is skipped with a reason on one without,
renames with ``--n-samples``, and gets the reference its declaration documents (``metrics/protocols/builtin.py``).
"""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.data import load_fer2013
from exprbench.core.errors import UserError
from exprbench.metrics.run.evaluate import evaluate_run
from exprbench.metrics.run.references import reference_key
from exprbench.metrics.protocols.catalog import default_metrics, resolve_metric
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator, write_fer_csv

DATA = real_data_path()
pytestmark = pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)")

CAPABILITY = ["enc_acc_test", "probe_test", "recon_test", "translate_acc_test", "translate_fid_test"]
N = 35  # --n-samples in the tests: 35 of the 70 test images of the small set
NAMES = {"enc_acc_test": "enc_acc35_test", "probe_test": "probe35_test", "recon_test": "recon35_test",
         "translate_acc_test": "translate_acc35_test", "translate_fid_test": "translate_fid35_test"}


def _tiny_run(csv, out, model: str, ds):
    """``model`` trained 2 steps at ``model.ch=8`` into run directory ``out``."""
    from exprbench.runs.config import resolve_config
    from exprbench.runs.harness import Trainer

    cfg = resolve_config(model, "default", [
        "model.ch=8", "train.steps=2", "train.batch_size=8", "train.device=cpu", "train.sample_every=0",
        "train.ckpt_every=0", "train.samples_per_class=1", "train.log_every=1", f"data.path={csv}"])
    Trainer(cfg, out, dataset=ds, progress=False).run()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small FER2013 CSV (30/5/10 per class), a tiny evaluator and tiny bicogan/bigan/ccyclegan/gan runs."""
    root = tmp_path_factory.mktemp("capeval")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    mp.setattr(torch.hub, "get_dir", lambda: str(root / "hub"))
    small = subset(load_fer2013(DATA), {"train": 30, "val": 5, "test": 10})
    csv = write_fer_csv(small, root / "fer2013.csv")
    ds = load_fer2013(csv)
    ev = tiny_evaluator(ds, root / "ev.pt", epochs=1)
    runs = {m: _tiny_run(csv, root / m, m, ds) for m in ("bicogan", "bigan", "ccyclegan", "gan")}
    yield {"root": root, "csv": csv, "ev": ev, "runs": runs, "ds": ds}
    mp.undo()


def _eval(world, model, metrics=CAPABILITY, n=N):
    return evaluate_run(world["runs"][model], metrics=metrics, n_samples=n, device="cpu",
                        evaluator_weights=world["ev"])


def test_registry_entries():
    fams = {n: resolve_metric(n).family for n in CAPABILITY}
    assert fams == {"enc_acc_test": "enc_acc", "probe_test": "probe", "recon_test": "recon_l1",
                    "translate_acc_test": "translate_acc", "translate_fid_test": "translate_fid"}
    assert resolve_metric("enc_acc_test").needs == {"encode", "conditional"}
    assert resolve_metric("probe_test").needs == {"encode"} == resolve_metric("recon_test").needs
    assert resolve_metric("translate_fid_test").needs == {"translate"}
    assert set(CAPABILITY) <= set(default_metrics())
    for name, renamed in NAMES.items():
        assert resolve_metric(name).with_n(N).name == renamed
        assert resolve_metric(renamed).n_samples == N and resolve_metric(renamed).family == fams[name]
    assert resolve_metric("recon1k_test").n_samples == 1000
    assert len({resolve_metric(n).seed for n in CAPABILITY}) == 1  # one shared test subset


def test_bicogan_runs_every_capability_protocol(world):
    res = _eval(world, "bicogan")
    m, fl = res["metrics"], res["references"]
    assert set(m) == set(NAMES.values())
    for name in NAMES.values():
        assert m[name]["status"] == "ok", (name, m[name])
        assert m[name]["n_samples"] == N and m[name]["seed"] == resolve_metric("recon_test").seed
        assert isinstance(m[name]["value"], float)
    enc = m["enc_acc35_test"]
    assert 0 <= enc["value"] <= 1 and len(enc["details"]["confusion_matrix"]) == 7
    assert sum(map(sum, enc["details"]["confusion_matrix"])) == N and len(enc["details"]["per_class"]) == 7
    probe = m["probe35_test"]
    assert 0 <= probe["value"] <= 1 and probe["details"]["n_train"] == 7 * 30  # <= 300 per class, 30 available
    rec = m["recon35_test"]
    assert 0 <= rec["value"] <= 1 and -1 <= rec["details"]["ssim"] <= 1
    assert 0 <= rec["details"]["label_agreement"] <= 1
    ta = m["translate_acc35_test"]["details"]
    assert len(ta["pair_matrix"]) == 7 and all(ta["pair_matrix"][i][i] is None for i in range(7))
    assert ta["n_pairs"] == N * 6 and ta["feature_distance"] >= 0 and 0 <= ta["identity_l1"] <= 1
    tf = m["translate_fid35_test"]
    assert tf["value"] >= 0 and tf["extractor_sha256"] == res["evaluator"]["sha256"]
    per = tf["details"]["per_target"]
    assert abs(tf["value"] - sum(per.values()) / len(per)) < 1e-9
    assert sum(tf["details"]["n_translated_per_target"].values()) <= N * 6
    # references: the evaluator's real-test accuracy for the accuracies, unavailable with a reason otherwise
    for name in ("enc_acc35_test", "translate_acc35_test"):
        assert fl[name]["status"] == "ok" and fl[name]["details"]["accuracy"] == res["evaluator"]["test_accuracy"]
        assert fl[name]["extractor"] == "fer-evaluator"
    # enc_acc reads test faces in their natural balance: plain accuracy on both sides; translate_acc is balanced
    # over its targets: the evaluator's class-balanced accuracy
    assert fl["enc_acc35_test"]["value"] == res["evaluator"]["test_accuracy"]
    assert fl["translate_acc35_test"]["value"] == fl["translate_acc35_test"]["details"]["balanced_acc"]
    per_target = [v for v in ta["per_target"].values() if v is not None]
    assert m["translate_acc35_test"]["value"] == pytest.approx(sum(per_target) / len(per_target))
    assert 0 <= ta["accuracy"] <= 1
    for name in ("probe35_test", "recon35_test", "translate_fid35_test"):
        assert fl[name]["status"] == "unavailable" and fl[name]["value"] is None and fl[name]["reason"]
    # only ok references are cached, and the printed table handles every entry
    from exprbench.metrics.families.fidelity_inputs import fidelity_cache_root

    cached = [p.name for p in (fidelity_cache_root() / "floors").glob("*.json")]
    assert any(c.startswith("enc_acc35_test-") for c in cached)
    assert not any(c.startswith(("probe35", "recon35", "translate_fid35")) for c in cached)
    from exprbench.metrics.run.console import print_eval
    from rich.console import Console

    console = Console(record=True, width=200)
    print_eval(json.loads(json.dumps(res)), console)
    assert "identity L1" in console.export_text()


def test_bigan_encode_only(world):
    res = _eval(world, "bigan", ["enc_acc_test", "probe_test", "recon_test", "translate_acc_test"])
    m = res["metrics"]
    assert m["probe35_test"]["status"] == "ok" and m["recon35_test"]["status"] == "ok"
    assert m["enc_acc35_test"]["status"] == "skipped" and "conditional" in m["enc_acc35_test"]["reason"]
    assert m["translate_acc35_test"]["status"] == "skipped" and "translate" in m["translate_acc35_test"]["reason"]
    # a skipped protocol computes no real-data reference
    assert res["references"]["enc_acc35_test"]["status"] == "skipped"


def test_ccyclegan_translate_only(world):
    res = _eval(world, "ccyclegan", ["translate_acc_test", "translate_fid_test", "recon_test"])
    m = res["metrics"]
    assert m["translate_acc35_test"]["status"] == "ok" and m["translate_fid35_test"]["status"] == "ok"
    assert m["recon35_test"]["status"] == "skipped" and "encode" in m["recon35_test"]["reason"]


def test_gan_skips_all_with_reasons(world):
    res = _eval(world, "gan", n=None)  # default count: 700 > the 70 test images, names without a count
    for name in CAPABILITY:
        e = res["metrics"][name]
        assert e["status"] == "skipped" and e["value"] is None and "lacks capability" in e["reason"]
    assert res["references"]["translate_acc_test"]["status"] == "skipped"
    assert res["references"]["recon_test"]["status"] == "unavailable"


def test_reference_key_and_bad_count(world):
    from exprbench.metrics.run.context import EvalContext

    ctx = EvalContext(object.__new__(type("M", (), {"capabilities": frozenset()})), world["ds"], torch.device("cpu"),
                   world["ev"], None)
    assert len(reference_key(resolve_metric("enc_acc_test"), ctx)) == 24  # model-encoder: evaluator sha
    with pytest.raises(UserError, match="at least one sample per class"):
        _eval(world, "ccyclegan", ["translate_acc_test"], n=3)
