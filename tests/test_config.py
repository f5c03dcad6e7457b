"""exprbench.config: named configs, --set overrides with type checks, round trip through JSON."""

from __future__ import annotations

import json

import pytest

from exprbench.config import apply_overrides, config_from_dict, parse_value, resolve_config
from exprbench.errors import ConfigError


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
