"""Sampling cost of the EDM diffusion plugin per image on the CPU (pytest-benchmark; ``make perf``, not
part of ``tests/``): ``model.sample`` of a batch of 16 FER-sized images (1 x 48 x 48) with the ``default``
config (the cpu suite's width), at 1 and 2 threads, without guidance (18 Heun steps = 35 evaluations of
F) and with guidance w = 1 (twice the evaluations, batched). The weights are untrained: the cost does not
depend on them. ``extra_info`` records ``s_per_img``, ``img_per_s``, ``evaluations`` (of F per image) and
``gflop_per_img`` (``FlopCounterMode`` over one sampling call).

Run::

    .venv/bin/python -m pytest benchmarks/perf/test_diffusion_sampling.py --benchmark-enable --benchmark-only
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from exprbench.runs.config import resolve_config
from exprbench.data import FER7, DataSpec
from exprbench.runs.loader import build_model

SPEC = DataSpec(1, 48, 48, FER7, "fer7")
BATCH = 16


@pytest.fixture(params=(1, 2), ids=lambda t: f"{t}thr")
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("guidance", [0.0, 1.0], ids=["w0", "w1"])
def test_diffusion_sample_s_per_img(benchmark, threads, guidance):
    cfg = resolve_config("diffusion", "default", [f"model.guidance={guidance}", "train.device=cpu"])
    torch.manual_seed(0)
    model = build_model(cfg, SPEC, torch.device("cpu"))
    labels = torch.arange(BATCH) % SPEC.num_classes
    counter = FlopCounterMode(display=False)
    with counter:  # also the warm-up
        model.sample(BATCH, labels, torch.Generator().manual_seed(0))
    benchmark.pedantic(model.sample, args=(BATCH, labels, torch.Generator().manual_seed(0)), rounds=2, iterations=1)
    s_per_img = benchmark.stats.stats.mean / BATCH
    benchmark.extra_info.update({"model": "diffusion", "config": "default", "guidance": guidance, "threads": threads,
                                 "batch": BATCH, "s_per_img": s_per_img, "img_per_s": 1 / s_per_img,
                                 "evaluations": model.num_evaluations(),
                                 "gflop_per_img": counter.get_total_flops() / 1e9 / BATCH, "device": "cpu"})
