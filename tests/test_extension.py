"""Extending exprbench without editing it: a model plugin and a metric registered at run time are
listed by ``exprbench models`` / ``exprbench metrics``, evaluated like the built-ins, and reach a report."""

from __future__ import annotations

import csv

import pytest
import torch

from exprbench.cli import main
from exprbench.data import load_fer2013
from exprbench.metrics.run.evaluate import evaluate_model
from exprbench.metrics.protocols.presentation import Presentation
from exprbench.metrics.protocols.spec import Entry, MetricSpec, register_metric, unregister_metric
from exprbench.metrics.run.context import EvalContext
from exprbench.metrics.testing import tiny_evaluator
from exprbench.models import MODELS, register_model
from exprbench.models.base import ModelPlugin
from exprbench.models.contracts import Sampler

from .benchmarks.synthetic import write_run
from .conftest import write_csv


class Flat(ModelPlugin, Sampler):
    """Throw-away sampler: uniform noise images in [-1, 1] of the data's shape."""

    def sample(self, n, labels=None, generator=None):
        return torch.rand(n, self.spec.channels, self.spec.height, self.spec.width, generator=generator) * 2 - 1


def compute_bright(spec: MetricSpec, ctx: EvalContext) -> Entry:
    """The family of the throw-away metric ``bright14``: mean brightness in [0, 1] of its generated images."""
    imgs, _ = ctx.generate(spec.n_samples, spec.seed, per_class=False)
    return {"value": float(imgs.float().mean() / 255), "n_samples": int(imgs.shape[0])}


@pytest.fixture
def plugins():
    register_model("tmp_flat")(Flat)
    # one declaration: the family "bright" is computed by compute_bright in this module
    register_metric(name="bright14", computed_in=__name__, needs={"sample"}, n_samples=14, seed=3, direction="higher",
                    no_reference="a throw-away test metric", name_pattern="bright{n}",
                    summary="mean brightness of generated images (test)", show=Presentation(table="fidelity"))
    yield
    MODELS._items.pop("tmp_flat", None)
    unregister_metric("bright14")


def test_runtime_model_and_metric_reach_listing_evaluation_and_report(plugins, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no Inception weights
    assert main(["models"]) == 0 and "tmp_flat" in capsys.readouterr().out
    assert main(["metrics"]) == 0 and "bright14" in capsys.readouterr().out

    ds = load_fer2013(write_csv(tmp_path / "fer2013.csv", per_class=6))
    ev = tiny_evaluator(ds, tmp_path / "ev.pt", epochs=1)
    res = evaluate_model(Flat(None, ds.spec), ds, ["bright14", "fid14_train"], evaluator_weights=ev)
    assert res["bright14"]["status"] == "ok" and 0.3 < res["bright14"]["value"] < 0.7
    assert res["fid14_train"]["status"] == "ok"

    results = tmp_path / "results"
    write_run(results / "runs", "tmp_flat", 0, {"metrics": res}, curve=False)
    assert main(["report", str(results), "--out", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "leaderboard.csv") as fh:
        header = next(csv.reader(fh))
    assert any("bright14" in h for h in header) and any("fid14_train" in h for h in header)
    assert "bright14" in (tmp_path / "report" / "tables" / "fidelity.md").read_text()  # its declared table
    assert "tmp_flat" in (tmp_path / "report" / "leaderboard.md").read_text()
