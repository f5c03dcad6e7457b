"""Reading a report's inputs: run directories (``eval.json``, ``record.json``, ``status.json``,
``config.json``, ``source.json``, ``curve.jsonl``; each read by :func:`.run_entry.read_entry`) and an
earlier report's ``leaderboard.csv``.

Only result files are read (no model, no dataset). An entry is every directory under
``RESULTS_DIR/runs/`` (and every run directory given directly) that holds an ``eval.json`` or a
bench ``record.json``; its ``source`` says how it was made (``bench``, ``train+evaluate``,
``images``). The real-data reference values are read from ``eval.json``'s ``references`` (the
former name ``floors`` is read as well).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from exprbench.core.errors import UserError

from exprbench.benchmarks.report.columns import column_order, kind_columns
from exprbench.benchmarks.report.run_entry import CI_HI, CI_LO, REF_COUNT, read_entry

KIND_COLUMNS = tuple(k[1] for k in kind_columns())  # text columns filled from boolean details
RUN_COLUMNS = {"run", "model", "config", "seed", "status", "device", "device_name", "steps", "train_seconds",
               "img_per_s", "epochs", "images", "gflop_per_img", "source", "path", "classes", "eval_seconds", "git_commit", *KIND_COLUMNS}
REFERENCE_LABEL = "real data (reference)"
LO, HI = "|lo", "|hi"  # a row's interval of a column (aggregate): see :func:`row_interval`
SOURCES = ("bench", "train+evaluate", "images")


def references_note(ev: dict) -> str | None:
    """The one-line description of the reference values (``references_note``, formerly ``floors_note``)."""
    return ev.get("references_note") or ev.get("floors_note")


def entry_dirs(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The run directories to report: each given path that is itself a run directory (it holds
    ``eval.json``, ``record.json`` or ``config.json``), else the run directories under its ``runs/``.

    Raises:
        UserError: a path that is neither (naming it).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if any((p / f).is_file() for f in ("eval.json", "record.json", "config.json")):
            out.append(p)
        elif (p / "runs").is_dir():
            out += sorted(d for d in (p / "runs").iterdir() if d.is_dir() and not d.name.startswith("."))
        else:
            raise UserError(f"{p} has no runs/ directory and is no run directory (no eval.json) "
                            f"(run `exprbench bench SUITE --out {p}` or `exprbench evaluate` first)")
    return out


def collect(results_dir: str | Path | Sequence[str | Path]) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Read every entry of a results directory (or of several run/results directories).

    Args:
        results_dir: a results directory (with ``runs/``), a run directory, or a list of them.

    Returns:
        ``(runs, references, curves)``: one row per entry (run, model, config, seed, status, source,
        path, device, cost columns and one column per protocol value or derived detail), the real-data
        reference values ``{column: value}``, and the periodic-metric curves (model, config, seed,
        step, metric, value). ``status`` is the bench record's status for bench runs, else ``done``
        when there is an ``eval.json`` (``partial`` without one). A hand-edited eval.json whose ``metrics``
        is not an object leaves its run out, a metric whose value is not a finite number leaves that value
        out: one warning line on stderr each, naming the file (and key).

    Raises:
        UserError: no ``runs/`` directory, no entry, or a malformed result file (naming it).
    """
    rows, refs, curves = [], {}, []
    for run in entry_dirs(results_dir):
        entry = read_entry(run)
        if entry is None:
            continue
        row, run_refs, curve = entry
        for name, value in run_refs.items():  # the first run that has a reference value gives it
            refs.setdefault(name, value)
        rows.append(row)
        curves += curve
    if not rows:
        where = results_dir if isinstance(results_dir, (str, Path)) else ", ".join(map(str, results_dir))
        raise UserError(f"{where}: no run directory with an eval.json (or a bench record.json) in it")
    return pd.DataFrame(rows), refs, pd.DataFrame(curves)


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The metric columns of a runs (or aggregate) frame, in leaderboard order."""
    if any(str(c).endswith("|mean") for c in runs.columns):  # an aggregate: <metric>|mean columns
        names = {c[: -len("|mean")] for c in runs.columns if str(c).endswith("|mean")}
    else:
        names = {c for c in runs.columns if c not in RUN_COLUMNS and "|" not in str(c)}
    return sorted(names, key=column_order)


def row_interval(values: pd.Series, lo: pd.Series | None, hi: pd.Series | None) -> tuple[float, float]:
    """The 95% interval of a leaderboard row (a model/config) in one column, NaN where there is none.

    One seed: its bootstrap ``ci95`` over samples. Several: the wider of (the mean of the seeds' ci95 bounds) and
    the seed mean ± t(0.975, n-1) sd / sqrt(n) (Student's t over seeds); the t interval alone when a seed has no
    ci95. No interval: one seed without ci95 (results written before intervals existed).

    Args:
        values: the seeds' values (NaN-free); lo, hi: the seeds' ci95 bounds (same index; NaN where none).
    """
    n = len(values)
    boot = None
    if n and lo is not None and hi is not None:
        l, h = lo.loc[values.index], hi.loc[values.index]
        if l.notna().all() and h.notna().all():
            boot = (float(l.mean()), float(h.mean()))
    if n < 2:
        return boot if boot is not None else (math.nan, math.nan)
    from scipy.stats import t

    m, half = float(values.mean()), float(t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
    student = (m - half, m + half)
    if boot is None or student[1] - student[0] >= boot[1] - boot[0]:
        return student
    return boot


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1) and seed count per (model, config) over the reportable entries.

    Reportable: status ``done`` (a bench record says done, or an ``eval.json`` without a record).

    Returns a frame with one row per (model, config), columns ``model``, ``config``, ``seeds``,
    ``<metric>|mean``, ``<metric>|std``, ``<metric>|n``, the row's interval ``<metric>|lo``, ``<metric>|hi``
    (:func:`row_interval`, NaN where none) and the cost columns ``train_hours``,
    ``device_type``, ``img_per_s``, ``images``, ``epochs``, ``gflop_per_img`` (:func:`.compute.run_budget`), the text columns of :func:`.columns.kind_columns`, ``source`` (sources joined by ", "), ``classes``
    and ``hardware`` (device names joined by "; ").

    Raises:
        UserError: no reportable entry.
    """
    done = runs[runs["status"] == "done"]
    metrics = metric_columns(runs)
    out = []
    for (model, config), g in done.groupby(["model", "config"], sort=True):
        row = {"model": model, "config": config, "seeds": int(len(g))}
        for m in metrics:
            vals = g[m].dropna() if m in g else pd.Series(dtype=float)
            row[f"{m}|mean"] = float(vals.mean()) if len(vals) else math.nan
            row[f"{m}|std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            row[f"{m}|n"] = int(len(vals))
            lo, hi = row_interval(vals, g[f"{m}{CI_LO}"] if f"{m}{CI_LO}" in g else None,
                                  g[f"{m}{CI_HI}"] if f"{m}{CI_HI}" in g else None)
            row[f"{m}{LO}"], row[f"{m}{HI}"] = lo, hi
        secs = pd.to_numeric(g["train_seconds"], errors="coerce")
        row["train_hours"] = float(secs.mean()) / 3600 if secs.notna().any() else math.nan
        row["device_type"] = "GPU" if g["device"].astype(str).str.startswith("cuda").any() else (
            "CPU" if g["device"].astype(str).str.startswith("cpu").any() else "")
        ips = pd.to_numeric(g["img_per_s"], errors="coerce")
        row["img_per_s"] = float(ips.mean()) if ips.notna().any() else math.nan
        for col in ("images", "epochs", "gflop_per_img"):  # the training budget (the cost table)
            v = pd.to_numeric(g[col], errors="coerce") if col in g else pd.Series(dtype=float)
            row[col] = float(v.mean()) if v.notna().any() else math.nan
        for column in KIND_COLUMNS:
            kinds = g[column].dropna().unique() if column in g else []
            row[column] = kinds[0] if len(kinds) else ""
        row["source"] = ", ".join(s for s in SOURCES if s in set(g["source"]))
        classes = pd.to_numeric(g["classes"], errors="coerce").dropna() if "classes" in g else pd.Series(dtype=float)
        row["classes"] = int(classes.iloc[0]) if len(classes) else math.nan
        row["hardware"] = "; ".join(sorted(set(g["device_name"].dropna().astype(str)) - {""}))
        out.append(row)
    if not out:
        raise UserError("no reportable run: none has an eval.json or a bench record.json with status 'done'")
    return pd.DataFrame(out)


def _text(col: pd.Series) -> pd.Series:
    """A column as strings, missing values as ""."""
    return col.astype(object).where(col.notna(), "").astype(str)


def read_stored(csv_path: Path) -> tuple[pd.DataFrame, dict]:
    """The aggregate and reference values of an earlier report's ``leaderboard.csv``.

    Returns ``(agg, references)`` in the shape of :func:`aggregate` (empty frame when there is none).

    Raises:
        UserError: a file that is not a leaderboard.csv.
    """
    if not csv_path.is_file():
        return pd.DataFrame(), {}
    try:
        df = pd.read_csv(csv_path, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{csv_path}: not a leaderboard.csv ({e})") from None
    if not {"row", "model", "config"} <= set(df.columns):
        raise UserError(f"{csv_path}: not a leaderboard.csv (no row/model/config columns)")
    ref = df[df["row"].isin(["reference", "floor"])]
    refs = {}
    if len(ref):
        r = ref.iloc[0]
        refs = {c.split("|")[0]: float(r[c]) for c in df.columns if c.endswith("|mean") and pd.notna(r[c])}
        refs.update({c: int(r[c]) for c in df.columns if c.endswith(REF_COUNT) and pd.notna(r[c])})  # real images
    agg = df[df["row"] == "model"].drop(columns=["row"]).reset_index(drop=True)
    agg["config"] = _text(agg["config"])
    agg["model"] = agg["model"].astype(str)
    for c in (*KIND_COLUMNS, "device_type", "hardware"):
        agg[c] = _text(agg[c]) if c in agg else ""
    if "source" not in agg:
        agg["source"] = "bench"
    agg["source"] = _text(agg["source"])
    for c in agg.columns:
        if c.endswith("|n") or c == "seeds":
            agg[c] = pd.to_numeric(agg[c], errors="coerce").fillna(0).astype(int)
    return agg, refs



@dataclass
class Report:
    """What :func:`.report.build_report` read and computed (input of the writers, figures and page).

    Attributes:
        results_dir, out: the results directory and the report folder.
        suite, suite_info: the suite name and its ``suite.json``.
        runs, agg, curves: :func:`collect` / :func:`aggregate` frames (empty for stored rows only).
        references: real-data reference values ``{column: value}`` (runs first, then stored rows).
        tables: the :class:`.tables.Table` s; note: the notes paragraph(s) of ``leaderboard.md``.
        stored: ``model/config`` of the rows kept from an earlier ``leaderboard.csv``.
        run_references: the reference values read from run directories alone.
        skipped: ``(figure, why)`` for each figure without its input; written: figure names written.
        stored_dir: the folder of the earlier report the stored rows come from (None: none).
    """

    results_dir: Path
    out: Path
    suite: str
    suite_info: dict
    runs: pd.DataFrame
    agg: pd.DataFrame
    references: dict
    curves: pd.DataFrame
    tables: list
    note: str
    stored: list[str]
    run_references: dict = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    stored_dir: Path | None = None
