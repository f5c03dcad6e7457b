"""models/interfacegan.py: the SVM boundary fit, editing geometry, the fit through the harness, conditional sampling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from exprbench.runs.config import resolve_config
from exprbench.core.errors import ConfigError
from exprbench.runs.harness import Trainer
from exprbench.runs.loader import build_model, load_trained
from exprbench.metrics.extractors.evaluator import plugin_resources
from exprbench.models.interfacegan import fit_boundary


def test_boundary_recovers_a_planted_direction():
    rng = np.random.default_rng(0)
    d = 64
    n_true = rng.normal(size=d)
    n_true /= np.linalg.norm(n_true)
    z = rng.normal(size=(10000, d))
    scores = z @ n_true + 0.1 * rng.normal(size=10000)  # a noisy attribute score along n_true
    for svm in ("svc", "linear_svc"):
        n, acc, m = fit_boundary(z, scores, ratio=0.02, val_fraction=0.3, svm=svm)
        assert m == 200 and acc > 0.95
        assert abs(np.linalg.norm(n) - 1) < 1e-5
        assert float(n @ n_true) > 0.95, svm  # recovered, with the sign of "more of the attribute"


def test_boundary_bad_inputs():
    z = np.zeros((100, 4))
    with pytest.raises(ValueError, match="N x D"):
        fit_boundary(z, np.zeros(99))
    with pytest.raises(ValueError, match="svm='rbf'"):
        fit_boundary(z, np.zeros(100), svm="rbf")
    with pytest.raises(ValueError, match="keeps 1 per side"):
        fit_boundary(z, np.arange(100.0), ratio=0.01)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A 1-step tiny GAN run and an InterFaceGAN run fitted on it (600 latents, 5% per side)."""
    from ..conftest import write_csv
    from exprbench.data import load_fer2013

    root = tmp_path_factory.mktemp("ifg")
    ds = load_fer2013(write_csv(root / "fer2013.csv", per_class=6), use_cache=False)
    gan = resolve_config("gan", "default", ["model.ch=8", "train.batch_size=8", "train.steps=1", "train.sample_every=0",
                                            "train.samples_per_class=1"])
    Trainer(gan, root / "gan", dataset=ds, progress=False).run()
    cfg = resolve_config("interfacegan", "default", [f"model.base_run={root / 'gan'}", "model.n_latents=600",
                                                     "model.ratio=0.05", "model.score_batch=200",
                                                     "train.samples_per_class=1"])
    Trainer(cfg, root / "ifg", dataset=ds, progress=False, resources=plugin_resources()).run()
    return root, ds


def test_fit_through_the_harness_logs_validation_accuracy(fitted):
    root, _ = fitted
    recs = [json.loads(x) for x in (root / "ifg" / "train.jsonl").read_text().splitlines()]
    assert len(recs) == 1 and recs[0]["n_per_side"] == 30
    for name in ("angry", "happy", "neutral"):
        assert 0 <= recs[0][f"val_acc_{name}"] <= 1
    assert math.isfinite(recs[0]["val_acc_mean"])
    _, model, _, _ = load_trained(root / "ifg")
    normals = model.nets["boundary"].normals
    assert normals.shape == (7, 128) and torch.allclose(normals.norm(dim=1), torch.ones(7), atol=1e-5)
    assert (root / "ifg" / "samples" / "step_000001.png").exists()


def test_editing_sets_the_signed_distance(fitted):
    root, _ = fitted
    _, model, _, _ = load_trained(root / "ifg")
    z = model.edit_start(5, torch.Generator().manual_seed(0))
    for d in (-3.0, 0.0, 1.5, 3.0):
        z2 = model.edit_move(z, 3, d)
        assert torch.allclose(model.signed_distance(z2, 3), torch.full((5,), d), atol=1e-4)
        # only the component along n changes
        n = model.edit_direction(3)
        assert torch.allclose((z2 - z) - ((z2 - z) @ n)[:, None] * n, torch.zeros_like(z), atol=1e-5)
    # conditional manipulation: the direction is orthogonal to the held emotion's normal, unit length
    v = model.edit_direction(3, keep=4)
    assert abs(float(v @ model.edit_direction(4))) < 1e-5 and abs(float(v.norm()) - 1) < 1e-5
    z3 = model.edit_move(z, 3, 2.0, keep=4)
    assert torch.allclose(model.signed_distance(z3, 4), model.signed_distance(z, 4), atol=1e-4)
    with pytest.raises(ValueError, match="target 7"):
        model.edit_direction(7)
    with pytest.raises(ValueError, match="keep=3 equals target=3"):
        model.edit_direction(3, keep=3)
    with pytest.raises(NotImplementedError, match="no encoder"):
        model.edit_encode(torch.zeros(1, 1, 48, 48))


