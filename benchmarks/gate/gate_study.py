"""The regression gate's validity study: the documented CI recipe (``docs/gate.md``) run on unchanged code and
with each of three planted regressions, to show that it passes the first with no "improved" noise and fails
each of the others on its headline metrics (realism FID, ``acc_gen``) within the recipe's time.

A planted regression is a context manager that breaks training the way a real bug would, for the runs made
inside it (in this process: the suite runs its grid points here, :class:`~.executors.LocalExecutor`):

``frozen_g``         G's optimizer steps with learning rate 0 (G keeps its initial weights: a forgotten
                     ``optimizer.step()`` or parameters left out of the optimizer).
``shuffled_labels``  each training batch's labels are permuted among its images before they reach the model
                     (a data-loader bug that pairs images with other images' labels: conditioning is broken).
``lr_x10``           G's and D's learning rates 10x the config's.

``python -m exprbench.benchmarks.gate.gate_study --baseline results/gate/report/baseline.json --out DIR`` runs the
four cases (``--only`` picks some) and writes ``DIR/study.json`` and ``DIR/study.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import torch

from exprbench.core.io import write_json, write_text

from exprbench.benchmarks.gate.regress import compare
from exprbench.benchmarks.gate.tolerances import parse_tolerances
from exprbench.benchmarks.runner import run_suite
from exprbench.benchmarks.gate.verdicts import verdict
from exprbench.benchmarks.suite import Suite, load_suite

SUITE = "gate"
# The recipe's regress options (docs/gate.md; tests/benchmarks/test_gate_study.py checks the page shows them).
REGRESS_OPTIONS = ["--tolerance", "2sd", "--tolerance-floor", "5%"]


@contextlib.contextmanager
def frozen_g(suite: Suite) -> Iterator[Suite]:
    """G's optimizer runs with learning rate 0 in every model built inside (G keeps its initial weights)."""
    from exprbench.runs import harness

    build = harness.build_model

    def build_frozen(*args, **kwargs):
        model = build(*args, **kwargs)
        for group in model.optimizers["G"].param_groups:
            group["lr"] = 0.0
        return model

    with mock.patch.object(harness, "build_model", build_frozen):
        yield suite


@contextlib.contextmanager
def shuffled_labels(suite: Suite) -> Iterator[Suite]:
    """Every training batch's labels are permuted among its images before the model sees them (a fixed
    generator, seed 0): images arrive with other images' labels."""
    from exprbench.runs import harness

    make_batch, gen = harness.Batch, torch.Generator().manual_seed(0)

    def shuffled_batch(x, c, **kwargs):
        return make_batch(x, c[torch.randperm(len(c), generator=gen).to(c.device)], **kwargs)

    with mock.patch.object(harness, "Batch", shuffled_batch):
        yield suite


@contextlib.contextmanager
def lr_x10(suite: Suite) -> Iterator[Suite]:
    """Every grid point's ``model.lr_g`` and ``model.lr_d`` set to 10x its resolved config's."""
    grid = []
    for p in suite.grid:
        model_cfg = suite.run_config(p).model_cfg
        grid.append(dataclasses.replace(p, overrides=(*p.overrides, f"model.lr_g={10 * model_cfg.lr_g!r}",
                                                      f"model.lr_d={10 * model_cfg.lr_d!r}")))
    yield dataclasses.replace(suite, grid=grid)


@contextlib.contextmanager
def unchanged(suite: Suite) -> Iterator[Suite]:
    """No change: the recipe on the code as it is."""
    yield suite


CASES: dict[str, Callable[[Suite], contextlib.AbstractContextManager[Suite]]] = {
    "unchanged": unchanged, "frozen_g": frozen_g, "shuffled_labels": shuffled_labels, "lr_x10": lr_x10}
EXPECTED = {"unchanged": 0, "frozen_g": 1, "shuffled_labels": 1, "lr_x10": 1}


