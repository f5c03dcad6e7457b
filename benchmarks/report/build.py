"""``exprbench report RESULTS_DIR [RUN_DIR...]``: leaderboards, paper figures, an HTML page, a baseline.

Reads result files only: no model plugin, no dataset. The entries are every directory under
``RESULTS_DIR/runs/`` (and every run directory given directly) that holds an ``eval.json`` or a bench
``record.json``, however it was made; the ``source`` column says how (see :mod:`.results`):

* ``bench``: ``exprbench bench`` (``record.json``; its ``status`` decides whether it is reported);
* ``train+evaluate``: ``exprbench train`` then ``exprbench evaluate`` (``eval.json``, no record);
* ``images``: ``exprbench evaluate --images DIR --out OUTDIR`` (``eval.json`` and ``source.json``;
  the model name is ``source.json``'s ``name``, else the directory name).

Entries of an earlier report (``RESULTS_DIR/report/leaderboard.csv``, or ``--out``'s) whose run
files are not here (results committed without their git-ignored ``runs/``) are kept, and the report
says which.

It writes ``RESULTS_DIR/report/`` (or ``--out``):

* ``leaderboard.md``, ``leaderboard.tex``, ``tables/<name>.{md,tex}``: one table per leaderboard
  (see :mod:`.tables`); ``--metrics`` keeps only some columns;
* ``leaderboard.csv``: every number of the tables (mean, std, n per metric, cost, source);
* ``baseline.json``: the same numbers for ``exprbench regress`` (``references``: the real-data values);
* ``figures/``: PNG and PDF composed from the runs' figure inputs (see :mod:`.figures`); a figure
  whose input is absent gets a placeholder panel and a line in ``leaderboard.md`` and the page;
* ``index.html``: one self-contained page (see :mod:`.html`).

Tables and baseline depend only on the result files: running the report twice gives identical tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from exprbench.core.errors import UserError
from exprbench.core.io import read_json, write_json, write_text

from exprbench.benchmarks.gate.baseline import baseline_references
from exprbench.benchmarks.report.results import (KIND_COLUMNS, REFERENCE_LABEL, Report, aggregate, collect,
    metric_columns, read_stored, _text)
from exprbench.benchmarks.report.run_entry import REF_COUNT
from exprbench.benchmarks.report.sweeps import sweeps_markdown
from exprbench.benchmarks.report.latex import TEX_HEADER, to_latex
from exprbench.benchmarks.report.tables import baseline_from, leaderboard_tables, notes_markdown, to_markdown

def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]


def _stored_dir(results_dir: Path, out: Path) -> Path | None:
    """Where an earlier report's ``leaderboard.csv`` is: the report folder, else ``RESULTS_DIR/report``."""
    for d in (out, results_dir / "report"):
        if (d / "leaderboard.csv").is_file():
            return d
    return None


def build_report(results_dir: str | Path, extra: Sequence[str | Path] = (), out: str | Path | None = None,
                 metrics: Sequence[str] | None = None, use_stored: bool = True) -> Report:
    """Read the entries and compute tables (nothing written).

    Args:
        results_dir: the results directory (its ``runs/``; or one run directory).
        extra: more run or results directories to put beside them.
        out: the report folder (default ``results_dir/report``).
        metrics: keep only these metric columns in the tables (None = all).
        use_stored: keep the rows of an earlier ``leaderboard.csv`` (``out``'s, else ``results_dir/report``'s)
            whose run files are not here.

    Raises:
        UserError: nothing to report, a malformed result file, or an unknown metric name.
    """
    results_dir = Path(results_dir)
    out = Path(out) if out else results_dir / "report"
    stored_dir = _stored_dir(results_dir, out) if use_stored else None
    stored_agg, stored_refs = read_stored(stored_dir / "leaderboard.csv") if stored_dir else (pd.DataFrame(), {})
    runs, refs, curves, agg = _read_runs(results_dir, extra, stored_agg)
    run_refs = dict(refs)
    agg, stored = _add_stored_rows(agg, refs, stored_agg, stored_refs)
    if agg.empty:
        raise UserError(f"{results_dir}: nothing to report (no run with an eval.json)")
    agg = _tidy_columns(agg)
    suite_info = read_json(results_dir / "suite.json") or {}
    suite = str(suite_info.get("suite", results_dir.name))
    tables = leaderboard_tables(agg, refs, metrics)
    note = _report_note(suite, suite_info, runs, agg, stored, stored_dir)
    return Report(results_dir, out, suite, suite_info, runs, agg, refs, curves, tables, note, stored, run_refs,
                  stored_dir=stored_dir if stored else None)


