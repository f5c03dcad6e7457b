"""``exprbench bench``: run a suite's grid (train, evaluate, record), idempotent and resumable.

Layout under the output directory (default ``results/<suite>/``)::

    runs/<model>-<config>-s<seed>/   a run directory (see exprbench.harness) plus
        eval.json                    the metrics (exprbench.metrics.evaluate_run)
        record.json                  done | failed | diverged, wall times, img/s, peak memory, device,
                                     library versions, git commit, config_sha256, attempts, worker, error
        identity.json                the grid point's config sha256 and its identity mapping
        attempts.jsonl, claim.*      attempts to run it and the current claim (benchmarks.claims)

A grid point whose ``record.json`` says ``done`` is skipped. Any other point resumes: training
continues from its newest checkpoint (a completed training is not repeated), evaluation is redone.
Every file is written atomically, so the runner can be killed at any moment and started again; the
suite then finishes with each grid point trained and evaluated exactly once from the last checkpoint.
A failing point is recorded with its error and the suite goes on; it is retried on the next start
(``diverged`` points are not: they diverge again deterministically).

Runners: the grid runs in this process (``LocalExecutor``) or as one Ray task per point on a cluster
(``benchmarks.executors.RayExecutor``); either way a point is *claimed* before it starts
(:mod:`benchmarks.claims`), so several runners on one results folder (two ``bench`` processes, a
local runner beside a Ray cluster) never work on the same point at once and every point ends with
exactly one record. A point that names another point's run directory (``{runs}/<point>`` in its
overrides, e.g. InterFaceGAN's base GAN) waits until that point has its record. Each run directory also
holds ``identity.json`` (see :mod:`.identity`): the sha256 of the point's resolved config
(:meth:`Suite.identity`); a suite that asks for another config in an existing directory is refused.
"""

from __future__ import annotations

import os
import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from exprbench.data import LABEL_SETS, load_dataset
from exprbench.errors import TrainingDiverged, UserError
from exprbench.harness import Trainer, device_name, library_versions, list_checkpoints, resolve_device
from exprbench.io import read_json, write_json

from .claims import Claim, default_lease_s, holder, read_attempts, this_host
from .identity import IDENTITY, IdentityError, check_identity, write_identity  # noqa: F401
from .suite import GridPoint, Suite, SuiteError, identity_hash

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
    from exprbench.metrics.evaluate import evaluate_model

    def hook(step: int, model) -> dict[str, float]:
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
    from exprbench.metrics.evaluate import evaluate_run

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


