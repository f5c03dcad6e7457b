"""Verbs of the benchmark layer: ``exprbench bench``, ``report``, ``regress``, ``publish``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from exprbench.core.errors import UserError
from exprbench.cli.app import command


def _suite_names() -> list[str]:
    """The suites shipped with exprbench (benchmarks/suites/*.toml, read from the package, so the help lists all)."""
    from importlib.resources import files

    return sorted(p.name[: -len(".toml")] for p in (files("exprbench.benchmarks") / "suites").iterdir()
                  if p.name.endswith(".toml"))


# wide enough for the regress table in CI logs (rich otherwise truncates cells at 80 columns)
console = Console(width=None if sys.stdout.isatty() else 160)


@command("bench")
def bench(
    suite: str = typer.Argument(..., help=f"Suite name ({', '.join(_suite_names())}) or a .toml path."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results directory (default results/<suite>)."),
    only: List[str] = typer.Option([], "--only", help="Run only this model's grid points (repeatable)."),
    seed: List[int] = typer.Option([], "--seed", help="Run only this seed's grid points (repeatable)."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the suite's device: auto, cpu, cuda."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (default $EXPRBENCH_DATA, data/fer2013.*)."),
    executor: str = typer.Option("local", "--executor", help="local (this process) or ray (one task per grid point)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto or HOST:PORT (default: $RAY_ADDRESS, else a local one)."),
    gpus_per_run: Optional[float] = typer.Option(None, "--gpus-per-run", help="Ray: GPUs per grid point (> 0: device cuda)."),
    cpus_per_run: Optional[float] = typer.Option(None, "--cpus-per-run", help="Ray: CPUs per grid point (default 1)."),
    max_retries: int = typer.Option(2, "--max-retries", help="Ray: restarts of a point whose worker died, then failed."),
) -> None:
    """Run a benchmark suite: train, evaluate and record every grid point (resumable, idempotent).

    Grid points are claimed before they start, so several runners (local or Ray) may share one --out.
    """
    from exprbench.benchmarks.executors import make_executor
    from exprbench.benchmarks.runner import run_suite, summary_line
    from exprbench.benchmarks.suite import load_suite

    s = load_suite(suite)
    out_dir = out or Path("results") / s.name
    ex = make_executor(executor, address, gpus_per_run, cpus_per_run, max_retries)
    records = run_suite(s, out_dir, only=only, device=device, data_path=data, seeds=seed, executor=ex)
    console.print(f"suite {s.name}: {summary_line(records)} -> {out_dir}/runs")
    if any(r and r.get("status") == "failed" for r in records):
        raise typer.Exit(1)


@command("report")
def report(
    results_dir: Path = typer.Argument(..., help="A results directory (with runs/) or a run directory."),
    more: List[Path] = typer.Argument(None, help="More run or results directories to put beside them.", show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default RESULTS_DIR/report)."),
    metrics: List[str] = typer.Option([], "--metrics", help="Only these metric columns (protocol, family or "
                                      "column name; repeatable or comma-separated)."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Tables and baseline only."),
    no_html: bool = typer.Option(False, "--no-html", help="Do not write index.html."),
    link_images: bool = typer.Option(False, "--link-images", help="index.html links figures/*.png instead of embedding them."),
    ignore_stored: bool = typer.Option(False, "--ignore-stored", help="Do not keep rows of an earlier leaderboard.csv "
                                       "whose run files are not here."),
) -> None:
    """Write leaderboards (md, csv, tex), baseline.json, figures and index.html to RESULTS_DIR/report/.

    Every directory with an eval.json is an entry (bench, train+evaluate or --images runs)."""
    from exprbench.benchmarks.report.build import write_report

    folder = write_report(results_dir, figures=not no_figures, extra=more or [], out=out, metrics=metrics or None,
                          html=not no_html, embed_images=not link_images, use_stored=not ignore_stored)
    console.print((folder / "leaderboard.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report written to {folder}" + ("" if no_html else f" (open {folder / 'index.html'})"),
                  markup=False, highlight=False)


@command("regress")
def regress(
    results_dir: Path = typer.Argument(..., help="A results directory (with runs/)."),
    baseline: Path = typer.Option(..., "--baseline", help="Baseline JSON written by `exprbench report`."),
    tolerance: List[str] = typer.Option(
        [], "--tolerance", help="Allowed worsening: 0.1, 10% (of |mean|) or 2sd (baseline seed std); "
        "METRIC=... for one metric (repeatable). Default 10%."),
    tolerance_floor: List[str] = typer.Option(
        [], "--tolerance-floor", help="Least allowance, relative (10%): max(tolerance, floor); the fallback of "
        "sd tolerances where the baseline std is 0 or missing. METRIC=... for one metric (repeatable)."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Missing models/metrics do not fail; they are hidden and not counted."),
    fmt: str = typer.Option("text", "--format", help="Report format: text (table), json, junit (XML), markdown."),
    output: Optional[Path] = typer.Option(
        None, "--output", help="Write the report in --format to this file (atomically); the terminal shows the text."),
) -> None:
    """Exit 1 when a metric is worse than the baseline by more than its tolerance (or is missing), else 0."""
    from exprbench.core.errors import UserError
    from exprbench.core.io import write_text

    from exprbench.benchmarks.gate.verdicts import RENDER, check_format, print_text, verdict
    from exprbench.benchmarks.gate.regress import check_output, compare
    from exprbench.benchmarks.gate.baseline import load_baseline
    from exprbench.benchmarks.gate.tolerances import parse_tolerances

    fmt = check_format(fmt)
    if output is not None:
        check_output(output, baseline)
    tols = parse_tolerances(tolerance, tolerance_floor)
    rows = compare(results_dir, load_baseline(baseline), tols)
    v = verdict(rows, allow_missing, baseline=str(baseline), results_dir=str(results_dir), tolerance=tols.describe())
    if output is not None:
        try:
            write_text(output, RENDER[fmt](v))
        except OSError as e:
            raise UserError(f"--output {output}: cannot write ({e.strerror or e})") from None
        print_text(v, console, extra=[f"{fmt} report written to {output}"])
    elif fmt == "text":
        print_text(v, console)
    else:
        sys.stdout.write(RENDER[fmt](v))
        sys.stdout.flush()
    raise typer.Exit(v.code)


@command("publish")
def publish(
    results_dir: Path = typer.Argument(..., help="A suite's results directory (with runs/)."),
    to: Path = typer.Option(..., "--to", help="Where the committed form goes (e.g. results/cpu)."),
    dtype: str = typer.Option("float16", "--dtype", help="How weights are stored: float16 (half the bytes) or float32."),
) -> None:
    """Write the committed form of a suite's completed runs: light files, the final sample sheet and
    safetensors weights per run, plus a sha256 manifest (no checkpoints, no TensorBoard logs)."""
    from exprbench.benchmarks.publish import publish as do_publish
    from exprbench.runs.weights import STORED_DTYPES

    if dtype not in STORED_DTYPES:
        raise UserError(f"--dtype {dtype!r}: use one of {', '.join(STORED_DTYPES)}")
    for run in do_publish(results_dir, to, dtype):
        console.print(f"published {run}")
    console.print(f"manifest: {to / 'MANIFEST.sha256'}")