def _read_runs(results_dir: Path, extra: Sequence[str | Path],
               stored_agg: pd.DataFrame) -> tuple[pd.DataFrame, dict, pd.DataFrame, pd.DataFrame]:
    """``(runs, references, curves, agg)`` of the run directories (empty where only stored rows are reported)."""
    paths = [p for p in [results_dir, *map(Path, extra)]
             if not (p == results_dir and not stored_agg.empty and not (p / "runs").is_dir()
                     and not (p / "eval.json").is_file())]
    runs, refs, curves = pd.DataFrame(), {}, pd.DataFrame()
    agg = pd.DataFrame()
    if paths:
        try:
            runs, refs, curves = collect(paths)
            agg = aggregate(runs)
        except UserError:
            if stored_agg.empty:
                raise
    return runs, refs, curves, agg


def _add_stored_rows(agg: pd.DataFrame, refs: dict, stored_agg: pd.DataFrame,
                     stored_refs: dict) -> tuple[pd.DataFrame, list[str]]:
    """``(agg, stored)``: the stored rows of models not here appended (and their references added to ``refs``)."""
    if stored_agg.empty:
        return agg, []
    have = set(zip(agg["model"], agg["config"])) if not agg.empty else set()
    keep = stored_agg[[(m, c) not in have for m, c in zip(stored_agg["model"], stored_agg["config"])]]
    stored = [f"{m}/{c}" if c else m for m, c in zip(keep["model"], keep["config"])]
    agg = _concat([agg, keep])
    for k, v in stored_refs.items():
        refs.setdefault(k, v)
    return agg, stored


def _tidy_columns(agg: pd.DataFrame) -> pd.DataFrame:
    """The aggregate with typed count and text columns, in table column order, sorted by model and config."""
    for c in agg.columns:  # columns one side lacked: counts 0, text empty
        if c.endswith("|n") or c == "seeds":
            agg[c] = pd.to_numeric(agg[c], errors="coerce").fillna(0).astype(int)
    for c in ("source", *KIND_COLUMNS, "device_type", "config", "hardware"):
        if c in agg:
            agg[c] = _text(agg[c])
    first = [c for c in ("model", "config", "seeds") if c in agg]
    ordered = first + [f"{m}|{s}" for m in metric_columns(agg) for s in ("mean", "std", "n") if f"{m}|{s}" in agg]
    agg = agg[ordered + [c for c in agg.columns if c not in ordered]]
    return agg.sort_values(["model", "config"], kind="stable").reset_index(drop=True)


def _report_note(suite: str, suite_info: dict, runs: pd.DataFrame, agg: pd.DataFrame, stored: list[str],
                 stored_dir: Path | None) -> str:
    """The notes paragraph(s) of ``leaderboard.md``: what is reported, from where, on what hardware, what is missing."""
    done = runs[runs["status"] == "done"] if not runs.empty else runs
    hw = sorted({h for v in agg["hardware"] for h in str(v).split("; ") if h}) if "hardware" in agg else []
    srcs = sorted(set(agg["source"]) - {""})
    n_seeds = int(agg["seeds"].sum())
    where = (f"{len(done)} run directories here" if len(done) else "no run directory here") + (
        f"; {len(stored)} models kept from an earlier report" if stored else "")
    note = (f"Suite `{suite}`: {n_seeds} reported runs ({where}; sources: {', '.join(srcs) or 'bench'}); mean ± std "
            f"over seeds; hardware: {', '.join(hw) or 'not recorded in the stored rows (see the results notes)'}. "
            f"{REFERENCE_LABEL}: real FER2013 images in place of generated ones.\n\n")
    if stored:
        note += (f"Kept from the earlier `{stored_dir.name}/leaderboard.csv` (their run files are not here): "
                 f"{', '.join(stored)}.\n\n")
    return note + _pending_note(suite_info.get("grid", []), done, n_seeds, stored)