def test_conditional_sampling_moves_latents_to_the_boundary_distance(fitted):
    root, _ = fitted
    _, model, _, _ = load_trained(root / "ifg")
    labels = torch.arange(7)
    x = model.sample(7, labels, torch.Generator().manual_seed(1))
    assert x.shape == (7, 1, 48, 48) and float(x.abs().max()) <= 1
    assert torch.equal(x, model.sample(7, labels, torch.Generator().manual_seed(1)))
    z = model.edit_start(7, torch.Generator().manual_seed(1))
    normals = model.nets["boundary"].normals[labels]
    z = z + (model.cfg.cond_distance - (z * normals).sum(1, keepdim=True)) * normals
    assert torch.allclose(x, model.edit_decode(z), atol=1e-6)
    with pytest.raises(ValueError, match=r"integer labels|outside 0\.\.|labels for \d+ images"):
        model.sample(2, torch.tensor([0, 9]))


def test_base_run_is_required_and_must_be_unconditional(fitted, tmp_path):
    root, ds = fitted
    with pytest.raises(ConfigError, match="model.base_run is empty"):
        build_model(resolve_config("interfacegan", "default"), ds.spec, torch.device("cpu"))
    with pytest.raises(ConfigError, match="not a trained run directory"):
        build_model(resolve_config("interfacegan", "default", [f"model.base_run={tmp_path}"]), ds.spec, torch.device("cpu"))
    with pytest.raises(ConfigError, match="'interfacegan' run"):  # an InterFaceGAN run is conditional
        build_model(resolve_config("interfacegan", "default", [f"model.base_run={root / 'ifg'}"]), ds.spec,
                    torch.device("cpu"))


def test_boundaries_are_fitted_with_the_aux_classifier_not_the_evaluator():
    """The classifier InterFaceGAN fits on by default is the shipped auxiliary one: other weights (another width and
    seed) than the evaluator that scores its acc_gen and edit_success."""
    from exprbench.metrics.extractors.evaluator import load_aux_classifier, load_evaluator
    from exprbench.models.interfacegan import InterFaceGANConfig

    assert InterFaceGANConfig().scorer_weights == ""
    assert plugin_resources().load_scorer is load_aux_classifier
    aux, ev = load_aux_classifier(), load_evaluator()
    assert aux.sha256 != ev.sha256
    assert aux.card["net"] != ev.card["net"] and aux.card["recipe"]["seed"] != ev.card["recipe"]["seed"]
    assert aux.class_names == ev.class_names


def test_fitting_without_a_scorer_handed_in_says_so(fitted, tmp_path):
    """A plugin finds no layer above it by itself: built without a scorer, InterFaceGAN refuses to fit, naming it."""
    root, ds = fitted
    cfg = resolve_config("interfacegan", "default", [f"model.base_run={root / 'gan'}", "model.n_latents=40"])
    model = build_model(cfg, ds.spec, torch.device("cpu"))  # the run loader is the runs layer's own default
    with pytest.raises(RuntimeError, match="interfacegan: no load_scorer was handed in"):
        model.fit()


def test_w_space_fits_edits_and_samples_through_the_mapping_network(tmp_path, fitted):
    """A GAN with a 2-layer mapping network, InterFaceGAN in its standardized W: the boundaries live there,
    editing sets the signed distance of u, and decoding u goes through the synthesis net only."""
    from ..conftest import write_csv
    from exprbench.data import load_fer2013

    ds = load_fer2013(write_csv(tmp_path / "fer2013.csv", per_class=6), use_cache=False)
    gan = resolve_config("gan", "default", ["model.ch=8", "model.mapping_layers=2", "train.batch_size=8", "train.steps=1",
                                            "train.sample_every=0", "train.samples_per_class=1"])
    Trainer(gan, tmp_path / "gan", dataset=ds, progress=False).run()
    base = dict(base_run=tmp_path / "gan", extra=["model.n_latents=400", "model.ratio=0.05", "model.score_batch=200",
                                                  "train.samples_per_class=1"])
    cfg = resolve_config("interfacegan", "default", [f"model.base_run={base['base_run']}", "model.space=w", *base["extra"]])
    Trainer(cfg, tmp_path / "ifg", dataset=ds, progress=False, resources=plugin_resources()).run()
    _, model, _, _ = load_trained(tmp_path / "ifg")
    stats = model.nets["wstats"]
    assert float(stats.std.min()) > 0 and not torch.equal(stats.mean, torch.zeros_like(stats.mean))
    g = torch.Generator().manual_seed(0)
    u = model.edit_start(4, g)
    z = torch.randn(4, 128, generator=torch.Generator().manual_seed(0))
    G = model.nets["G"]
    assert torch.allclose(u, (G.mapping(z) - stats.mean) / stats.std, atol=1e-5)
    assert torch.allclose(model.edit_decode(u), G.synthesis(G.mapping(z)), atol=1e-5)  # u decodes to G(z)
    u2 = model.edit_move(u, 2, 1.5)
    assert torch.allclose(model.signed_distance(u2, 2), torch.full((4,), 1.5), atol=1e-4)
    assert model.sample(7, torch.arange(7), torch.Generator().manual_seed(1)).shape == (7, 1, 48, 48)
    no_mapping = resolve_config("interfacegan", "default", [f"model.base_run={fitted[0] / 'gan'}", "model.space=w"])
    with pytest.raises(ConfigError, match="needs a base generator with a mapping network"):
        build_model(no_mapping, ds.spec, torch.device("cpu"), plugin_resources())
