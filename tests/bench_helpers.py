"""Helpers for the benchmark-layer tests: a tiny suite file over a tiny FER2013-format CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SUITE = """
name = "tiny"
seeds = [0]
device = "cpu"
[budget]
steps = 6
[train]
batch_size = 8
log_every = 2
sample_every = 0
ckpt_every = 2
samples_per_class = 2
[eval]
metrics = {metrics}
curve_metric = "{curve}"
curve_every = 3
{models}
"""


def model_block(name: str, extra: str = "") -> str:
    return f'[[models]]\nname = "{name}"\nconfigs = ["default"]\nset = {{ "model.ch" = 8{extra} }}\n'


def write_suite(path: Path, models=("gan", "cgan"), metrics='["fid70_train", "acc_gen70"]', curve="fid70_train",
                extra_models: str = "") -> Path:
    blocks = "".join(model_block(m) for m in models) + extra_models
    path.write_text(TINY_SUITE.format(metrics=metrics, curve=curve, models=blocks))
    return path


def need_evaluator() -> None:
    try:
        from exprbench.metrics.extractors.evaluator import resolve_weights

        resolve_weights(None)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no shipped evaluator weights: {e}")
