"""metrics/families/encoding.py and metrics/families/translation.py: encoder accuracy, linear probe, reconstruction and translation metrics.

Exact values come from small fake plugins with known behaviour; one tiny real plugin checks the plumbing.
"""

from __future__ import annotations

import pytest
import torch

from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec, to_float
from exprbench.runs.loader import build_model
from exprbench.metrics.families.encoding import encoder_label_accuracy, linear_probe_accuracy, reconstruction_metrics
from exprbench.metrics.families.imageops import CapabilityMetricError, l1_ssim
from exprbench.metrics.families.translation import translate_all, translation_fid_inputs, translation_metrics

SPEC = DataSpec(1, 48, 48, FER7, "fer7")


def labelled_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose top-left pixel encodes the label (label * 30), the rest random."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 48, 48), generator=g, dtype=torch.uint8)
    c = torch.randint(0, 7, (n,), generator=g)
    x[:, 0, 0, 0] = (c * 30).to(torch.uint8)
    return x, c


def read_label(images: torch.Tensor) -> torch.Tensor:
    """A 'classifier' reading the label written by :func:`labelled_images` / :class:`Fake`."""
    return (images[:, 0, 0, 0].float() / 30).round().long().clamp(0, 6)


class Fake:
    """A plugin-like object: E_c reads the label pixel, z is one-hot(label) + noise, G(E(x)) = x,
    translate writes the target label into the label pixel and leaves the rest unchanged."""

    name, spec = "fake", SPEC
    capabilities = frozenset({"encode", "translate"})

    def encode(self, x):
        c = read_label(((x + 1) * 127.5).round().to(torch.uint8))
        z = torch.nn.functional.one_hot(c, 7).float() + 0.01 * torch.randn(x.shape[0], 7)
        return {"z": z, "c_logits": 10 * torch.nn.functional.one_hot(c, 7).float()}

    def reconstruct(self, x, c=None):
        return x.clone()

    def translate(self, x, c_target, c_source=None):
        y = x.clone()
        y[:, 0, 0, 0] = (c_target * 30).float() / 127.5 - 1
        return y


def test_encoder_label_accuracy_exact():
    x, c = labelled_images(50)
    r = encoder_label_accuracy(Fake(), x, c)
    assert r["value"] == 1.0 and r["n"] == 50 and sum(map(sum, r["confusion_matrix"])) == 50
    wrong = (c + 1) % 7
    assert encoder_label_accuracy(Fake(), x, wrong)["value"] == 0.0


def test_linear_probe_separates_one_hot_codes():
    xtr, ctr = labelled_images(70, seed=1)
    xte, cte = labelled_images(30, seed=2)
    r = linear_probe_accuracy(Fake(), xtr, ctr, xte, cte)
    assert r["value"] == 1.0 and r["train_accuracy"] == 1.0 and r["z_dim"] == 7 and r["n_test"] == 30


def test_reconstruction_identity_is_perfect():
    x, c = labelled_images(20)
    r = reconstruction_metrics(Fake(), x, classifier=read_label)
    assert r["l1"] == 0.0 and r["ssim"] == pytest.approx(1.0, abs=1e-4) and r["label_agreement"] == 1.0
    assert r["reconstructions"].dtype == torch.uint8 and r["reconstructions"].shape == x.shape


def test_translation_metrics_exact():
    x, c = labelled_images(14)
    tr = translate_all(Fake(), x, c)
    assert tr.images.shape == (14, 7, 1, 48, 48) and tr.images.dtype == torch.uint8
    r = translation_metrics(tr, read_label, features=lambda im: im.flatten(1).float() / 255)
    assert r["target_accuracy"] == 1.0 and r["n_pairs"] == 14 * 6
    assert r["identity_l1"] < 0.001 and r["identity_ssim"] > 0.99 and r["self_l1"] == 0.0
    assert all(r["pair_matrix"][i][i] is None for i in range(7))
    always_happy = translation_metrics(tr, lambda im: torch.full((im.shape[0],), 3))
    assert always_happy["per_target"]["happy"] == 1.0 and always_happy["per_target"]["sad"] == 0.0
    assert always_happy["target_accuracy"] == pytest.approx(float((c != 3).sum()) / (14 * 6))  # pairs to happy
    assert always_happy["feature_distance"] is None
    fid = translation_fid_inputs(tr, *labelled_images(40, seed=3))
    assert fid["translated"].shape == (14 * 6, 1, 48, 48) and bool((read_label(fid["translated"]) == fid["translated_labels"]).all())
    assert sum(v[0].shape[0] for v in fid["per_target"].values()) == 14 * 6
    assert fid["real"].shape[0] == 40


def test_l1_ssim_ranges():
    a, _ = labelled_images(4)
    l1, ss = l1_ssim(a, 255 - a)
    assert bool((l1 > 0.4).all()) and bool((ss < 0.1).all())


def test_bad_inputs_and_missing_capability():
    x, c = labelled_images(4)
    with pytest.raises(CapabilityMetricError, match="uint8"):
        encoder_label_accuracy(Fake(), to_float(x), c)
    with pytest.raises(CapabilityMetricError, match="labels outside"):
        encoder_label_accuracy(Fake(), x, c + 7)
    with pytest.raises(CapabilityMetricError, match="N x 1 x 48 x 48"):
        translate_all(Fake(), x[:, :, :32, :32], c)
    gan = build_model(resolve_config("gan", "default", ["model.ch=8"]), SPEC, torch.device("cpu"))
    with pytest.raises(CapabilityMetricError, match="lacks the capability 'translate'"):
        translate_all(gan, x, c)
    with pytest.raises(CapabilityMetricError, match="lacks the capability 'encode'"):
        reconstruction_metrics(gan, x)


def test_real_plugins_end_to_end():
    x, c = labelled_images(10)
    torch.manual_seed(0)
    bico = build_model(resolve_config("bicogan", "default", ["model.ch=8"]), SPEC, torch.device("cpu"))
    assert 0 <= encoder_label_accuracy(bico, x, c, batch_size=4)["value"] <= 1
    r = reconstruction_metrics(bico, x, labels=c, classifier=read_label, batch_size=4)
    assert 0 < r["l1"] < 1 and -1 <= r["ssim"] <= 1
    tr = translate_all(bico, x, c, targets=[0, 3], batch_size=4)
    assert tr.images.shape == (10, 2, 1, 48, 48)
    bigan = build_model(resolve_config("bigan", "default", ["model.ch=8"]), SPEC, torch.device("cpu"))
    with pytest.raises(CapabilityMetricError, match="does not predict the class"):
        encoder_label_accuracy(bigan, x, c)
    assert 0 <= linear_probe_accuracy(bigan, x, c, x, c)["value"] <= 1
    cc = build_model(resolve_config("ccyclegan", "default", ["model.ch=8"]), SPEC, torch.device("cpu"))
    m = translation_metrics(translate_all(cc, x, c), read_label)
    assert 0 <= m["target_accuracy"] <= 1 and len(m["pair_matrix"]) == 7
