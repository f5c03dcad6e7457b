"""Training and sampling throughput of every model plugin (pytest-benchmark, CPU unless CUDA is present).

Each benchmark times one ``training_step`` (or one ``sample`` call) on a batch of 64 at 48x48 and
records images per second in ``extra_info["img_per_s"]``. Run::

    make perf                                         # saves .benchmarks/<machine>/NNNN_*.json
    .venv/bin/python -m pytest benchmarks/perf --benchmark-enable --benchmark-only --benchmark-compare
"""

from __future__ import annotations

import pytest
import torch

from exprbench.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.errors import ConfigError
from exprbench.harness import build_model, resolve_device
from exprbench.models import MODELS
from exprbench.models.base import Batch

SPEC = DataSpec(1, 48, 48, FER7, "fer7")
BATCH = 64
GRID = [(m, c) for m in MODELS.names() for c in ("default", "reference")]


def _model(name: str, config: str):
    cfg = resolve_config(name, config)
    device = resolve_device("auto")
    torch.manual_seed(0)
    try:
        return build_model(cfg, SPEC, device), device
    except ConfigError as e:  # e.g. InterFaceGAN needs a trained GAN run (model.base_run): not a step benchmark
        pytest.skip(f"{name}/{config}: {e}")


@pytest.mark.parametrize("name, config", GRID)
def test_train_step_img_per_s(benchmark, name, config):
    model, device = _model(name, config)
    x = (torch.rand(BATCH, 1, 48, 48, device=device) * 2 - 1).contiguous(memory_format=torch.channels_last)
    batch = Batch(x, torch.randint(0, 7, (BATCH,), device=device))
    model.training_step(batch, 0)  # warm-up (allocations, oneDNN primitive caches)
    benchmark.pedantic(model.training_step, args=(batch, 1), rounds=5, iterations=1)
    benchmark.extra_info.update({"img_per_s": BATCH / benchmark.stats.stats.mean, "device": str(device),
                                 "threads": torch.get_num_threads(), "batch": BATCH})


@pytest.mark.parametrize("name, config", GRID)
def test_sample_img_per_s(benchmark, name, config):
    model, device = _model(name, config)
    labels = torch.arange(BATCH) % 7
    benchmark.pedantic(model.sample, args=(BATCH, labels), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({"img_per_s": BATCH / benchmark.stats.stats.mean, "device": str(device),
                                 "batch": BATCH})
