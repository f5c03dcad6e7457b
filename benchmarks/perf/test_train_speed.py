"""Training and sampling cost of every model plugin (pytest-benchmark; CPU unless CUDA is present).

Each training benchmark times one ``training_step`` on a batch of 64 real-sized images (the model's
data spec: 1 x 48 x 48 for FER2013) for every registered model and named config, at 1 and 2 CPU
threads and, for ``default`` configs, in both memory formats (channels_last and contiguous NCHW).
``default`` runs at the width of the ``cpu`` suite (``benchmarks/suites/cpu.toml``), so the numbers
are the ones its leaderboard pays. ``extra_info`` records:

* ``img_per_s``: training images per second (batch / mean step time);
* ``gflop_per_img``: forward + backward GFLOP per training image of one step, counted with
  ``torch.utils.flop_counter``'s per-op formulas (matmul/conv FLOPs; 2 FLOP per multiply-add; ``benchmarks.compute``);
* ``gflop_per_s``: their product, the achieved rate, to compare with the CPU's fp32 peak (about
  160 GFLOP/s for the 2 cores of the project's CI machine) or a GPU's (MFU).

Run::

    make perf                                       # saves .benchmarks/<machine>/NNNN_*.json
    .venv/bin/python benchmarks/perf/summarize.py   # the newest run as a markdown table
"""

from __future__ import annotations

import pytest
import torch

from exprbench.benchmarks.compute import gflop_per_image
from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.core.errors import ConfigError
from exprbench.core.devices import resolve_device
from exprbench.runs.loader import build_model
from exprbench.models import MODELS
from exprbench.models.base import Batch

SPEC = DataSpec(1, 48, 48, FER7, "fer7")
BATCH = 64
THREADS = (1, 2)


def suite_overrides(name: str) -> list[str]:
    """The ``set`` overrides of model ``name`` in the cpu suite (its benchmarked width)."""
    from exprbench.benchmarks.suite import load_suite

    for point in load_suite("cpu").grid:
        if point.model == name:
            return [o for o in point.overrides if o.startswith("model.")]
    return []


GRID = [(m, c, fmt) for m in MODELS.names() for c, fmt in
        (("default", "channels_last"), ("default", "contiguous"), ("reference", "channels_last"))]


def _model(name: str, config: str, channels_last: bool):
    overrides = (suite_overrides(name) if config == "default" else []) + [f"train.channels_last={str(channels_last).lower()}"]
    cfg = resolve_config(name, config, overrides)
    device = resolve_device("auto")
    torch.manual_seed(0)
    try:
        return build_model(cfg, SPEC, device), device
    except ConfigError as e:  # e.g. InterFaceGAN needs a trained GAN run (model.base_run): not a step benchmark
        pytest.skip(f"{name}/{config}: {e}")


@pytest.fixture(params=THREADS, ids=lambda t: f"{t}thr")
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("name, config, fmt", GRID)
def test_train_step_img_per_s(benchmark, threads, name, config, fmt):
    model, device = _model(name, config, fmt == "channels_last")
    x = torch.rand(BATCH, SPEC.channels, SPEC.height, SPEC.width, device=device) * 2 - 1
    if fmt == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    batch = Batch(x, torch.randint(0, 7, (BATCH,), device=device))
    flops = gflop_per_image(model, batch)  # also the warm-up (allocations, oneDNN primitive caches)
    benchmark.pedantic(model.training_step, args=(batch, 1), rounds=5, iterations=1, warmup_rounds=1)
    img_s = BATCH / benchmark.stats.stats.mean
    benchmark.extra_info.update({"model": name, "config": config, "memory_format": fmt, "img_per_s": img_s,
                                 "gflop_per_img": flops, "gflop_per_s": None if flops is None else flops * img_s,
                                 "device": str(device), "threads": threads, "batch": BATCH})


@pytest.mark.parametrize("name", MODELS.names())
def test_sample_img_per_s(benchmark, name):
    model, device = _model(name, "default", True)
    labels = torch.arange(BATCH) % 7
    benchmark.pedantic(model.sample, args=(BATCH, labels), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({"model": name, "config": "default", "img_per_s": BATCH / benchmark.stats.stats.mean,
                                 "device": str(device), "threads": torch.get_num_threads(), "batch": BATCH})
