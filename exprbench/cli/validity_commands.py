"""``exprbench metrics validate``: the metric validity study (:mod:`exprbench.metrics.validity.study`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Tuple

import typer
from rich.console import Console
from rich.table import Table

from exprbench.core.errors import UserError
from exprbench.cli.app import DEVICE_HELP, command
from exprbench.cli.eval_commands import metrics_app

console = Console(width=None if sys.stdout.isatty() else 160)  # piped: wide enough for whole names


@command("validate", metrics_app)
def validate_cmd(
    out: Path = typer.Option(Path("results") / "validity", "--out", help="Folder of validity.json, validity.csv, criteria.md and the figures."),
    only: List[str] = typer.Option([], "--only", help="Study only these protocols (repeatable or comma-separated; registered names, e.g. fid10k_train)."),
    quick: bool = typer.Option(False, "--quick", help="Strengths 0, 2, 4 only, a small N, no CAS: a check that the study runs."),
    n: Optional[int] = typer.Option(None, "--n", min=2, help="Scored images per sample-based protocol (default 3000; --quick: 500)."),
    cas: bool = typer.Option(False, "--cas", help="Also study CAS (trains a classifier per condition, about 2 min each on CPU) for mode dropping, progress and --pair."),
    ci_draws: Optional[int] = typer.Option(None, "--ci-draws", min=0, help="Bootstrap draws of the intervals that set the monotone tolerance (default 50; --quick: 0)."),
    progress: List[Path] = typer.Option([], "--progress", help="A run directory with several checkpoints/step_*.pt, or several run directories (repeat the option): checkpoints ranked in training order."),
    pair: Optional[Tuple[Path, Path]] = typer.Option(None, "--pair", help="UNTRAINED_RUN FACES_RUN: dynamic range of the distances (untrained >= 3 x faces)."),
    update: bool = typer.Option(False, "--update", help="Add to the study already in --out: the protocols studied now replace theirs, the others' records are kept, the table is judged again. Needs the study's --n, --ci-draws, --quick, data and evaluator weights; --progress and --pair as the study's, or left out (those cells then read n.a.)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    data: Optional[str] = typer.Option(None, "--data", help="FER2013 zip, csv or folder (default: $EXPRBENCH_DATA)."),
    evaluator_weights: Optional[Path] = typer.Option(None, "--evaluator-weights", help="Evaluator weights (default: the shipped ones)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="torch-fidelity Inception-V3 weights (.pth)."),
) -> None:
    """Metric validity study: how each fidelity, coverage and class-aware protocol responds to controlled changes.

    Degraded, mode-dropped and memorised real PrivateTest faces, training progress (--progress) and an untrained
    vs a trained run (--pair); prints the pass/fail table and writes it, every raw value and the figures to --out.
    With --update, the protocols studied now are folded into the study already in --out (e.g. ``--only cas --cas``).
    """
    from exprbench.core.io import check_writable_dir
    from exprbench.metrics.validity.study import QUICK_N, STUDY_N, StudyOptions, checkpoint_points, run_study
    from exprbench.metrics.validity.study_files import CRITERIA_COLUMNS, criteria_frame, notes, write_study
    from exprbench.metrics.validity.update import check_update, load_study, merge_study

    dest = check_writable_dir(out, "--out")
    if dest.exists() and (dest / "config.json").exists():
        raise UserError(f"--out {dest}: a training run directory; the study goes to a folder of its own")
    stored = load_study(dest) if update else None
    names = [m.strip() for item in only for m in item.split(",") if m.strip()]
    checkpoint_points(progress, pair)  # bad runs before any work
    err = Console(stderr=True)
    for given, flag in ((progress, "--progress"), (pair, "--pair")):
        if update and not given and stored["study"].get(flag[2:]):
            err.print(f"warning: --update without {flag}: the protocols studied now get no {flag[2:]} records "
                      "(their cells read n.a.)", highlight=False, soft_wrap=True)
    opts = StudyOptions(n=n or (QUICK_N if quick else STUDY_N), quick=quick, only=names, cas=cas,
                        ci_draws=(0 if quick else 50) if ci_draws is None else ci_draws, progress=list(progress),
                        pair=tuple(pair) if pair else None, device=device, data=data,
                        evaluator_weights=str(evaluator_weights) if evaluator_weights else None,
                        inception_weights=str(inception_weights) if inception_weights else None,
                        log=lambda s: err.print(s, highlight=False, soft_wrap=True),
                        check=(lambda meta: check_update(stored, meta, dest)) if update else None)
    new = run_study(opts)
    result = merge_study(stored, new, "exprbench " + " ".join(sys.argv[1:])) if update else new
    files = write_study(result, dest)
    t = Table("protocol", "feature space", *CRITERIA_COLUMNS, title="metric validity (pass / fail / n.a.)")
    for row in result["verdicts"]:
        t.add_row(row["protocol"], row["feature space"], *[row[c] for c in CRITERIA_COLUMNS])
    console.print(t)
    for row in criteria_frame(result).itertuples(index=False):  # the measured statistic of each criterion
        console.print(f"{row[0]} ({row[1]}): " + "; ".join(f"{c} {v}" for c, v in zip(CRITERIA_COLUMNS, row[2:])),
                      highlight=False, soft_wrap=True)
    for line in notes(result):
        console.print(f"- {line}", highlight=False, soft_wrap=True)
    what = f"updated the study with {', '.join(c['protocol'] for c in new['criteria'])}: " if update else ""
    console.print(f"{what}wrote {', '.join(files)} to {dest} ({new['study']['wall_s']:.0f} s)", highlight=False,
                  soft_wrap=True)
