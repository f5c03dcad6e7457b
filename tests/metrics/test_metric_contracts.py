"""Contract tests over every registered metric (torch-fidelity ``test_batchsize_independence.py`` style):
batch sizes do not change a value, every declaration is complete, registration validates, a metric
registered at run time shows up in ``exprbench metrics`` and in an evaluation, figure inputs are written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from exprbench.data import load_fer2013
from exprbench.core.errors import RegistryError
from exprbench.metrics.run.context import EvalContext
from exprbench.metrics.run.evaljson import merge_eval, references_of
from exprbench.metrics.families.fidelity_inputs import drop_generated_cache
from exprbench.metrics.run.references import run_protocol
from exprbench.core.capabilities import CAPABILITIES
from exprbench.metrics.protocols.names import DIRECTIONS
from exprbench.metrics.protocols.presentation import LEADERBOARD_TABLES, TABLES, Presentation
from exprbench.metrics.protocols.spec import METRICS, Entry, MetricSpec, register_metric, unregister_metric
from exprbench.metrics.protocols.catalog import all_metrics, default_metrics, derived_columns, higher_is_better, resolve_metric, table_of
from exprbench.metrics.testing import tiny_evaluator
from tests.conftest import write_csv

from .fakes import FakeModel

N = 14  # 2 per class: the least most protocols take (see _n)


def _n(spec) -> int:
    """N, or the least a per-class protocol with a higher floor takes (CAS: 20 per class)."""
    return max(N, spec.min_samples * 7) if spec.per_class else N


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("contracts")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    mp.setattr(torch.hub, "get_dir", lambda: str(root / "hub"))  # no Inception weights: "unavailable"
    ds = load_fer2013(write_csv(root / "fer2013.csv", per_class=6))
    ev = tiny_evaluator(ds, root / "ev.pt", epochs=1)
    yield {"root": root, "ds": ds, "ev": ev}
    mp.undo()


def _ctx(world, batch_size: int, model_batch_size: int, model=None, **config) -> EvalContext:
    return EvalContext(model or FakeModel(world["ds"].spec), world["ds"], torch.device("cpu"), world["ev"], None,
                       ci_draws=0, batch_size=batch_size, model_batch_size=model_batch_size, **config)


@pytest.mark.parametrize("name", all_metrics())
def test_batch_size_independence(world, name):
    """The same inputs split into other batch sizes give the same value (and the same status)."""
    spec = resolve_metric(name)
    spec = spec.with_n(_n(spec))
    entries = []
    for bs, mbs in ((500, 256), (3, 2)):
        ctx = _ctx(world, bs, mbs)
        try:
            entries.append(run_protocol(spec, ctx, real=False))
        finally:
            drop_generated_cache(ctx.gen_cache_names)
    a, b = entries
    assert a["status"] == b["status"], (a, b)
    if a["status"] == "ok":
        assert b["value"] == pytest.approx(a["value"], rel=1e-5, abs=1e-6), name
        if a.get("std") is not None:
            assert b["std"] == pytest.approx(a["std"], rel=1e-4, abs=1e-6)
        assert a["n_samples"] == b["n_samples"]
    else:
        assert a["reason"] == b["reason"]


@pytest.mark.parametrize("name", all_metrics())
def test_declaration_is_complete(name):
    s = resolve_metric(name)
    assert s.direction in DIRECTIONS and s.show.table in TABLES
    assert (s.reference is None) == bool(s.no_reference), "a reference, or a reason why there is none"
    assert s.summary and s.family and s.needs <= set(CAPABILITIES)
    assert s.name_pattern and "{n}" in s.name_pattern
    renamed = s.with_n(123).name
    assert resolve_metric(renamed).n_samples == 123 and resolve_metric(renamed).family == s.family
    assert higher_is_better(name) == (s.direction == "higher") and table_of(name) == s.show.table
    for key, d in derived_columns(name).items():
        assert higher_is_better(f"{name}:{key}") == (d == "higher") and table_of(f"{name}:{key}") == s.show.table
    assert callable(s.compute_fn()) and callable(s.show.details)
    assert (s.reference_fn() is None) == (s.reference is None)


def test_accessors_and_tables():
    assert [t for t, _ in LEADERBOARD_TABLES] == list(TABLES)
    assert {resolve_metric(n).show.table for n in all_metrics()} <= set(TABLES)
    assert higher_is_better("pr1k_train:recall") and not higher_is_better("fid1k_train")
    assert not higher_is_better("edit_success:entanglement") and higher_is_better("recon_test:ssim")
    with pytest.raises(RegistryError, match="no derived column"):
        higher_is_better("fid10k_train:recall")
    assert default_metrics()[0] == "fid10k_train_ml" and "kid10k_train_inception" not in default_metrics()  # the realism space first


@pytest.mark.parametrize("bad, match", [
    (dict(direction="up"), "direction 'up'"),
    (dict(show=Presentation(table="nowhere")), "table 'nowhere'"),
    (dict(no_reference=""), "no_reference="),
    (dict(needs={"fly"}), "unknown capabilities fly"),
    (dict(colour="red"), "unknown declaration field"),
    (dict(show=Presentation(table="fidelity", derived={"x": "sideways"})), "derived column 'x'"),
    (dict(table="fidelity"), "unknown declaration field"),  # how it is shown goes in show=Presentation(...)
    (dict(name_pattern=""), "name_pattern is required"),
    (dict(computed_in="not a module"), "computed_in must name a module"),
])
def test_registration_validates(bad, match):
    decl = dict(needs={"sample"}, n_samples=10, seed=0, direction="lower", show=Presentation(table="fidelity"),
                no_reference="a test", summary="t", name="bogus_test", name_pattern="bogus{n}_test", computed_in=__name__)
    decl.update(bad)
    with pytest.raises(RegistryError, match=match):
        register_metric(**decl)
    assert "bogus_test" not in METRICS


def test_registration_refuses_duplicates_and_bad_names():
    with pytest.raises(RegistryError, match="registered twice"):
        register_metric(needs={"sample"}, n_samples=10, seed=0, direction="lower", show=Presentation(table="fidelity"),
                        no_reference="a test", name="fid10k_train", name_pattern="fid{n}_train", computed_in=__name__)
    with pytest.raises(RegistryError, match="lower-case"):
        register_metric(needs={"sample"}, n_samples=10, seed=0, direction="lower", show=Presentation(table="fidelity"),
                        no_reference="a test", name="Bad-Name", name_pattern="bad{n}", computed_in=__name__)


def compute_brt(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """The family of the throw-away metric ``brt14``: mean brightness in [0, 1] of its generated images."""
    imgs, _ = ctx.generate(spec.n_samples, spec.seed, per_class=False)
    return {"value": float(imgs.float().mean() / 255), "n_samples": int(imgs.shape[0])}


def test_runtime_metric_in_listing_and_evaluation(world, capsys):
    """A metric registered at run time is listed by ``exprbench metrics`` and evaluated like the built-ins."""
    from exprbench.cli import main
    from exprbench.metrics.run.evaluate import evaluate_model

    register_metric(name="brt14", computed_in=__name__, needs={"sample"}, n_samples=N, seed=9, direction="higher",
                    no_reference="a throw-away test metric", name_pattern="brt{n}", summary="mean brightness (test)",
                    show=Presentation(table="fidelity", details=lambda e, ref: f"brightness {e['value']:.3f}"))
    try:
        assert main(["metrics"]) == 0
        assert "brt14" in capsys.readouterr().out
        assert "brt14" in default_metrics() and table_of("brt7") == "fidelity" and higher_is_better("brt14")
        res = evaluate_model(FakeModel(world["ds"].spec), world["ds"], ["brt14", "brt7"], evaluator_weights=world["ev"])
        assert res["brt14"]["status"] == "ok" and 0 < res["brt14"]["value"] < 1
        assert res["brt7"]["n_samples"] == 7
    finally:
        unregister_metric("brt14")
    assert "brt14" not in METRICS


def test_iw_bound_only_with_its_capability(world):
    spec = resolve_metric("bpd_test").with_n(N)
    with_iw = run_protocol(spec, _ctx(world, 500, 256), real=False)
    assert with_iw["details"]["iw_bpd"] == pytest.approx(with_iw["value"] - 0.1, abs=1e-5)
    caps = FakeModel.capabilities - {"iw_likelihood"}
    without = run_protocol(spec, _ctx(world, 500, 256, FakeModel(world["ds"].spec, caps)), real=False)
    assert without["details"]["iw_bpd"] is None and without["value"] == with_iw["value"]


def test_protocol_that_does_not_apply_is_skipped(world):
    """A protocol declared for other label sets, or whose network cannot read the data, is skipped."""

    register_metric(name="only14_celeba", computed_in=__name__, needs={"sample"}, n_samples=N, seed=0,
                    direction="lower", show=Presentation(table="fidelity"), no_reference="test",
                    datasets=("celeba-Smiling",), name_pattern="only{n}_celeba")  # no compute_only: it must not run

    try:
        e = run_protocol(resolve_metric("only14_celeba"), _ctx(world, 500, 256), real=False)
        assert e["status"] == "skipped" and "celeba-Smiling" in e["reason"] and "fer7" in e["reason"]
    finally:
        unregister_metric("only14_celeba")
    from exprbench.metrics.run.eval_config import network_mismatch

    ctx = _ctx(world, 500, 256)
    rgb64 = type("D", (), {"images": torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "label_set": "celeba-Smiling",
                           "class_names": ("not", "smiling")})()
    assert "48 x 48" in network_mismatch("fer-evaluator", rgb64, ctx.evaluator)
    assert network_mismatch("fer-evaluator", world["ds"], ctx.evaluator) is None


def test_figure_inputs(world, tmp_path):
    from exprbench.metrics.run.run_figures import PER_CLASS, write_figure_inputs

    ctx = _ctx(world, 500, 256, out_dir=tmp_path)
    out = write_figure_inputs(ctx)
    assert out["files"] == ["edits", "samples", "translations"]
    index = json.loads((tmp_path / "figures" / "index.json").read_text())
    k, (h, w) = len(world["ds"].class_names), world["ds"].images.shape[2:]
    assert index["samples"]["rows"] == list(world["ds"].class_names) and len(index["samples"]["columns"]) == PER_CLASS
    assert index["translations"]["columns"][0] == "source" and len(index["translations"]["columns"]) == k + 1
    for name, e in index.items():
        assert e["file"] == f"{name}.png" and e["cell"] == [h, w] and e["what"]
        img = np.asarray(Image.open(tmp_path / "figures" / e["file"]))
        assert img.shape[:2] == (len(e["rows"]) * h, len(e["columns"]) * w), name
    assert not list((tmp_path / "figures").glob("*.tmp"))
    # a later evaluation without memorisation keeps the earlier closest-pairs entry (its file is there)
    (tmp_path / "figures" / "closest_pairs.png").write_bytes(b"png")
    (tmp_path / "figures" / "gone.png").unlink(missing_ok=True)
    index["closest_pairs"] = {"file": "closest_pairs.png", "rows": ["pairs 1-4"], "columns": ["sample"],
                              "cell": [h, w], "what": "earlier"}
    index["gone"] = {"file": "gone.png", "rows": [], "columns": [], "cell": [h, w], "what": "file deleted"}
    (tmp_path / "figures" / "index.json").write_text(json.dumps(index))
    write_figure_inputs(ctx)
    again = json.loads((tmp_path / "figures" / "index.json").read_text())
    assert sorted(again) == ["closest_pairs", "edits", "samples", "translations"]
    assert again["closest_pairs"]["what"] == "earlier"


def test_old_floors_still_read():
    old = {"metrics": {"fid1k_train": {"value": 3.0, "status": "ok"}},
           "floors": {"fid1k_train": {"value": 1.0, "status": "ok"}}, "floors_note": "x"}
    assert references_of(old)["fid1k_train"]["value"] == 1.0
    new = {"metrics": {"kid1k_train": {"value": 0.1, "status": "ok"}},
           "references": {"kid1k_train": {"value": 0.0, "status": "ok"}}, "evaluations": [{"protocols": ["kid1k_train"]}]}
    merged = merge_eval(old, new)
    assert set(merged["references"]) == {"fid1k_train", "kid1k_train"} and "floors" not in merged


def test_test_split_is_classified_once_per_cache(world, monkeypatch):
    """The evaluator-accuracy references read one cached classification of the test split."""
    a = _ctx(world, 500, 256)
    pred = a.test_predictions()
    assert torch.equal(pred, a.evaluator.predict(a.test.images, world["ds"].class_names))
    b = _ctx(world, 500, 256)  # another evaluation (or process) on the same cache
    monkeypatch.setattr(b, "classify", lambda images: pytest.fail("classified the test split again"))
    assert torch.equal(b.test_predictions(), pred)
