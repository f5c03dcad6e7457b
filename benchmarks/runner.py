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
from pathlib import Path
from typing import Sequence

from exprbench.core.errors import UserError
from exprbench.core.io import read_json, write_json

from .claims import default_lease_s, holder, read_attempts
from .executors import LocalExecutor
from .identity import IDENTITY, IdentityError, check_identity, write_identity  # noqa: F401
from .point import (BUSY, CRASHED, DIVERGED, DONE, FAILED, REFUSED, PointJob, _settled, curve_hook,  # noqa: F401
                    execute_point, record_crash, run_point, run_state)
from .suite import Suite, SuiteError


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
