"""CLI commands of the benchmark layer: ``exprbench bench``, ``exprbench report``, ``exprbench regress``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

# wide enough for the regress table in CI logs (rich otherwise truncates cells at 80 columns)
console = Console(width=None if sys.stdout.isatty() else 160)


def bench(
    suite: str = typer.Argument(..., help="Suite name (smoke, quick, full) or a .toml path."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results directory (default results/<suite>)."),
    only: List[str] = typer.Option([], "--only", help="Run only this model's grid points (repeatable)."),
    seed: List[int] = typer.Option([], "--seed", help="Run only this seed's grid points (repeatable)."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the suite's device: auto, cpu, cuda."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (default $EXPRBENCH_DATA, data/fer2013.*)."),
) -> None:
    """Run a benchmark suite: train, evaluate and record every grid point (resumable, idempotent)."""
    from .runner import run_suite, summary_line
    from .suite import load_suite

    s = load_suite(suite)
    out_dir = out or Path("results") / s.name
    records = run_suite(s, out_dir, only=only, device=device, data_path=data, seeds=seed)
    console.print(f"suite {s.name}: {summary_line(records)} -> {out_dir}/runs")
    if any(r and r.get("status") == "failed" for r in records):
        raise typer.Exit(1)


def report(
    results_dir: Path = typer.Argument(..., help="A results directory (with runs/)."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Tables and baseline only."),
) -> None:
    """Write leaderboard tables (md, csv, tex), baseline.json and figures to RESULTS_DIR/report/."""
    from .report import write_report

    out = write_report(results_dir, figures=not no_figures)
    console.print((out / "leaderboard.md").read_text())
    console.print(f"report written to {out}")


def regress(
    results_dir: Path = typer.Argument(..., help="A results directory (with runs/)."),
    baseline: Path = typer.Option(..., "--baseline", help="Baseline JSON written by `exprbench report`."),
    tolerance: List[str] = typer.Option([], "--tolerance", help="0.1, 10%, 2sd, or METRIC=... (repeatable)."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Missing models/metrics do not fail."),
) -> None:
    """Exit 1 when a metric is worse than the baseline by more than its tolerance (or is missing)."""
    from .regress import compare, gate, load_baseline, parse_tolerances

    default, per = parse_tolerances(tolerance)
    rows = compare(results_dir, load_baseline(baseline), default, per)
    table = Table("model", "metric", "baseline", "current", "delta", "allowed", "tolerance", "verdict")
    style = {"regressed": "red", "missing": "yellow", "improved": "green", "ok": "", "new": "cyan"}

    def f(v):
        return "" if v is None else f"{v:.4g}"

    for r in rows:
        table.add_row(r["model"], r["metric"], f(r["baseline"]), f(r["current"]), f(r["delta"]), f(r["allowed"]),
                      r["tolerance"], f"[{style[r['verdict']]}]{r['verdict']}[/]" if style[r["verdict"]] else r["verdict"])
    console.print(table)
    code = gate(rows, allow_missing)
    n_bad = sum(r["verdict"] in ("regressed", "missing") for r in rows)
    console.print("[red]quality regression[/red]" if code else "no regression", f"({n_bad} of {len(rows)} rows flagged)")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the benchmark commands to the main ``exprbench`` app."""
    app.command("bench")(bench)
    app.command("report")(report)
    app.command("regress")(regress)