def _pending_note(grid: list, done: pd.DataFrame, n_seeds: int, stored: list[str]) -> str:
    """The line naming the suite's grid points not completed yet ("" when none is missing)."""
    have_runs = set(done["run"]) if not done.empty else set()
    pending = [g for g in grid if g not in have_runs]
    if pending and not stored:
        return f"Not completed yet ({len(pending)} of {len(grid)} grid points): {', '.join(pending)}.\n\n"
    if grid and n_seeds < len(grid):
        return f"Not completed yet: {len(grid) - n_seeds} of the suite's {len(grid)} grid points.\n\n"
    return ""


def _skipped_md(skipped: list[tuple[str, str]]) -> str:
    if not skipped:
        return ""
    return "## Figures without their inputs\n\n" + "".join(f"- {what}: {why}\n" for what, why in skipped)


def write_report(results_dir: str | Path, figures: bool = True, extra: Sequence[str | Path] = (),
                 out: str | Path | None = None, metrics: Sequence[str] | None = None, html: bool = True,
                 embed_images: bool = True, use_stored: bool = True) -> Path:
    """Write tables, baseline, figures (optional) and ``index.html`` (optional); returns the folder.

    Args:
        results_dir, extra, out, metrics, use_stored: see :func:`build_report`.
        figures: write the figures; html: write ``index.html``.
        embed_images: images as data URIs in the page (self-contained), else links into ``figures/``.

    Raises:
        UserError: nothing to report, a malformed result file, or an unknown metric name.
    """
    rep = build_report(results_dir, extra, out, metrics, use_stored)
    out = rep.out
    out.mkdir(parents=True, exist_ok=True)
    if figures:
        from exprbench.benchmarks.report.figures import write_figures

        rep.written, rep.skipped = write_figures(rep, out / "figures")
    md = [rep.note]
    tex = []
    for t in rep.tables:
        body = to_markdown(t.headers, t.rows, t.bold) + ("\n" + notes_markdown(t) if t.notes else "")
        md.append(f"## {t.title}\n\n{body}\n")
        latex = to_latex(t, rep.suite)
        tex.append(latex)
        write_text(out / "tables" / f"{t.name}.md", f"{t.title}\n\n{body}")
        write_text(out / "tables" / f"{t.name}.tex", latex)
    md.append(sweeps_markdown(rep))
    md.append(_skipped_md(rep.skipped))
    write_text(out / "leaderboard.md", "".join(md).rstrip("\n") + "\n")
    write_text(out / "leaderboard.tex", TEX_HEADER + "\n".join(tex))
    csv = rep.agg.copy()
    csv.insert(0, "row", "model")
    ref = {"row": "reference", "model": REFERENCE_LABEL, "config": ""}
    ref.update({f"{m}|mean": v for m, v in rep.references.items() if f"{m}|mean" in csv.columns})
    ref.update({k: v for k, v in rep.references.items() if k.endswith(REF_COUNT) and k in csv.columns})  # counts
    csv = pd.concat([pd.DataFrame([ref]), csv], ignore_index=True)[list(csv.columns)]
    write_text(out / "leaderboard.csv", csv.to_csv(index=False, float_format="%.10g"))
    base = baseline_from(rep.agg, rep.references, rep.suite)
    old = read_json(rep.stored_dir / "baseline.json") if rep.stored_dir else None
    if isinstance(old, dict) and isinstance(old.get("models"), dict):  # stored rows: the earlier exact numbers
        for key in rep.stored:
            key = key if "/" in key else f"{key}/"
            if isinstance(old["models"].get(key), dict):
                base["models"][key] = old["models"][key]
        for k, v in baseline_references(old).items():
            if k in base["references"] and k not in rep.run_references:
                base["references"][k] = v
    write_json(out / "baseline.json", base)
    runs = rep.runs
    failed = runs[runs["status"].isin(["failed", "diverged"])] if not runs.empty else runs
    if len(failed):
        write_text(out / "failed.md", "\n".join(f"- {r.run}: {r.status}" for r in failed.itertuples()) + "\n")
    if html:
        from exprbench.benchmarks.report.html import write_html

        write_html(rep, out / "index.html", embed=embed_images)
    return out
