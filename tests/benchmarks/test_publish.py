"""exprbench publish: a suite's committed form loads without checkpoints and verifies itself."""

from __future__ import annotations

import hashlib

import pytest
import torch

from exprbench.benchmarks.publish import publish
from exprbench.errors import UserError
from exprbench.harness import load_trained


def test_published_runs_load_without_checkpoints(bench_results, tmp_path):
    dest = tmp_path / "pub"
    written = publish(bench_results, dest, dtype="float32")
    half = publish(bench_results, tmp_path / "half")  # the default: float16
    assert {p.name for p in written} == {p.name for p in (bench_results / "runs").iterdir()}
    diff = {}
    for run, run16 in zip(written, half):
        assert not (run / "checkpoints").exists() and (run / "weights.safetensors").exists()
        assert (run / "eval.json").exists() and (run / "record.json").exists()
        _, a, _, step_a = load_trained(bench_results / "runs" / run.name)
        _, b, _, step_b = load_trained(run)
        _, c, _, _ = load_trained(run16)
        g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
        want = a.sample(4, torch.arange(4), g())
        assert step_a == step_b and torch.equal(want, b.sample(4, torch.arange(4), g()))
        diff[run.name] = float((c.sample(4, torch.arange(4), g()) - want).abs().max())
    assert max(diff.values()) < 0.05, diff  # float16 rounding, a fraction of one uint8 level (0.0078) typically
    size = {d: sum((r / "weights.safetensors").stat().st_size for r in runs) for d, runs in (("32", written), ("16", half))}
    assert size["16"] < 0.6 * size["32"], size
    lines = (dest / "MANIFEST.sha256").read_text().splitlines()
    assert len(lines) == len(written)
    for ln in lines:
        digest, rel = ln.split("  ", 1)
        assert hashlib.sha256((dest / rel).read_bytes()).hexdigest() == digest
    publish(bench_results, dest, dtype="float32")  # idempotent: publishing again rewrites the same manifest
    assert (dest / "MANIFEST.sha256").read_text().splitlines() == lines


def test_publish_refuses_a_directory_without_runs(tmp_path):
    with pytest.raises(UserError, match="no runs/ directory"):
        publish(tmp_path, tmp_path / "x")


def test_a_published_run_evaluates_from_its_weights(bench_results, tmp_path):
    from exprbench.metrics.evaluate import evaluate_run

    run = publish(bench_results, tmp_path / "pub")[0]
    before = (run / "eval.json").read_text()
    res = evaluate_run(run, ["acc_gen70"], device="cpu")  # no checkpoints: the float16 weights file
    e = res["metrics"]["acc_gen70"]
    assert e["status"] == "ok" and e["step"] > 0 and (run / "eval.json").read_text() != before
    with pytest.raises(UserError, match="no checkpoint"):  # a step needs the checkpoints, which are not published
        evaluate_run(run, ["acc_gen70"], device="cpu", checkpoint=7)
