"""exprbench.runs.config: named configs, --set overrides with type checks, round trip through JSON."""

from __future__ import annotations

import json
import re

import pytest

from exprbench.runs.config import apply_overrides, config_from_dict, parse_value, resolve_config
from exprbench.core.errors import ConfigError


def test_named_configs_apply():
    ref = resolve_config("cgan", "reference")
    assert ref.model_cfg.arch == "reference" and ref.model_cfg.z_dim == 100
    assert ref.train.batch_size == 128 and ref.config_name == "reference"
    default = resolve_config("cgan")
    assert default.model_cfg.arch == "sngan" and default.train.ema is True


def test_cli_overrides_typed():
    cfg = resolve_config("cgan", overrides=[
        "model.z_dim=64", "model.lr_g=1e-4", "train.ema=false", "data.augment.rotate=[-50, 30]",
        "model.loss=bce", "train.minutes=2.5",
    ])
    assert cfg.model_cfg.z_dim == 64 and cfg.model_cfg.lr_g == 1e-4 and cfg.train.ema is False
    assert cfg.data.augment.rotate == (-50.0, 30.0) and cfg.model_cfg.loss == "bce"
    assert cfg.train.minutes == 2.5
    assert resolve_config("gan", overrides=["train.minutes=null"]).train.minutes is None


@pytest.mark.parametrize("bad, message", [
    ("model.zdim=3", "unknown config key 'model.zdim'"),
    ("model.z_dim=abc", "model.z_dim='abc': expected an integer"),
    ("model.z_dim=1.5", "expected an integer"),
    ("train.ema=maybe", "expected true or false"),
    ("data.augment.rotate=[1]", "expected 2 values"),
    ("optim.lr=1", "must start with model., train. or data."),
    ("model.z_dim", "expected key=value"),
])
def test_bad_overrides(bad, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("cgan", overrides=[bad])


def test_unknown_config_name():
    with pytest.raises(ConfigError, match="no config 'best'"):
        resolve_config("gan", "best")


def test_roundtrip_through_json():
    cfg = resolve_config("acgan", "reference", ["data.augment.rotate=[-50,30]", "train.seed=3"])
    again = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("True") is True
    assert parse_value("(1, 2)") == (1, 2) and parse_value("hinge") == "hinge"
    assert parse_value("null") is None


def test_overrides_apply_in_order():
    cfg = resolve_config("gan")
    apply_overrides(cfg, ["train.steps=5", "train.steps=7"])
    assert cfg.train.steps == 7


@pytest.mark.parametrize("bad, message", [
    ("train.log_every=0", "train.log_every=0: must be >= 1"),
    ("model.ch=-2", "model.ch=-2: must be >= 1"),
    ("model.z_dim=0", "model.z_dim=0: must be >= 1"),
    ("model.lr_g=0", "model.lr_g=0.0: must be > 0"),
    ("model.lr_d=NaN", "model.lr_d=nan: expected a finite number"),
    ("train.steps=-5", "train.steps=-5: must be >= 1"),
    ("train.steps=0", "train.steps=0: must be >= 1"),
    ("train.minutes=0", "train.minutes=0.0: must be > 0"),
    ("train.minutes=-1", "train.minutes=-1.0: must be > 0"),
    ("train.batch_size=0", "train.batch_size=0: must be >= 1"),
    ("train.ema_decay=1.5", "train.ema_decay=1.5: must be <= 1"),
    ("train.keep_ckpts=0", "train.keep_ckpts=0: must be >= 1"),
    ("train.sample_every=-1", "train.sample_every=-1: must be >= 0"),
    ("train.seed=-1", "train.seed=-1: must be >= 0"),
    ("train.samples_per_class=0", "train.samples_per_class=0: must be >= 1"),
    ("train.split=holdout", "train.split='holdout': expected one of train, val, test, all"),
])
def test_out_of_range_values_refused(bad, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config("cgan", overrides=[bad])


def test_range_edges_accepted():
    cfg = resolve_config("cgan", overrides=["train.steps=1", "train.log_every=1", "train.sample_every=0",
                                            "train.ckpt_every=0", "model.ch=1", "train.ema_decay=0"])
    assert cfg.train.steps == 1 and cfg.model_cfg.ch == 1
    assert resolve_config("gan", overrides=["train.minutes=null"]).train.minutes is None


def test_every_numeric_train_field_declares_a_range():
    import dataclasses
    import typing

    from exprbench.runs.config import RANGE_KEYS, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if hints[f.name] in (int, float, float | None, int | None):
            assert any(k in f.metadata for k in RANGE_KEYS), f"train.{f.name} has no declared range"


def test_adversarial_ranges_reach_every_gan_family_model():
    for model in ("gan", "cgan", "acgan", "bigan", "bicogan"):
        with pytest.raises(ConfigError, match="model.ch=-2: must be >= 1"):
            resolve_config(model, overrides=["model.ch=-2"])


def test_every_named_config_is_in_range():
    from exprbench.models import MODELS

    for model in MODELS.names():
        for name in MODELS.get(model).named_configs:
            resolve_config(model, name)  # raises ConfigError when a shipped config is out of range


def test_stored_config_out_of_range_refused():
    d = resolve_config("gan").to_dict()
    d["train"]["log_every"] = 0
    with pytest.raises(ConfigError, match="train.log_every=0: must be >= 1"):
        config_from_dict(d)


def test_check_range_mechanism():
    from exprbench.runs.config import check_range

    check_range(None, {"min": 1}, "k")  # unset optional values pass
    check_range((0.5, 0.9), {"min": 0, "lt": 1}, "k")
    with pytest.raises(ConfigError, match=r"k=\(0.5, 1.0\): must be < 1"):
        check_range((0.5, 1.0), {"min": 0, "lt": 1}, "k")


def test_no_step_budget_needs_minutes():
    from exprbench.runs.config import NO_STEP_BUDGET

    assert resolve_config("gan", overrides=["train.minutes=3", NO_STEP_BUDGET]).train.steps is None
    with pytest.raises(ConfigError, match=r"train.steps=null \(no step budget\) needs train.minutes"):
        resolve_config("gan", overrides=[NO_STEP_BUDGET])


def test_the_model_section_can_be_set_by_the_name_config_show_prints():
    from exprbench.runs.config import resolve_config

    a = resolve_config("cgan", "default", ["model_cfg.z_dim=64"])
    assert a.model_cfg.z_dim == 64 and a.to_dict() == resolve_config("cgan", "default", ["model.z_dim=64"]).to_dict()
