"""Performance of the metrics layer (pytest-benchmark; run with ``make perf``, not part of ``tests/``).

* evaluator feature extraction throughput (images/s) on real FER2013 test images;
* a full ``evaluate_run`` with the default protocols on 10,000 samples per protocol, from a tiny cGAN
  run (generation cost negligible), with the shipped evaluator; reference features are cached after
  the first round, as in normal use (the first evaluation on a machine also extracts them).

Both need the real data ($EXPRBENCH_DATA or ../shared/data/fer2013.zip) and the shipped evaluator.
"""

from __future__ import annotations

import pytest
import torch

from exprbench.data import load_fer2013
from exprbench.metrics.extractors.evaluator_net import DEFAULT_WEIGHTS
from exprbench.metrics.extractors.evaluator import load_evaluator
from exprbench.metrics.testing import real_data_path, tiny_run

DATA = real_data_path()
pytestmark = [
    pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)"),
    pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="no shipped evaluator (exprbench evaluator train)"),
]


@pytest.fixture(scope="module")
def real():
    return load_fer2013(DATA)


def test_evaluator_feature_extraction(benchmark, real):
    ev = load_evaluator()
    images = real.split("test").images[:2048]

    def run():
        ev.features_and_logits(images)

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["images"] = int(images.shape[0])
    benchmark.extra_info["img_per_s"] = images.shape[0] / benchmark.stats.stats.mean
    benchmark.extra_info["threads"] = torch.get_num_threads()


def test_evaluate_10k(benchmark, real, tmp_path):
    from exprbench.metrics.run.evaluate import evaluate_run

    run = tiny_run(DATA, tmp_path / "cgan", "cgan", steps=2, dataset=real)
    result = benchmark.pedantic(lambda: evaluate_run(run, n_samples=10000, device="auto"), rounds=1, iterations=1)
    benchmark.extra_info["wall_s_per_protocol"] = {k: v["wall_s"] for k, v in result["metrics"].items()}
    assert result["metrics"]["fid10k_train"]["status"] == "ok"
