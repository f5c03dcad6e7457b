"""One grid point of a suite: train (resuming), evaluate and record it under its claim.

:func:`execute_point` is what every runner executes for a :class:`PointJob` (this process or a Ray
worker, see :mod:`.executors`); :func:`run_point` trains, evaluates and writes ``record.json``.
"""

from __future__ import annotations

import os
import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from exprbench.data import LABEL_SETS, load_dataset
from exprbench.core.errors import TrainingDiverged
from exprbench.runs.harness import Trainer
from exprbench.runs.layout import list_checkpoints
from exprbench.core.devices import device_name, library_versions, resolve_device
from exprbench.core.io import read_json, write_json
from exprbench.metrics.extractors.evaluator import plugin_resources

from exprbench.benchmarks.report.claims import Claim, holder, read_attempts, this_host
from exprbench.benchmarks.compute import COMPUTE, count_run
from exprbench.benchmarks.identity import IdentityError, check_identity, write_identity
from exprbench.benchmarks.suite import GridPoint, Suite, identity_hash

DONE, FAILED, DIVERGED = "done", "failed", "diverged"
# what a runner answers instead of a record: the point is claimed by another live runner, the
# directory holds another config, the worker process died (Ray: after its retries)
BUSY, REFUSED, CRASHED = "busy", "refused", "crashed"


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
    from exprbench.metrics.run.evaluate import evaluate_model

    def hook(step: int, model) -> dict[str, float]:
        with model.curve_sampling():  # a diffusion model's fewer sampler steps; others as they are
            res = evaluate_model(model, data, [suite.curve_metric], device=device)[suite.curve_metric]
        return {suite.curve_metric: res["value"]} if res["status"] == "ok" else {}

    return hook


def run_point(suite: Suite, point: GridPoint, run_dir: Path, data_path: str | None,
              device: str | None = None, progress: bool = True, claim: Claim | None = None,
              attempt: int | None = None) -> dict:
    """Train (resuming), evaluate and record one grid point; returns its record.

    Args:
        suite, point: the grid point; run_dir: its run directory.
        data_path: dataset path; device: overrides the suite's device.
        progress: show the training progress bar.
        claim: the claim held on ``run_dir`` (see :func:`execute_point`); when it was lost to another
            runner, nothing is recorded and the record comes back with status ``busy``.
        attempt: this attempt's number (attempts.jsonl), written to the record.

    Exceptions other than KeyboardInterrupt are caught and recorded (``failed`` / ``diverged``).
    """
    from exprbench.metrics.run.evaluate import evaluate_run

    cfg = suite.run_config(point, data_path, runs_dir=run_dir.parent)
    if device:
        cfg.train.device = device
    dev = resolve_device(cfg.train.device)
    record: dict = {"grid_point": point.name, "model": point.model, "config": point.config, "seed": point.seed,
                    "suite": suite.name, "device": str(dev), "device_name": device_name(dev),
                    "versions": library_versions(), "config_sha256": identity_hash(suite.identity(point)),
                    "worker": {"runner": claim.runner if claim else "local", "host": this_host(), "pid": os.getpid()}}
    if attempt is not None:
        record["attempts"] = attempt
    t0 = time.perf_counter()
    try:
        status = read_json(run_dir / "status.json") or {}
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        if status.get("status") != "completed":
            data = load_dataset(cfg.data.path, cfg.data.label_set)
            hook = curve_hook(suite, data, dev)
            Trainer(cfg, run_dir, resume=True, dataset=data, progress=progress, eval_hook=hook,
                    eval_every=suite.curve_every, resources=plugin_resources()).run()
            status = read_json(run_dir / "status.json") or {}
        if not (run_dir / COMPUTE).is_file():  # GFLOP per training image, counted (the report's cost table)
            count_run(run_dir)
        t1 = time.perf_counter()
        metrics = [m for m in suite.metrics if m not in point.skip_metrics]
        if metrics or (not suite.metrics and cfg.data.label_set in LABEL_SETS):  # none listed: the defaults
            ev = evaluate_run(run_dir, metrics=metrics or None, device=str(dev), data=cfg.data.path,
                              ci_draws=suite.ci_draws, keep_samples=point.keep_samples)
        else:  # every listed metric skipped, or other data (CelebA, where no FER2013 metric applies): train only
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
    if claim is not None and claim.lost:  # another runner took the point over: its record counts
        return {**record, "status": BUSY, "error": "claim lost to another runner"}
    write_json(run_dir / "record.json", record)
    return record


