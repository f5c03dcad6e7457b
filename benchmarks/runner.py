"""``exprbench bench``: run a suite's grid (train, evaluate, record), idempotent and resumable.

Layout under the output directory (default ``results/<suite>/``)::

    runs/<model>-<config>-s<seed>/   a run directory (see exprbench.runs.harness) plus
        eval.json                    the metrics (exprbench.metrics.run.evaluate.evaluate_run)
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

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from exprbench.core.errors import UserError
from exprbench.core.io import read_json, write_json

from exprbench.benchmarks.report.claims import default_lease_s, holder, read_attempts
from exprbench.benchmarks.executors import LocalExecutor
from exprbench.benchmarks.identity import IdentityError, check_identity
from exprbench.benchmarks.point import (BUSY, CRASHED, DIVERGED, DONE, FAILED, REFUSED, PointJob, _settled,
    execute_point, record_crash, run_point, run_state)
from exprbench.benchmarks.suite import GridPoint, Suite, SuiteError


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

    console = console or Console(stderr=True)
    points = _select_points(suite, only, seeds)
    data_path = _default_data_path(data_path)
    executor = executor or LocalExecutor()
    device = device or executor.default_device
    lease_s = lease_s or default_lease_s()
    out, data_path = _worker_paths(out, data_path, executor.remote)
    runs = Path(out) / "runs"
    for point in points:  # refuse a directory of another config before anything runs or is written
        check_identity(suite, point, runs / point.name)
    _write_suite_json(suite, Path(out))
    grid = _plan_grid(suite, points, runs, data_path, device, executor, lease_s, poll_s)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[counts]}")]
    try:
        with Progress(*columns, console=console, disable=not progress) as bar:
            task = bar.add_task(f"suite {suite.name} ({executor.name})", total=len(points), counts="")
            while len(grid.results) < len(points):
                _submit_ready(grid, bar, task)
                _take_finished(grid, console)
                bar.update(task, completed=len(grid.results), counts=_count_points(grid),
                           **({"description": f"suite {suite.name} ({executor.name})"} if not grid.in_flight else {}))
    finally:
        executor.close()
    return [grid.results[p.name] for p in points]


@dataclass
class _Grid:
    """The state of one :func:`run_suite`: the selected points, their jobs, and which are finished, in flight or
    deferred (``not_before``: a monotonic time before which a point is not looked at again)."""

    suite: Suite
    points: list[GridPoint]
    runs: Path
    executor: Any
    jobs: dict[str, PointJob]
    initial: dict[str, dict | None]
    deps: dict[str, list[str]]
    lease_s: float
    poll_s: float
    results: dict[str, dict] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)
    not_before: dict[str, float] = field(default_factory=dict)


def _select_points(suite: Suite, only: Sequence[str], seeds: Sequence[int]) -> list[GridPoint]:
    """The grid points of the models in ``only`` and the seeds in ``seeds`` (all when empty), in grid order."""
    models = {p.model for p in suite.grid}
    bad = [m for m in only if m not in models]
    if bad:
        raise SuiteError(f"--only {bad[0]!r} is not in suite {suite.name!r} (models: {', '.join(sorted(models))})")
    bad_seeds = [s for s in seeds if s not in {p.seed for p in suite.grid}]
    if bad_seeds:
        raise SuiteError(f"--seed {bad_seeds[0]} is not in suite {suite.name!r}")
    return [p for p in suite.grid if (not only or p.model in only) and (not seeds or p.seed in seeds)]


def _default_data_path(data_path: str | None) -> str:
    """The dataset path: the given one, else the default resolved once here, so every run records the same."""
    if data_path is not None:
        return data_path
    from exprbench.data import resolve_data_path

    return str(resolve_data_path(None))


def _worker_paths(out: Path, data_path: str, remote: bool) -> tuple[Path, str]:
    """``(out, data_path)`` as the workers see them: absolute when they run elsewhere (another cwd, host)."""
    if not remote:
        return out, data_path
    out = Path(out).resolve()
    if Path(data_path).exists():
        data_path = str(Path(data_path).resolve())
    return out, data_path


def _write_suite_json(suite: Suite, out: Path) -> None:
    """Write ``out/suite.json``: the suite's name, file, grid, metrics and budget."""
    write_json(out / "suite.json", {"suite": suite.name, "file": str(suite.path),
                                    "grid": [p.name for p in suite.grid], "metrics": suite.metrics,
                                    "budget": suite.budget})


