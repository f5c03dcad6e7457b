"""``exprbench bench``: run a suite's grid (train, evaluate, record), idempotent and resumable.

Layout under the output directory (default ``results/<suite>/``)::

    runs/<model>-<config>-s<seed>/   a run directory (see exprbench.harness) plus
        eval.json                    the metrics (exprbench.metrics.evaluate_run)
        record.json                  done | failed | diverged, wall times, img/s, peak memory, device,
                                     library versions, git commit, error

A grid point whose ``record.json`` says ``done`` is skipped. Any other point resumes: training
continues from its newest checkpoint (a completed training is not repeated), evaluation is redone.
Every file is written atomically, so the runner can be killed at any moment and started again; the
suite then finishes with each grid point trained and evaluated exactly once from the last checkpoint.
A failing point is recorded with its error and the suite goes on; it is retried on the next start
(``diverged`` points are not: they diverge again deterministically).
"""

from __future__ import annotations

import resource
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

import torch

from exprbench.data import LABEL_SETS, load_dataset
from exprbench.errors import TrainingDiverged, UserError
from exprbench.harness import Trainer, device_name, library_versions, resolve_device
from exprbench.io import read_json, write_json

from .suite import GridPoint, Suite, SuiteError

DONE, FAILED, DIVERGED = "done", "failed", "diverged"


def run_state(run_dir: Path) -> str:
    """``done``, ``failed``, ``diverged`` (from record.json), ``partial`` or ``new``."""
    rec = read_json(run_dir / "record.json")
    if rec and rec.get("status") in (DONE, FAILED, DIVERGED):
        return rec["status"]
    return "partial" if run_dir.exists() else "new"


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def curve_hook(suite: Suite, data, device: torch.device) -> Callable[[int, object], dict[str, float]] | None:
    """The periodic evaluation of a suite (``[eval] curve_metric``), or None when off."""
    if not suite.curve_metric or not suite.curve_every:
        return None
    from exprbench.metrics.evaluate import evaluate_model

    def hook(step: int, model) -> dict[str, float]:
        res = evaluate_model(model, data, [suite.curve_metric], device=device)[suite.curve_metric]
        return {suite.curve_metric: res["value"]} if res["status"] == "ok" else {}

    return hook


def run_point(suite: Suite, point: GridPoint, run_dir: Path, data_path: str | None,
              device: str | None = None, progress: bool = True) -> dict:
    """Train (resuming), evaluate and record one grid point; returns its record.

    Exceptions other than KeyboardInterrupt are caught and recorded (``failed`` / ``diverged``).
    """
    from exprbench.metrics.evaluate import evaluate_run

    cfg = suite.run_config(point, data_path, runs_dir=run_dir.parent)
    if device:
        cfg.train.device = device
    dev = resolve_device(cfg.train.device)
    record: dict = {"grid_point": point.name, "model": point.model, "config": point.config, "seed": point.seed,
                    "suite": suite.name, "device": str(dev), "device_name": device_name(dev),
                    "versions": library_versions()}
    t0 = time.perf_counter()
    try:
        status = read_json(run_dir / "status.json") or {}
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        if status.get("status") != "completed":
            data = load_dataset(cfg.data.path, cfg.data.label_set)
            hook = curve_hook(suite, data, dev)
            Trainer(cfg, run_dir, resume=True, dataset=data, progress=progress, eval_hook=hook,
                    eval_every=suite.curve_every).run()
            status = read_json(run_dir / "status.json") or {}
        t1 = time.perf_counter()
        if suite.metrics or cfg.data.label_set in LABEL_SETS:
            ev = evaluate_run(run_dir, metrics=suite.metrics or None, device=str(dev), data=cfg.data.path)
        else:  # no FER2013 metric applies to other data (CelebA): a suite without metrics only trains
            ev = {}
        record.update(
            status=DONE, train_wall_s=status.get("train_seconds"), steps=status.get("step"),
            img_per_s=status.get("img_per_s"), eval_wall_s=ev.get("wall_s"),
            session_wall_s=round(time.perf_counter() - t0, 2), setup_and_eval_s=round(time.perf_counter() - t1, 2),
            peak_rss_mib=_peak_rss_mib(),
            peak_gpu_mib=(torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else None,
        )
    except TrainingDiverged as e:
        record.update(status=DIVERGED, error=str(e))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # recorded, and the suite goes on
        record.update(status=FAILED, error=f"{type(e).__name__}: {e}",
                      traceback=traceback.format_exc(limit=8).splitlines()[-12:])
    write_json(run_dir / "record.json", record)
    return record


def run_suite(suite: Suite, out: Path, only: Sequence[str] = (), device: str | None = None,
              data_path: str | None = None, progress: bool = True, console=None,
              seeds: Sequence[int] = ()) -> list[dict]:
    """Run every grid point of ``suite`` (or only those of the models in ``only`` and the seeds in
    ``seeds``) under ``out/runs``. Disjoint selections may run in parallel processes.

    Returns the records of all selected points (skipped ones included).

    Raises:
        SuiteError: ``only`` names a model, or ``seeds`` a seed, that is not in the suite.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = console or Console(stderr=True)
    models = {p.model for p in suite.grid}
    bad = [m for m in only if m not in models]
    if bad:
        raise SuiteError(f"--only {bad[0]!r} is not in suite {suite.name!r} (models: {', '.join(sorted(models))})")
    bad_seeds = [s for s in seeds if s not in {p.seed for p in suite.grid}]
    if bad_seeds:
        raise SuiteError(f"--seed {bad_seeds[0]} is not in suite {suite.name!r}")
    points = [p for p in suite.grid if (not only or p.model in only) and (not seeds or p.seed in seeds)]
    if data_path is None:  # resolve once, so every run records the same dataset
        from exprbench.data import resolve_data_path

        data_path = str(resolve_data_path(None))
    runs = out / "runs"
    write_json(out / "suite.json", {"suite": suite.name, "file": str(suite.path), "grid": [p.name for p in suite.grid],
                                    "metrics": suite.metrics, "budget": suite.budget})
    records = []
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task(f"suite {suite.name}", total=len(points))
        for point in points:
            run_dir = runs / point.name
            state = run_state(run_dir)
            if state in (DONE, DIVERGED):
                records.append(read_json(run_dir / "record.json"))
                bar.advance(task)
                continue
            bar.update(task, description=f"suite {suite.name}: {point.name} ({'resume' if state != 'new' else 'new'})")
            rec = run_point(suite, point, run_dir, data_path, device, progress=False)
            if rec["status"] != DONE:
                console.print(f"[red]{point.name}: {rec['status']}[/red] {rec.get('error', '')}")
            records.append(rec)
            bar.advance(task)
    return records


def summary_line(records: list[dict]) -> str:
    """``N done, N failed, N diverged`` for a list of records."""
    counts = {s: sum(1 for r in records if r and r.get("status") == s) for s in (DONE, FAILED, DIVERGED)}
    return ", ".join(f"{v} {k}" for k, v in counts.items())


__all__ = ["run_suite", "run_point", "run_state", "summary_line", "UserError"]