@dataclass
class PointJob:
    """Everything a runner (this process or a Ray worker) needs to run one grid point.

    Attributes:
        suite, point: the grid point. run_dir: its run directory (absolute for remote runners).
        data_path, device: as for :func:`run_point`.
        initial_record: the point's record.json when the suite started (None: none); a different one
            found under the claim was written by another runner meanwhile and is taken as the result.
        lease_s: the claim lease (see :mod:`benchmarks.claims`). runner: ``local`` or ``ray``.
        threads: torch intra-op threads in the worker (0: leave as is).
    """

    suite: Suite
    point: GridPoint
    run_dir: str
    data_path: str | None
    device: str | None
    initial_record: dict | None
    lease_s: float
    runner: str = "local"
    threads: int = 0


def _settled(rec: dict | None, initial: dict | None) -> bool:
    """A record that ends the point for this suite run: done / diverged, or written since it started."""
    return bool(rec) and rec.get("status") in (DONE, FAILED, DIVERGED) and (
        rec.get("status") in (DONE, DIVERGED) or rec != initial)


def _newest_step(run_dir: Path) -> int:
    ckpts = list_checkpoints(run_dir)
    return int(ckpts[-1].stem.split("_")[-1]) if ckpts else 0


def execute_point(job: PointJob) -> dict:
    """Claim ``job``'s run directory, then train, evaluate and record the point; give the claim back.

    A claim whose holder is gone is taken over (at once for an exited process on this host, after the
    lease otherwise) and the run resumes from its newest checkpoint.

    Returns:
        The point's record; or ``{"status": "busy", "holder": ...}`` when another live runner holds it;
        or ``{"status": "refused", "error": ...}`` when its directory holds another config.
    """
    run_dir = Path(job.run_dir)
    claim = Claim(run_dir, runner=job.runner, lease_s=job.lease_s)
    h = holder(run_dir, job.lease_s)
    if not claim.acquire(wait=0.0 if h is None or h["alive"] else job.lease_s * 1.5):
        return {"status": BUSY, "grid_point": job.point.name, "holder": holder(run_dir, job.lease_s)}
    try:
        rec = read_json(run_dir / "record.json")
        if _settled(rec, job.initial_record):  # finished by another runner before this claim
            return rec
        try:
            check_identity(job.suite, job.point, run_dir)
        except IdentityError as e:
            return {"status": REFUSED, "grid_point": job.point.name, "error": str(e)}
        write_identity(job.suite, job.point, run_dir)
        attempt = claim.log_attempt(_newest_step(run_dir))
        return run_point(job.suite, job.point, run_dir, job.data_path, job.device, progress=False,
                         claim=claim, attempt=attempt)
    finally:
        claim.release()


def record_crash(job: PointJob, error: str, max_retries: int) -> dict | None:
    """Record ``failed`` for a point whose worker died on every try (Ray gave up); None when busy.

    Claims the point first (the dead worker's claim is taken over), so a record written meanwhile
    by another runner is kept instead.
    """
    run_dir = Path(job.run_dir)
    claim = Claim(run_dir, runner="driver", lease_s=job.lease_s)
    h = holder(run_dir, job.lease_s)
    if not claim.acquire(wait=0.0 if h is None or h["alive"] else job.lease_s * 1.5):
        return None
    try:
        rec = read_json(run_dir / "record.json")
        if _settled(rec, job.initial_record):
            return rec
        n = len(read_attempts(run_dir))
        record = {"grid_point": job.point.name, "model": job.point.model, "config": job.point.config,
                  "seed": job.point.seed, "suite": job.suite.name, "status": FAILED, "attempts": n,
                  "config_sha256": identity_hash(job.suite.identity(job.point)),
                  "error": f"{error} (worker lost on {n} attempt(s); retry limit {max_retries})"}
        write_json(run_dir / "record.json", record)
        return record
    finally:
        claim.release()