def _plan_grid(suite: Suite, points: list[GridPoint], runs: Path, data_path: str, device: str | None, executor,
               lease_s: float, poll_s: float) -> _Grid:
    """The points' records as the suite starts, their dependencies among the selected points, and their jobs."""
    initial = {p.name: read_json(runs / p.name / "record.json") for p in points}
    selected = {p.name for p in points}
    deps = {p.name: [d for d in suite.dependencies(p) if d in selected] for p in points}
    jobs = {p.name: PointJob(suite, p, str(runs / p.name), data_path, device, initial[p.name], lease_s,
                             runner=executor.name) for p in points}
    return _Grid(suite, points, runs, executor, jobs, initial, deps, lease_s, poll_s)


def _count_points(grid: _Grid) -> str:
    """``N done, N running, N failed, N left`` for the progress display."""
    running = sum(1 for p in grid.points
                  if p.name not in grid.results and (holder(grid.runs / p.name, grid.lease_s) or {}).get("alive"))
    st = [r.get("status") for r in grid.results.values()]
    done, failed = st.count(DONE), st.count(FAILED) + st.count(DIVERGED)
    return f"{done} done, {running} running, {failed} failed, {len(grid.points) - len(grid.results) - running} left"


def _submit_ready(grid: _Grid, bar, task) -> None:
    """Submit the points whose dependencies are finished and no runner holds, while the executor has slots."""
    now = time.monotonic()
    for point in grid.points:
        name = point.name
        if name in grid.results or name in grid.in_flight or grid.not_before.get(name, 0) > now:
            continue
        if any(d not in grid.results for d in grid.deps[name]):
            continue
        run_dir = grid.runs / name
        rec = read_json(run_dir / "record.json")
        if _settled(rec, grid.initial[name]):  # done before, or finished by another runner
            grid.results[name] = rec
            continue
        h = holder(run_dir, grid.lease_s)
        if h is not None and h["alive"]:  # another runner is on it: look again later
            grid.not_before[name] = now + 4 * grid.poll_s
            continue
        if len(grid.in_flight) >= grid.executor.slots:
            break
        state = "resume" if run_dir.exists() and read_attempts(run_dir) else "new"
        bar.update(task, description=f"suite {grid.suite.name} ({grid.executor.name}): {name} ({state})",
                   counts=_count_points(grid))
        grid.in_flight.add(name)
        grid.executor.submit(grid.jobs[name])


def _take_finished(grid: _Grid, console) -> None:
    """Wait up to ``poll_s`` for the executor's results and record them; a busy point is looked at again later."""
    for name, res in (grid.executor.wait(grid.poll_s) if len(grid.results) < len(grid.points) else []):
        grid.in_flight.discard(name)
        status = res.get("status")
        if status == REFUSED:
            raise IdentityError(res["error"])
        if status == CRASHED:
            res = record_crash(grid.jobs[name], res.get("error", "worker died"), grid.executor.max_retries) or {
                "status": BUSY}
        if res.get("status") == BUSY:
            grid.not_before[name] = time.monotonic() + 4 * grid.poll_s
            continue
        grid.results[name] = res
        if res.get("status") != DONE:
            console.print(f"[red]{name}: {res.get('status')}[/red] {res.get('error', '')}")


def summary_line(records: list[dict]) -> str:
    """``N done, N failed, N diverged`` for a list of records."""
    counts = {s: sum(1 for r in records if r and r.get("status") == s) for s in (DONE, FAILED, DIVERGED)}
    return ", ".join(f"{v} {k}" for k, v in counts.items())


__all__ = ["run_suite", "run_point", "run_state", "execute_point", "check_identity", "summary_line", "PointJob",
           "IdentityError", "UserError"]
