"""The residual VGG evaluator family (resvgg), the robust training augmentation and the resumable classifier training."""

from __future__ import annotations

import pytest
import torch

from exprbench.core.errors import UserError
from exprbench.metrics.extractors.classifier_training import TrainRecipe, _augmenter, train_classifier
from exprbench.metrics.extractors.evaluator_net import NetConfig, build_net
from exprbench.metrics.extractors.multilayer import stage_features


def _toy(n: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 48, 48), generator=g, dtype=torch.uint8), torch.randint(0, 7, (n,), generator=g)


def test_resvgg_shapes_and_stages():
    net = build_net(NetConfig(width=4, feat_dim=16, arch="resvgg")).eval()
    x = torch.rand(3, 1, 48, 48) * 2 - 1
    f, lo = net(x)
    assert f.shape == (3, 16) and lo.shape == (3, 7) and bool((f >= 0).all())
    assert [tuple(s.shape[1:]) for s in net.stages(x)] == [(4, 24, 24), (8, 12, 12), (16, 6, 6), (32, 3, 3)]
    assert [t.shape[1] for t in stage_features(net, x)] == [4, 8, 16, 32]


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="unknown evaluator arch 'vit'"):
        NetConfig.from_dict({"width": 4, "feat_dim": 8, "dropout": 0.0, "class_names": ["a"], "arch": "vit"})


def test_vgg_card_entry_has_no_arch_key():
    assert "arch" not in NetConfig(width=4).to_dict()
    assert NetConfig.from_dict(NetConfig(width=4, arch="resvgg").to_dict()).arch == "resvgg"


def test_robust_augmentation_keeps_shape_and_range():
    torch.manual_seed(0)
    aug = _augmenter(TrainRecipe(blur=1.0, resample=1.0, noise=1.0, cutout=1.0))
    x = torch.rand(16, 1, 48, 48) * 2 - 1
    y = aug(x)
    assert y.shape == x.shape and bool(torch.isfinite(y).all())
    assert not torch.equal(y, x)


def test_stopped_training_resumes_bit_exact(tmp_path):
    images, labels = _toy()
    cfg = NetConfig(width=4, feat_dim=8, dropout=0.1, arch="resvgg")
    recipe = TrainRecipe(epochs=3, batch_size=32, seed=1, blur=0.5, cutout=0.5, resample=0.3, noise=0.3)
    full, hist_full = train_classifier(images, labels, cfg, recipe)

    class Stop(Exception):
        pass

    def stop_after_two(rec):
        if rec["epoch"] == 2:
            raise Stop

    ck = tmp_path / "state.pt"
    with pytest.raises(Stop):
        train_classifier(images, labels, cfg, recipe, log=stop_after_two, checkpoint=ck)
    resumed, hist = train_classifier(images, labels, cfg, recipe, checkpoint=ck)
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    assert [r["loss"] for r in hist] == [r["loss"] for r in hist_full]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_of_another_recipe_is_refused(tmp_path):
    images, labels = _toy(40)
    cfg = NetConfig(width=4, feat_dim=8, arch="resvgg")
    ck = tmp_path / "state.pt"
    train_classifier(images, labels, cfg, TrainRecipe(epochs=1, batch_size=20), checkpoint=ck)
    with pytest.raises(UserError, match="another recipe"):
        train_classifier(images, labels, cfg, TrainRecipe(epochs=2, batch_size=20), checkpoint=ck)


def test_the_state_is_three_parts_and_a_torn_save_is_refused(tmp_path):
    images, labels = _toy(40)
    cfg = NetConfig(width=4, feat_dim=8, arch="resvgg")
    ck = tmp_path / "x.state.pt"
    train_classifier(images, labels, cfg, TrainRecipe(epochs=1, batch_size=20), checkpoint=ck)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.state.best.pt", "x.state.opt.pt", "x.state.pt"]
    best = torch.load(tmp_path / "x.state.best.pt", weights_only=True)
    torch.save({**best, "epoch": 7}, tmp_path / "x.state.best.pt")  # a part from another epoch
    with pytest.raises(UserError, match="written at different epochs"):
        train_classifier(images, labels, cfg, TrainRecipe(epochs=2, batch_size=20), checkpoint=ck)