def bench_case(case: str, out: Path, data: str | None, seed: int = 0) -> float:
    """Bench the gate suite's ``seed`` under ``case`` into ``out`` (a finished run is kept, as ``bench`` does);
    returns the grid point's train + evaluate wall seconds from its ``record.json``.
    Raises: UserError from the suite or the run (a bad data path)."""
    with CASES[case](load_suite(SUITE)) as suite:
        records = run_suite(suite, out, seeds=[seed], data_path=data, progress=False)
    return float(sum(r.get("session_wall_s") or 0.0 for r in records))


def compare_case(case: str, out: Path, baseline: dict, seconds: float) -> dict:
    """``regress`` of the case's results in ``out`` against ``baseline`` with the recipe's options: ``{case,
    exit_code, expected_exit_code, summary, rows, bench_seconds, regress_options}``, rows as
    :func:`~.regress.compare` gives them (the suite's metrics: realism FID and acc_gen)."""
    tolerances = parse_tolerances(REGRESS_OPTIONS[1::4], REGRESS_OPTIONS[3::4])
    v = verdict(compare(out, baseline, tolerances))
    return {"case": case, "exit_code": v.code, "expected_exit_code": EXPECTED[case], "summary": v.summary(),
            "rows": v.rows, "bench_seconds": round(seconds, 1), "regress_options": REGRESS_OPTIONS}


def to_markdown(cases: list[dict], hardware: str) -> str:
    """The study as a Markdown page: one table row per case and metric."""
    lines = ["# The regression gate on unchanged code and on three planted regressions", "",
             f"Recipe: `exprbench bench {SUITE} --seed 0` then `exprbench regress ... {' '.join(REGRESS_OPTIONS)}` "
             f"against `results/gate/report/baseline.json` (3 seeds). Hardware: {hardware}.", "",
             "| case | metric | baseline (mean ± sd) | current | allowance | verdict | gate exit (expected) | bench s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in cases:
        for r in c["rows"]:
            cur = "—" if r["current"] is None else f"{r['current']:.4g}"
            lines.append(f"| {c['case']} | {r['metric']} | {r['baseline']:.4g} ± {r['baseline_std'] or 0:.2g} | {cur} "
                         f"| {r['allowed']:.3g} ({r['tolerance']}) | {r['verdict']} | {c['exit_code']} "
                         f"({c['expected_exit_code']}) | {c['bench_seconds']:.0f} |")
    lines += ["", "Summary lines:", ""] + [f"- {c['case']}: `{c['summary']}`" for c in cases]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI: run the cases, write ``study.json`` and ``study.md``; exit 0 when every case gave its expected
    gate exit code, else 1."""
    ap = argparse.ArgumentParser(prog="python -m exprbench.benchmarks.gate.gate_study", description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, required=True, help="the gate suite's baseline.json")
    ap.add_argument("--out", type=Path, required=True, help="folder for the cases' results and the study files")
    ap.add_argument("--data", default=None, help="FER2013 path (default $EXPRBENCH_DATA)")
    ap.add_argument("--only", action="append", choices=sorted(CASES), help="run only these cases")
    args = ap.parse_args(argv)
    from exprbench.benchmarks.gate.baseline import load_baseline

    seconds = {}
    for case in args.only or list(CASES):  # every case's runs first: the baseline may be made meanwhile
        seconds[case] = bench_case(case, args.out / case, args.data)
        print(f"{case}: benched in {seconds[case]:.0f} s", flush=True)
    baseline = load_baseline(args.baseline)
    cases = [compare_case(case, args.out / case, baseline, s) for case, s in seconds.items()]
    for c in cases:
        print(f"{c['case']}: exit {c['exit_code']} (expected {c['expected_exit_code']}), {c['summary']}", flush=True)
    hardware = f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    write_json(args.out / "study.json", {"hardware": hardware, "regress_options": REGRESS_OPTIONS, "cases": cases})
    write_text(args.out / "study.md", to_markdown(cases, hardware))
    return int(any(c["exit_code"] != c["expected_exit_code"] for c in cases))


if __name__ == "__main__":
    sys.exit(main())
