"""exprbench publish: a suite's committed form loads without checkpoints and verifies itself."""

from __future__ import annotations

import hashlib

import pytest
import torch

from exprbench.benchmarks.publish import publish
from exprbench.core.errors import UserError
from exprbench.runs.loader import load_trained


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
    from exprbench.metrics.run.evaluate import evaluate_run

    run = publish(bench_results, tmp_path / "pub")[0]
    before = (run / "eval.json").read_text()
    res = evaluate_run(run, ["acc_gen70"], device="cpu")  # no checkpoints: the float16 weights file
    e = res["metrics"]["acc_gen70"]
    assert e["status"] == "ok" and e["step"] > 0 and (run / "eval.json").read_text() != before
    with pytest.raises(UserError, match="published run: it keeps only its final weights"):  # a step needs the checkpoints, which are not published
        evaluate_run(run, ["acc_gen70"], device="cpu", checkpoint=7)


def test_a_published_interfacegan_loads_its_published_base_run(tmp_path):
    """InterFaceGAN's config names its base GAN run by path: published, it names the sibling copy ({runs}/<point>),
    so the published pair loads from anywhere once the original runs are gone."""
    import json
    import shutil

    from exprbench.runs.config import resolve_config
    from exprbench.data import load_fer2013
    from exprbench.runs.harness import Trainer

    from exprbench.metrics.extractors.evaluator import plugin_resources

    from ..conftest import write_csv

    src = tmp_path / "suite"
    ds = load_fer2013(write_csv(tmp_path / "fer2013.csv", per_class=6), use_cache=False)
    gan = resolve_config("gan", "default", ["model.ch=4", "train.batch_size=8", "train.steps=1", "train.sample_every=0",
                                            "train.samples_per_class=1"])
    Trainer(gan, src / "runs" / "gan-default-s0", dataset=ds, progress=False).run()
    ifg = resolve_config("interfacegan", "default", [f"model.base_run={src / 'runs' / 'gan-default-s0'}",
                                                     "model.n_latents=200", "model.ratio=0.1", "train.samples_per_class=1"])
    Trainer(ifg, src / "runs" / "interfacegan-default-s0", dataset=ds, progress=False, resources=plugin_resources()).run()
    for run in (src / "runs").iterdir():
        (run / "record.json").write_text(json.dumps({"status": "done"}))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    want = load_trained(src / "runs" / "interfacegan-default-s0")[1].sample(4, torch.arange(4), g())
    publish(src, tmp_path / "pub", dtype="float32")
    moved = tmp_path / "clone" / "results"
    shutil.copytree(tmp_path / "pub", moved)
    shutil.rmtree(src)
    cfg = json.loads((moved / "runs" / "interfacegan-default-s0" / "config.json").read_text())
    assert cfg["model_cfg"]["base_run"] == "{runs}/gan-default-s0"
    cfg_loaded, model, _, _ = load_trained(moved / "runs" / "interfacegan-default-s0")
    assert cfg_loaded.model_cfg.base_run == str((moved / "runs" / "gan-default-s0").resolve())
    assert torch.equal(model.sample(4, torch.arange(4), g()), want)