def run_suite(suite: Suite, out: Path, only: Sequence[str] = (), device: str | None = None,
              data_path: str | None = None, progress: bool = True, console=None,
              seeds: Sequence[int] = (), executor=None, lease_s: float | None = None,
              poll_s: float = 0.5) -> list[dict]:
    """Run every grid point of ``suite`` (or only those of the models in ``only`` and the seeds in
    ``seeds``) under ``out/runs``, on ``executor`` (default: in this process, one point at a time).

    Points claimed by another runner (another ``bench`` on the same ``out``, a Ray cluster) are left to
    it and their records collected when it finishes them, so any number of runners may share ``out``.

    Args:
        suite: the parsed suite; out: the results directory.
        only, seeds: restrict the grid to these models / seeds.
        device: overrides the suite's device (default: the executor's, e.g. ``cuda`` with GPUs per run).
        data_path: dataset path (default resolved once here, so every run records the same).
        progress: show the progress display (done / running / failed / left) on ``console``.
        executor: ``benchmarks.executors.LocalExecutor`` (default) or ``RayExecutor``.
        lease_s: claim lease (default ``$EXPRBENCH_CLAIM_LEASE_S`` or 60 s).
        poll_s: seconds between looks at the workers and the claims.

    Returns the records of all selected points (skipped ones included), in grid order.

    Raises:
        SuiteError: ``only`` names a model, or ``seeds`` a seed, that is not in the suite; a run
            directory holds another config (:class:`IdentityError`; nothing is run or written then).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .executors import LocalExecutor

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
    executor = executor or LocalExecutor()
    device = device or executor.default_device
    lease_s = lease_s or default_lease_s()
    if executor.remote:  # workers run elsewhere (another cwd, another host): absolute paths
        out = Path(out).resolve()
        if Path(data_path).exists():
            data_path = str(Path(data_path).resolve())
    runs = Path(out) / "runs"
    for point in points:  # refuse a directory of another config before anything runs or is written
        check_identity(suite, point, runs / point.name)
    write_json(Path(out) / "suite.json", {"suite": suite.name, "file": str(suite.path),
                                          "grid": [p.name for p in suite.grid], "metrics": suite.metrics,
                                          "budget": suite.budget})
    initial = {p.name: read_json(runs / p.name / "record.json") for p in points}
    selected = {p.name for p in points}
    deps = {p.name: [d for d in suite.dependencies(p) if d in selected] for p in points}
    jobs = {p.name: PointJob(suite, p, str(runs / p.name), data_path, device, initial[p.name], lease_s,
                             runner=executor.name) for p in points}
    results: dict[str, dict] = {}
    in_flight: set[str] = set()
    not_before: dict[str, float] = {}
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[counts]}")]

    def counts() -> str:
        running = sum(1 for p in points if p.name not in results and (holder(runs / p.name, lease_s) or {}).get("alive"))
        st = [r.get("status") for r in results.values()]
        done, failed = st.count(DONE), st.count(FAILED) + st.count(DIVERGED)
        return f"{done} done, {running} running, {failed} failed, {len(points) - len(results) - running} left"

    try:
        with Progress(*columns, console=console, disable=not progress) as bar:
            task = bar.add_task(f"suite {suite.name} ({executor.name})", total=len(points), counts="")
            while len(results) < len(points):
                now = time.monotonic()
                for point in points:
                    name = point.name
                    if name in results or name in in_flight or not_before.get(name, 0) > now:
                        continue
                    if any(d not in results for d in deps[name]):
                        continue
                    run_dir = runs / name
                    rec = read_json(run_dir / "record.json")
                    if _settled(rec, initial[name]):  # done before, or finished by another runner
                        results[name] = rec
                        continue
                    h = holder(run_dir, lease_s)
                    if h is not None and h["alive"]:  # another runner is on it: look again later
                        not_before[name] = now + 4 * poll_s
                        continue
                    if len(in_flight) >= executor.slots:
                        break
                    state = "resume" if run_dir.exists() and read_attempts(run_dir) else "new"
                    bar.update(task, description=f"suite {suite.name} ({executor.name}): {name} ({state})",
                               counts=counts())
                    in_flight.add(name)
                    executor.submit(jobs[name])
                for name, res in (executor.wait(poll_s) if len(results) < len(points) else []):
                    in_flight.discard(name)
                    status = res.get("status")
                    if status == REFUSED:
                        raise IdentityError(res["error"])
                    if status == CRASHED:
                        res = record_crash(jobs[name], res.get("error", "worker died"), executor.max_retries) or {
                            "status": BUSY}
                    if res.get("status") == BUSY:
                        not_before[name] = time.monotonic() + 4 * poll_s
                        continue
                    results[name] = res
                    if res.get("status") != DONE:
                        console.print(f"[red]{name}: {res.get('status')}[/red] {res.get('error', '')}")
                bar.update(task, completed=len(results), counts=counts(),
                           **({"description": f"suite {suite.name} ({executor.name})"} if not in_flight else {}))
    finally:
        executor.close()
    return [results[p.name] for p in points]


def summary_line(records: list[dict]) -> str:
    """``N done, N failed, N diverged`` for a list of records."""
    counts = {s: sum(1 for r in records if r and r.get("status") == s) for s in (DONE, FAILED, DIVERGED)}
    return ", ".join(f"{v} {k}" for k, v in counts.items())


__all__ = ["run_suite", "run_point", "run_state", "execute_point", "check_identity", "summary_line", "PointJob",
           "IdentityError", "UserError"]
