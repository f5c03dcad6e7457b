"""Training compute of a run, counted, so that a reader sees what a "matched" budget means (the cost table).

* :func:`gflop_per_image`: forward + backward GFLOP per image of one ``training_step``, counted with
  ``torch.utils.flop_counter``'s formulas (matmul and convolution FLOPs, 2 per multiply-add); also the perf
  benchmarks' count (``benchmarks/perf/test_train_speed.py``).
* :func:`count_run`: that count for a run's own config (its ``config.json``), on the CPU at batch 8 with random
  inputs of the data's shape, written to ``RUN/compute.json``; ``bench`` does it after training, and
  ``python -m exprbench.benchmarks.compute RESULTS_DIR`` for runs that lack it.
* :func:`run_budget`: what the report's cost table (:func:`.tables.cost_table`) reads: JSON only, no model code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from exprbench.core.errors import UserError
from exprbench.core.io import read_json, write_json

COMPUTE = "compute.json"
BATCH = 8
# the data's image shape and classes by label set (counting does not load the dataset)
_SHAPES = {"fer7": (1, 48, 48, 7), "fer6": (1, 48, 48, 6)}


def gflop_per_image(model, batch) -> float:
    """Forward + backward GFLOP per image of one ``model.training_step(batch, 0)``; the step runs (it updates the
    model). Counted by a dispatch mode that sums ``torch.utils.flop_counter``'s per-op formulas (matmul and
    convolution FLOPs, 2 per multiply-add: the same count as ``FlopCounterMode``, without its module tracker,
    which fails on ``autograd.grad`` w.r.t. an input such as an R1 penalty in torch 2.14)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **(kwargs or {}), out_val=out)
            return out

    counter = Count()
    with counter:
        model.training_step(batch, 0)
    return counter.total / 1e9 / batch.x.shape[0]


def _count(run_dir: Path) -> dict:
    import torch

    from exprbench.runs.config import load_run_config
    from exprbench.data import DataSpec
    from exprbench.models.base import Batch
    from exprbench.runs.loader import build_model

    try:
        cfg = load_run_config(run_dir)
    except UserError as e:  # a config.json this version cannot rebuild
        return {"gflop_per_img": None, "why": str(e)}
    shape = _SHAPES.get(cfg.data.label_set)
    if shape is None:
        return {"gflop_per_img": None, "why": f"label set {cfg.data.label_set!r}: image shape not known without the data"}
    c, h, w, k = shape
    spec = DataSpec(c, h, w, tuple(f"class{i}" for i in range(k)), cfg.data.label_set)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        try:
            model = build_model(cfg, spec, torch.device("cpu"))
        except UserError as e:  # e.g. InterFaceGAN, whose base run is not here
            return {"gflop_per_img": None, "why": str(e)}
        if not model.optimizers:  # InterFaceGAN: its one "step" is a boundary fit, not a gradient step
            return {"gflop_per_img": None, "why": "no gradient training step"}
        batch = Batch(torch.rand(BATCH, c, h, w) * 2 - 1, torch.arange(BATCH) % k)
        return {"gflop_per_img": gflop_per_image(model, batch), "batch": BATCH,
                "counter": "torch.utils.flop_counter formulas", "torch": torch.__version__}


def count_run(run_dir: str | Path) -> dict:
    """Count the GFLOP per training image of the run at ``run_dir`` (its config) and write ``RUN/compute.json``
    (``{gflop_per_img, batch, counter, torch}``, or ``{gflop_per_img: None, why}``); returns it."""
    out = _count(Path(run_dir))
    write_json(Path(run_dir) / COMPUTE, out)
    return out


def run_budget(run: Path, batch_size: int | None, steps: int | None) -> dict:
    """What a run's training cost: ``images`` (steps x batch), ``epochs`` (the last ``train.jsonl`` record's) and
    ``gflop_per_img`` (``compute.json``); None where unknown. Reads JSON only."""
    epochs = None
    log = run / "train.jsonl"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    for line in reversed(lines):
        try:
            epochs = json.loads(line).get("epoch")
            break
        except (ValueError, AttributeError):
            continue
    gflop = (read_json(run / COMPUTE) or {}).get("gflop_per_img") if (run / COMPUTE).is_file() else None
    return {"images": steps * batch_size if isinstance(steps, int) and isinstance(batch_size, int) else None,
            "epochs": float(epochs) if isinstance(epochs, (int, float)) else None,
            "gflop_per_img": float(gflop) if isinstance(gflop, (int, float)) else None}


def main(argv: list[str] | None = None) -> int:
    """``python -m exprbench.benchmarks.compute RESULTS_DIR [--force]``: write compute.json for every run under
    ``RESULTS_DIR/runs`` that lacks one (all with ``--force``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    roots = [Path(a) for a in args if a != "--force"]
    if len(roots) != 1 or not (roots[0] / "runs").is_dir():
        print("usage: python -m exprbench.benchmarks.compute RESULTS_DIR [--force]  (a folder with runs/)", file=sys.stderr)
        return 2
    for run in sorted(p for p in (roots[0] / "runs").iterdir() if (p / "config.json").is_file()):
        if force or not (run / COMPUTE).is_file():
            out = count_run(run)
            print(f"{run.name}: {out.get('gflop_per_img')} GFLOP per training image" + (f" ({out['why']})" if out.get("why") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
