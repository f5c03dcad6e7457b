"""benchmarks/compute.py: GFLOP per training image counted from a run's config (compute.json), read back as the
run's budget, and the cost table's columns."""

from __future__ import annotations

import json

from exprbench.benchmarks.compute import COMPUTE, count_run, run_budget
from exprbench.runs.config import resolve_config
from exprbench.runs.harness import Trainer

TINY = ["model.ch=8", "train.batch_size=8", "train.log_every=1", "train.sample_every=0", "train.samples_per_class=2",
        "train.steps=2"]


def test_count_run_writes_compute_json_and_the_budget_reads_it(tmp_path, tiny_dataset):
    runs = {}
    for name in ("gan", "cgan"):  # the GAN's R1 penalty differentiates w.r.t. its input: still counted
        cfg = resolve_config(name, "default", TINY)
        Trainer(cfg, tmp_path / name, dataset=tiny_dataset, progress=False).run()
        runs[name] = count_run(tmp_path / name)
        assert runs[name]["gflop_per_img"] > 0
        assert json.loads((tmp_path / name / COMPUTE).read_text()) == runs[name]
    budget = run_budget(tmp_path / "cgan", batch_size=8, steps=2)
    assert budget["images"] == 16 and budget["epochs"] > 0 and budget["gflop_per_img"] == runs["cgan"]["gflop_per_img"]
    assert run_budget(tmp_path / "nothing", None, None) == {"images": None, "epochs": None, "gflop_per_img": None}
