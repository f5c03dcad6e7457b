"""The fault campaign's world: a tiny FER2013-format CSV, a tiny evaluator, a trained and evaluated cGAN run,
its published copy (``results/runs/<point>/`` with ``weights.safetensors`` and ``MANIFEST.sha256``), a synthetic
results folder with its report, and a tiny suite. Built once (about 15 s on one CPU thread); every case copies
what it damages, so the cases are independent."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

USAGES = ("Training", "PublicTest", "PrivateTest")
# the trained run's overrides; a resumed `exprbench train` must give the same (config check on resume)
TRAIN_SETS = ["model.ch=4", "train.batch_size=8", "train.device=cpu", "train.sample_every=0", "train.ckpt_every=0",
              "train.samples_per_class=1", "train.log_every=1"]
SUITE = """name = "faults"
seeds = [0]
device = "cpu"
[budget]
steps = 2
[train]
batch_size = 8
sample_every = 0
samples_per_class = 1
[eval]
metrics = ["acc_gen70"]
[[models]]
name = "gan"
set = { "model.ch" = 4 }
"""


@dataclass
class World:
    """Paths of the campaign's inputs (see the module docstring)."""

    root: Path
    csv: Path
    evaluator: Path
    run: Path  # trained (2 steps, a checkpoint) and evaluated (acc_gen70): config.json, eval.json, train.jsonl
    published: Path  # the results folder holding runs/cgan-default-s0/ and MANIFEST.sha256
    results: Path  # synthetic results: runs/gan-default-s{0,1}/ and report/ (tables, baseline, figures)
    suite: Path


def write_csv(path: Path, per_class: int = 10, seed: int = 0) -> Path:
    """A fer2013.csv of smooth random faces: ``per_class`` rows per emotion and usage."""
    rng = np.random.default_rng(seed)
    imgs = np.repeat(np.repeat(rng.integers(0, 256, size=(7 * 3 * per_class, 12, 12)), 4, axis=1), 4, axis=2)
    lines, k = ["emotion,pixels,Usage"], 0
    for usage in USAGES:
        for label in range(7):
            for _ in range(per_class):
                lines.append(f"{label},{' '.join(map(str, imgs[k].ravel()))},{usage}")
                k += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def _entry(value: float) -> dict:
    return {"status": "ok", "value": value, "n_samples": 70, "seed": 0, "extractor": "fer-evaluator"}


def write_results(root: Path) -> Path:
    """A results folder of two bench runs of gan (eval.json with fid70_train and acc_gen70; no model)."""
    for seed, fid in ((0, 12.0), (1, 10.0)):
        run = root / "runs" / f"gan-default-s{seed}"
        run.mkdir(parents=True)
        files = {"config.json": {"model": "gan", "config_name": "default", "train": {"seed": seed},
                                 "data": {"label_set": "fer7"}},
                 "status.json": {"status": "completed", "device": "cpu", "step": 6, "train_seconds": 12.0},
                 "record.json": {"status": "done", "eval_wall_s": 3.0, "device": "cpu"},
                 "eval.json": {"metrics": {"fid70_train": _entry(fid), "acc_gen70": _entry(0.3 + seed / 10)},
                               "references": {"fid70_train": _entry(0.05), "acc_gen70": _entry(0.66)}}}
        for name, obj in files.items():
            (run / name).write_text(json.dumps(obj))
    (root / "suite.json").write_text(json.dumps({"suite": "faults", "grid": ["gan-default-s0", "gan-default-s1"]}))
    return root


def _publish(run: Path, dest: Path) -> Path:
    """``run``'s weights as ``dest/runs/cgan-default-s0/`` with a ``dest/MANIFEST.sha256`` (what publish writes)."""
    from exprbench.runs.loader import load_trained
    from exprbench.runs.weights import FILENAME, export_weights

    out = dest / "runs" / "cgan-default-s0"
    out.mkdir(parents=True)
    shutil.copy(run / "config.json", out / "config.json")
    _, model, spec, step = load_trained(run)
    export_weights(model, dataclasses.asdict(spec), step, out / FILENAME)
    digest = hashlib.sha256((out / FILENAME).read_bytes()).hexdigest()
    (dest / "MANIFEST.sha256").write_text(f"{digest}  runs/{out.name}/{FILENAME}\n")
    return dest


def build_world(root: Path) -> World:
    """Build the world under ``root`` (its ``cache/`` must be ``$EXPRBENCH_CACHE`` already)."""
    from exprbench.benchmarks.report.build import write_report
    from exprbench.runs.config import resolve_config
    from exprbench.data import load_fer2013
    from exprbench.runs.harness import Trainer
    from exprbench.metrics.run.evaluate import evaluate_run
    from exprbench.metrics.testing import tiny_evaluator

    root.mkdir(parents=True, exist_ok=True)
    csv = write_csv(root / "fer2013.csv")
    ds = load_fer2013(csv)
    ev = tiny_evaluator(ds, root / "evaluator.pt", epochs=1)
    cfg = resolve_config("cgan", "default", [*TRAIN_SETS, "train.steps=2", f"data.path={csv}"])
    run = root / "run"
    Trainer(cfg, run, dataset=ds, progress=False).run()
    evaluate_run(run, ["acc_gen70"], device="cpu", evaluator_weights=ev)
    results = write_results(root / "results")
    write_report(results, html=False)
    suite = root / "faults.toml"
    suite.write_text(SUITE)
    return World(root, csv, ev, run, _publish(run, root / "published"), results, suite)
