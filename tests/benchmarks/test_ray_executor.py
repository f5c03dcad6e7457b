"""benchmarks/executors.py: a suite's grid on a real (local, 2-CPU) Ray cluster: the same records and
numbers as a local run, killed workers retried from their checkpoint up to a limit, a local runner and
a Ray cluster sharing one --out."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from exprbench.benchmarks.executors import RayExecutor
from exprbench.benchmarks.runner import run_suite
from exprbench.benchmarks.suite import load_suite
from exprbench.cli import main

from .conftest import (POINTS, assert_trained_once, attempts, log_steps, metric_values, records, same_weights,
                       start_bench)


def _ray_suite(world, out, **kw):
    ex = RayExecutor(**kw)
    return run_suite(load_suite(world["suite"]), out, data_path=str(world["data"]), progress=False,
                     executor=ex, poll_s=0.2)


def test_ray_missing_says_how_to_install(tmp_path, monkeypatch, capsys, tiny_world):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does when it is not installed
    code = main(["bench", str(tiny_world["suite"]), "--out", str(tmp_path / "out"), "--executor", "ray"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "pip install 'exprbench[ray]'" in err and len(err.splitlines()) == 1
    assert main(["bench", str(tiny_world["suite"]), "--out", str(tmp_path / "o"), "--gpus-per-run", "1"]) == 2
    assert "--gpus-per-run needs --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_ray_run_equals_local_run(tiny_world, ray_cluster):
    out = tiny_world["root"] / "ray"
    recs = _ray_suite(tiny_world, out, max_retries=1)
    local = records(tiny_world["local"])
    assert [r["grid_point"] for r in recs] == list(POINTS)
    for name, rec in records(out).items():
        assert rec["worker"]["runner"] == "ray" and rec["worker"]["pid"] != os.getpid()
        for key in ("status", "steps", "config_sha256", "model", "config", "seed", "suite"):
            assert rec[key] == local[name][key], key
        assert metric_values(out, name) == metric_values(tiny_world["local"], name)
    assert_trained_once(out, tiny_world["local"])


def _killer(out, stop: threading.Event, kills: dict) -> None:
    """SIGKILL gan's worker once it has checkpointed step 2, and each of cgan's first two attempts."""
    runs = out / "runs"
    while not stop.is_set():
        for name, limit in (("gan-default-s0", 1), ("cgan-default-s0", 2)):
            done = kills.setdefault(name, [])
            tries = attempts(out, name)
            if len(done) >= limit or len(tries) <= len(done):
                continue
            if name == "gan-default-s0" and not (runs / name / "checkpoints" / "step_000002.pt").exists():
                continue
            pid = tries[-1]["pid"]
            assert pid != os.getpid()
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            done.append(pid)
        time.sleep(0.01)


@pytest.mark.slow
def test_killed_worker_retries_from_checkpoint_then_fails_past_the_limit(tiny_world, ray_cluster):
    out = tiny_world["root"] / "ray-killed"
    stop, kills = threading.Event(), {}
    watcher = threading.Thread(target=_killer, args=(out, stop, kills), daemon=True)
    watcher.start()
    try:
        recs = _ray_suite(tiny_world, out, max_retries=1)
    finally:
        stop.set()
        watcher.join()
    assert len(kills["gan-default-s0"]) == 1 and len(kills["cgan-default-s0"]) == 2
    assert [r["status"] for r in recs] == ["done", "failed"]  # the suite went on past the failed point
    gan = records(out)["gan-default-s0"]
    tries = attempts(out, "gan-default-s0")
    assert gan["status"] == "done" and gan["attempts"] == 2 and len(tries) == 2
    assert tries[1]["took_over"] and tries[1]["resume_step"] >= 2 and tries[1]["pid"] != tries[0]["pid"]
    assert log_steps(out, "gan-default-s0") == [2, 4, 6] and log_steps(out, "gan-default-s0", "curve.jsonl") == [3, 6]
    assert same_weights(out, tiny_world["local"], "gan-default-s0")  # resumed run == uninterrupted run
    cgan = records(out)["cgan-default-s0"]
    assert cgan["status"] == "failed" and "retry limit 1" in cgan["error"] and cgan["attempts"] == 2
    assert not any((out / "runs" / n / "claim.lock").exists() for n in POINTS)


@pytest.mark.slow
def test_local_runner_and_ray_share_one_out(tiny_world, ray_cluster):
    out = tiny_world["root"] / "local-and-ray"
    proc = start_bench(tiny_world, out)
    deadline = time.time() + 120
    while not (out / "runs" / POINTS[0] / "claim.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # the local runner holds its first point when the cluster joins in
    recs = _ray_suite(tiny_world, out)
    so, se = proc.communicate(timeout=300)
    assert proc.returncode == 0, se[-2000:]
    assert "2 done, 0 failed" in so and [r["status"] for r in recs] == ["done", "done"]
    assert_trained_once(out, tiny_world["local"])
    assert attempts(out, POINTS[0])[0]["runner"] == "local"
