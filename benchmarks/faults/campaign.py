"""``python -m exprbench.benchmarks.faults.campaign``: exprbench's own fault campaign (issue 33).

Every case (:mod:`.cases`) runs one ``exprbench`` command as a subprocess, as a user would, on a damaged,
edited, oversized or interrupted copy of a tiny run (:mod:`.world`, built once in a temporary folder), and
passes when

* the exit code is the expected one (2 bad input, 1 a full disk, 130 Ctrl-C, 0 for the controls and warnings);
* a failing command says so in one line, the last on stderr, with the expected words and no traceback;
* nothing already written was lost (the case's check: files unchanged, no temporary file, state recorded).

It prints a line per case and ``tried N, passed M``; the exit code is 0 when every case passed. One CPU
thread; a few minutes in all (``--quick``: the cases that need no trained run, seconds).

Options: ``--quick``, ``--only NAME[,NAME]``, ``--list``, ``--keep DIR`` (build and keep the folders there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .cases import CASES, Spec
from .world import build_world

CHILD = "from exprbench.benchmarks.faults.cases import child; child()"
TIMEOUT_S = 300


@dataclass
class Outcome:
    """What one case did: ``ok`` None for a case that could not be set up here (skipped)."""

    name: str
    finding: str
    ok: bool | None
    code: int | None
    wall_s: float
    line: str
    problems: list[str]


def _judge(spec: Spec, code: int, stderr: str) -> tuple[str, list[str]]:
    """The last stderr line and what is wrong with the command's ending (nothing: [])."""
    lines = [x for x in stderr.splitlines() if x.strip()]
    last = lines[-1] if lines else ""
    problems = [] if code == spec.code else [f"exit code {code}, expected {spec.code}"]
    if "Traceback" in stderr:
        problems.append("a traceback on stderr")
    if spec.code != 0:
        errors = [x for x in lines if x.startswith("error")]
        if len(errors) > (1 if last.startswith("error") else 0):
            problems.append(f"{len(errors)} error lines")
        missing = [m for m in spec.match if m not in last]
    else:
        missing = [m for m in spec.match if not any(m in x for x in lines)]
    problems += [f"no {m!r} in the {'last stderr line' if spec.code else 'stderr'}" for m in missing]
    return last, problems


def run_case(name: str, world, folder: Path, env: dict) -> Outcome:
    """Build case ``name`` in ``folder``, run its command and judge it."""
    finding, _, build = CASES[name]
    folder.mkdir(parents=True)
    try:
        spec = build(world, folder)
    except FileNotFoundError as e:  # e.g. no committed results in an installed package
        return Outcome(name, finding, None, None, 0.0, f"skipped: {e}", [])
    cmd = [sys.executable, "-c", CHILD, json.dumps({"argv": spec.argv, "fault": spec.fault})]
    t0 = time.perf_counter()
    around = spec.around() if spec.around else None
    try:
        if around is not None:
            around.__enter__()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=folder)
        code, stderr = p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        code, stderr = None, f"error: no answer in {TIMEOUT_S} s"
    finally:
        if around is not None:
            around.__exit__(None, None, None)
    wall = time.perf_counter() - t0
    last, problems = _judge(spec, code, stderr)
    lost = spec.check() if spec.check and code is not None else None
    if lost:
        problems.append(f"lost: {lost}")
    return Outcome(name, finding, not problems, code, wall, last.replace(f"{folder}/", ""), problems)


def _print(o: Outcome) -> None:
    """One line per case (its last stderr line, paths relative to the case's folder), its problems below."""
    verdict = "skip" if o.ok is None else "pass" if o.ok else "FAIL"
    head = f"{verdict} {o.name:36s} finding {o.finding:18s}"
    if o.ok is None:
        print(f"{head} {o.line}", flush=True)
        return
    print(f"{head} exit {o.code} ({o.wall_s:4.1f} s): {o.line[:150]}", flush=True)
    for p in o.problems:
        print(f"     - {p}", flush=True)


def campaign(names: list[str], root: Path) -> list[Outcome]:
    """Run the cases ``names`` with their inputs under ``root``; prints a line each and returns the outcomes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "EXPRBENCH_CACHE": str(root / "cache"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    world = None
    if any(not CASES[n][1] for n in names):
        t0 = time.perf_counter()
        saved = dict(os.environ)
        os.environ.update({k: env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "EXPRBENCH_CACHE")})
        try:
            world = build_world(root / "world")
        finally:
            os.environ.clear()
            os.environ.update(saved)
        print(f"world: tiny CSV, evaluator, trained and published cGAN, synthetic results in {root / 'world'} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    outcomes = []
    for name in names:
        outcomes.append(run_case(name, world, root / "cases" / name, env))
        _print(outcomes[-1])
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    """``tried N, passed M`` (and how many cases could not be set up here)."""
    tried = [o for o in outcomes if o.ok is not None]
    skipped = len(outcomes) - len(tried)
    return f"tried {len(tried)}, passed {sum(o.ok for o in tried)}" + (f" ({skipped} skipped)" if skipped else "")


def main(argv: list[str] | None = None) -> int:
    """Run the campaign (see the module docstring); 0 when every case tried passed, 1 otherwise, 2 bad usage."""
    ap = argparse.ArgumentParser(prog="python -m exprbench.benchmarks.faults.campaign",
                                 description="exprbench's fault campaign (issue 33).")
    ap.add_argument("--quick", action="store_true", help="only the cases that need no trained run (seconds)")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--keep", type=Path, help="build the inputs in this folder and keep them")
    args = ap.parse_args(argv)
    if args.list:
        for name, (finding, quick, _) in CASES.items():
            print(f"{name:36s} finding {finding}{'  (quick)' if quick else ''}")
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or \
        [n for n, (_, quick, _) in CASES.items() if quick or not args.quick]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"error: unknown case {unknown[0]!r} (see --list)", file=sys.stderr)
        return 2
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        print(f"error: --keep {args.keep}: not empty (give a new folder)", file=sys.stderr)
        return 2
    root = args.keep or Path(tempfile.mkdtemp(prefix="exprbench-faults-"))
    try:
        outcomes = campaign(names, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(summary(outcomes), flush=True)
    return 0 if all(o.ok is not False for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
