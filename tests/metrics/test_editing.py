"""metrics/families/editing.py: edit success / identity drift / entanglement on a model with a known answer, the
strength sweep, likelihood aggregation, and the protocols in the registry."""

from __future__ import annotations

import pytest
import torch

from exprbench.data import DataSpec
from exprbench.metrics.families.imageops import CapabilityMetricError
from exprbench.metrics.families.editing import at_strength, edit_metrics, edit_strengths, parse_strengths
from exprbench.metrics.families.labels import balanced_subset
from exprbench.metrics.families.likelihood import likelihood_metrics
from exprbench.metrics.protocols.catalog import resolve_metric
from exprbench.models.base import ModelPlugin
from exprbench.models.contracts import Editor, Likelihood

SPEC = DataSpec(1, 8, 8, ("a", "b", "c"), "toy")


class ToyEditor(ModelPlugin, Editor, Likelihood):
    """Latent z in R^3; the decoded image's brightness encodes z, the 'classifier' reads argmax z.

    Editing toward class t adds strength * e_t (offset mode), so with a large strength the classifier
    reads t, and strength 0 leaves the image unchanged."""

    name = "toy"
    capabilities = frozenset({"edit", "likelihood"})
    likelihood_exact = True

    def __init__(self) -> None:
        super().__init__(None, SPEC)

    def edit_direction(self, target, keep=None):
        return torch.eye(3)[self.check_class(target, "target")]

    def edit_start(self, n, generator=None, labels=None):
        return torch.rand(n, 3, generator=generator) * 0.2

    def edit_decode(self, z):
        img = torch.zeros(z.shape[0], 1, 8, 8)
        for j in range(3):  # three bands: band j's brightness is z_j
            img[:, :, :, j * 2 : j * 2 + 2] = z[:, j].view(-1, 1, 1, 1)
        return img.clamp(-1, 1)

    def bits_per_dim(self, x, c=None, generator=None):
        return 3.0 + x.flatten(1).mean(1) * 0  # 3 bits/dim for every image


def toy_probs(images: torch.Tensor) -> torch.Tensor:
    bands = torch.stack([images[:, 0, :, j * 2 : j * 2 + 2].float().mean((1, 2)) for j in range(3)], 1)
    return torch.softmax(bands / 5.0, dim=1)


def test_edit_metrics_known_answer():
    model = ToyEditor()
    z = model.edit_start(20, torch.Generator().manual_seed(0))
    res = edit_metrics(model, z, toy_probs, features=lambda im: im.float().flatten(1), strengths=[0.0, 1.0])
    assert res["strengths"] == [0.0, 1.0] and res["targets"] == ["a", "b", "c"] and res["n"] == 20
    for name in ("a", "b", "c"):
        assert res["success"][name][1] == 1.0  # a strength-1 edit makes the target band the brightest
        assert res["l1"][name][0] == 0 and res["ssim"][name][0] == pytest.approx(1.0)  # strength 0 = identity
        assert res["feat_dist"][name][0] == 0 and res["entanglement"][name][0] == 0
        assert res["l1"][name][1] > 0
    assert res["success_mean"][1] == 1.0
    assert at_strength(res, 0.9) == 1.0 and at_strength(res, 0.1, "l1_mean") == 0


def test_entanglement_measures_the_other_classes_only():
    from exprbench.metrics.families.editing import _entanglement

    p0 = torch.tensor([[0.5, 0.25, 0.25]])
    # moving mass to class 0 without changing the ratio of the others: no entanglement
    assert float(_entanglement(p0, torch.tensor([[0.9, 0.05, 0.05]]), 0)) == pytest.approx(0)
    # the others swap: full entanglement of their renormalized distributions
    assert float(_entanglement(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]]), 0)) == pytest.approx(1)


def test_edit_strengths_and_parsing():
    class Distance:
        edit_reference_strength = 3.0

    assert edit_strengths(Distance()) == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]

    class Wider(Distance):  # InterFaceGAN's: the same grid, on to d = +-5, the reference strength still a point
        edit_sweep_extent = 5 / 3

    assert edit_strengths(Wider()) == [float(d) for d in range(-5, 6)]
    assert parse_strengths("-3:3:7") == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert parse_strengths("0,1.5") == [0.0, 1.5]
    for bad in ("3:1", "a:b:c", "", "1:2:1"):
        with pytest.raises(ValueError, match="--strength"):
            parse_strengths(bad)


def test_edit_metrics_needs_the_capability():
    class NoEdit(ToyEditor):
        capabilities = frozenset({"sample"})

    with pytest.raises(CapabilityMetricError, match="lacks the capability 'edit'"):
        edit_metrics(NoEdit(), torch.zeros(2, 3), toy_probs)


def test_likelihood_metrics():
    model = ToyEditor()
    imgs = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    res = likelihood_metrics(model, imgs, torch.zeros(5, dtype=torch.long))
    assert res == {"bpd": 3.0, "bpd_std": 0.0, "exact": True, "iw_bpd": None, "iw_k": None, "n": 5}
    with pytest.raises(CapabilityMetricError, match="expected N x 1 x 8 x 8"):
        likelihood_metrics(model, torch.zeros(5, 1, 4, 4, dtype=torch.uint8), torch.zeros(5, dtype=torch.long))


def test_balanced_subset():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    idx = balanced_subset(labels, 3, 2, seed=0)
    assert labels[idx].tolist() == [0, 0, 1, 2, 2]
    assert torch.equal(idx, balanced_subset(labels, 3, 2, seed=0))


def test_protocols_registered_with_counts_in_their_names():
    p = resolve_metric("edit_success")
    assert p.family == "edit" and p.needs == {"edit"} and p.n_samples == 350
    assert resolve_metric("edit_success100").n_samples == 100
    b = resolve_metric("bpd_test")
    assert b.family == "bpd" and b.needs == {"likelihood"} and b.with_n(700).name == "bpd700_test"
