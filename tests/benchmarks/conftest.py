"""Fixtures of the scale-out tests: a tiny two-model suite, its local reference run, a real Ray cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exprbench.runs.layout import list_checkpoints, load_checkpoint

from ..bench_helpers import need_evaluator, write_suite
from ..conftest import REPO, write_csv

POINTS = ("gan-default-s0", "cgan-default-s0")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A tiny FER2013 CSV, a two-model suite (gan, cgan; width 8, 6 steps of 8 images, checkpoints every
    2 steps, FID on 70 samples, curve at steps 3 and 6) and its uninterrupted local run (``local``)."""
    from exprbench.benchmarks.runner import run_suite
    from exprbench.benchmarks.suite import load_suite

    need_evaluator()
    root = tmp_path_factory.mktemp("scaleout")
    cache = root / "cache"
    data = write_csv(root / "fer2013.csv", per_class=10)
    suite = write_suite(root / "tiny.toml", metrics='["fid70_train"]')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPRBENCH_CACHE", str(cache))
        run_suite(load_suite(suite), root / "local", data_path=str(data), progress=False)
    return {"root": root, "data": data, "suite": suite, "cache": cache, "local": root / "local"}


@pytest.fixture(scope="session")
def ray_cluster(tiny_world):
    """A real local Ray cluster with 2 CPUs (two workers at 1 CPU per grid point), for the session."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:  # the workers inherit these from the raylet
        mp.setenv("EXPRBENCH_CACHE", str(tiny_world["cache"]))
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=100 * 2**20)  # a new cluster of its own, whatever else runs here
    yield ray
    ray.shutdown()


def bench_cmd(world: dict, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "exprbench", "bench", str(world["suite"]), "--out", str(out),
            "--data", str(world["data"]), *extra]


def bench_env(world: dict) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "EXPRBENCH_CACHE": str(world["cache"]), "OMP_NUM_THREADS": "1"}


def start_bench(world: dict, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(bench_cmd(world, out, *extra), env=bench_env(world), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def records(out: Path) -> dict:
    return {n: json.loads((out / "runs" / n / "record.json").read_text()) for n in POINTS}


def attempts(out: Path, name: str) -> list[dict]:
    from exprbench.benchmarks.report.claims import read_attempts

    return read_attempts(out / "runs" / name)


def log_steps(out: Path, name: str, log: str = "train.jsonl") -> list[int]:
    return [json.loads(x)["step"] for x in (out / "runs" / name / log).read_text().splitlines()]


def same_weights(a: Path, b: Path, name: str) -> bool:
    wa = load_checkpoint(list_checkpoints(a / "runs" / name)[-1])["model"]["nets"]
    wb = load_checkpoint(list_checkpoints(b / "runs" / name)[-1])["model"]["nets"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def metric_values(out: Path, name: str) -> dict:
    ev = json.loads((out / "runs" / name / "eval.json").read_text())
    return {k: v["value"] for k, v in ev["metrics"].items()}


def assert_trained_once(out: Path, reference: Path) -> None:
    """Every point done, trained in exactly one attempt, logs without duplicates, the reference's weights."""
    for name, rec in records(out).items():
        assert rec["status"] == "done", (name, rec.get("error"))
        tries = attempts(out, name)
        assert len(tries) == 1 and tries[0]["resume_step"] == 0, f"{name} trained {len(tries)} times: {tries}"
        assert log_steps(out, name) == [2, 4, 6], f"{name}: log records lost or duplicated"
        assert log_steps(out, name, "curve.jsonl") == [3, 6]
        assert same_weights(out, reference, name)
        assert not (out / "runs" / name / "claim.lock").exists()
