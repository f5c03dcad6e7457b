"""The report's tables: one leaderboard per table of :data:`.columns.LEADERBOARD_TABLES` plus the
cost table, as markdown (the LaTeX in :mod:`.latex`: pandas ``Styler.to_latex``, a ``table`` or ``table*`` environment with
caption, label and booktabs rules), and the regression baseline (``baseline.json``).

Each table: one row per model/config with mean ± std over seeds (sample std, ddof=1) and a ``seeds``
column, protocol names in the headers with the direction (↓ lower is better, ↑ higher), the
real-data values as the first row ("real data (reference)", with the count of real images it used), the
best model value per column in bold only when the difference is real (:data:`BOLD_RULE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from exprbench.core.errors import UserError

from exprbench.benchmarks.report.columns import (LEADERBOARD_TABLES, aliases, column_order, header_name, higher_is_better, kind_columns,
                      resolve_metric, table_of)
from exprbench.metrics.protocols.presentation import FLAG_MARK

from exprbench.benchmarks.report.results import HI, LO, REFERENCE_LABEL, metric_columns
from exprbench.benchmarks.report.run_entry import REF_COUNT

COST_TABLE = ("cost", "Training cost and where each entry comes from")
BOLD_RULE = ("bold: the best value of a column, only where its 95% interval does not overlap the runner-up's "
             "(a row's interval: for one seed its bootstrap ci95 over samples; for several, the wider of the mean "
             "of the seeds' ci95 bounds and the seed mean ± t(0.975, n-1)·sd/√n)")


@dataclass
class Table:
    """One leaderboard: display cells plus the numbers behind them (for sorting and checks).

    Attributes:
        name: file stem (``fidelity``, ...); title: human title.
        headers: column headers; rows: cell strings (the reference row first when ``has_reference``).
        bold: per cell, best value of its column; values: per cell the number shown (mean) or the
            text, None where empty; columns: per header the metric column name (None for the rest).
    """

    name: str
    title: str
    headers: list[str]
    rows: list[list[str]]
    bold: list[list[bool]]
    values: list[list]
    columns: list[str | None]
    has_reference: bool = False
    notes: list[str] = field(default_factory=list)
    tex_rows: list[list[str]] | None = None  # the cells for LaTeX (:func:`pm`'s precision rule), else ``rows``


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def column_header(metric: str) -> str:
    """``FID ↓ (fid10k_train)``: the column's name, its direction and its protocol."""
    name = header_name(metric)
    return f"{name} {'↑' if higher_is_better(metric) else '↓'} ({metric.split(':')[0]})"


def _selected(metrics: list[str], select: Sequence[str] | None) -> list[str]:
    """The metric columns named by ``select`` (a column, its protocol, its family or derived key)."""
    if not select:
        return metrics
    names = [s.strip() for item in select for s in str(item).split(",") if s.strip()]
    keep: list[str] = []
    for name in names:
        hits = [m for m in metrics if name in aliases(m)]
        if not hits:
            raise UserError(f"--metrics {name!r}: no such metric in these results (known: {', '.join(metrics)})")
        keep += [m for m in hits if m not in keep]
    return sorted(keep, key=column_order)


def _reference_row(refs: dict, metrics: list[str], lead: int, n_kinds: int) -> tuple[list[str], list]:
    """The real-data row: its cells (counts in the label when one count covers the row) and values."""
    counts = {m: refs.get(f"{m.split(':')[0]}{REF_COUNT}") for m in metrics if _num(refs.get(m)) is not None}
    one = set(counts.values())
    label = REFERENCE_LABEL
    if len(one) == 1 and None not in one:  # one count for the whole row: in its label
        label = REFERENCE_LABEL.replace(")", f", N={one.pop():,})")
        counts = {}
    cells = [label, *[""] * (lead - 1),
             *[_fmt(_num(refs.get(m))) + (f" (N={counts[m]:,})" if counts.get(m) else "") for m in metrics],
             *[""] * n_kinds]
    return cells, [REFERENCE_LABEL, *[None] * (lead - 1), *[_num(refs.get(m)) for m in metrics], *[None] * n_kinds]


def _metric_cells(r, m: str, seeds: int, refs: dict, marked: dict) -> tuple[str, str, float | None]:
    """One model cell of column ``m``: (markdown text, LaTeX text with :func:`pm`'s precision, mean); a flagged
    cell gets :data:`FLAG_MARK` and its note goes into ``marked``."""
    mean, std, n = _num(r[f"{m}|mean"]), _num(r[f"{m}|std"]), int(r[f"{m}|n"] or 0)
    if mean is None:
        return _fmt(mean), _fmt(mean), None
    suffix = f" (n={n})" if n < seeds else ""
    note = _flag(m, mean, refs)
    if note:
        suffix += FLAG_MARK
        marked.setdefault(note, None)
    return _fmt(mean) + (f" ± {_fmt(std)}" if std is not None else "") + suffix, pm(mean, std) + suffix, mean


def _metric_table(name: str, title: str, agg: pd.DataFrame, refs: dict, metrics: list[str],
                  with_source: bool) -> Table | None:
    has = agg[[f"{m}|n" for m in metrics]].sum(axis=1) > 0 if metrics else pd.Series(False, index=agg.index)
    sub = agg[has]
    if not metrics or sub.empty:
        return None
    kinds = [k for k in kind_columns() if any(":" not in m and resolve_metric(m).kind_key == k for m in metrics)]
    headers = ["model", "config", "seeds", *(["source"] if with_source else []), *[column_header(m) for m in metrics],
               *[k[2] for k in kinds]]
    columns = [None, None, None, *([None] if with_source else []), *metrics, *[None for _ in kinds]]
    best, no_interval = {}, []
    for m in metrics:
        row, why = _best_row(sub, m)
        if row is not None:
            best[m] = row
        elif why:
            no_interval.append(m)
    lead = 3 + bool(with_source)
    rows, tex_rows, bold, values = [], [], [], []
    marked: dict[str, None] = {}  # the notes of flagged cells, in order
    has_ref = any(_num(refs.get(m)) is not None for m in metrics)
    if has_ref:
        cells, vals = _reference_row(refs, metrics, lead, len(kinds))
        rows.append(cells), tex_rows.append(list(cells)), values.append(vals), bold.append([False] * len(headers))
    for idx, r in sub.iterrows():
        seeds = int(r["seeds"])
        head = [str(r["model"]), str(r["config"]), str(seeds), *([str(r.get("source", ""))] if with_source else [])]
        cells, tex, flags = list(head), list(head), [False] * lead
        vals: list = [str(r["model"]), str(r["config"]), seeds, *([str(r.get("source", ""))] if with_source else [])]
        for m in metrics:
            md, tx, mean = _metric_cells(r, m, seeds, refs, marked)
            cells.append(md), tex.append(tx), vals.append(mean)
            flags.append(mean is not None and m in best and best[m] == idx)
        for k in kinds:
            kind = str(r.get(k[1]) or "")
            cells.append(kind), tex.append(kind), vals.append(kind or None), flags.append(False)
        rows.append(cells), tex_rows.append(tex), values.append(vals), bold.append(flags)
    notes = [BOLD_RULE[0].upper() + BOLD_RULE[1:] + "."] + [f"{FLAG_MARK} {note}" for note in marked]
    if no_interval:
        notes.append("Not bolded for want of an interval (results without ci95, one seed): "
                     + ", ".join(no_interval) + ".")
    return Table(name, title, headers, rows, bold, values, columns, has_reference=has_ref, notes=notes,
                 tex_rows=tex_rows)


def pm(mean: float | None, std: float | None) -> str:
    """``mean ± std`` for a paper: the std to 2 significant digits and the mean rounded to the same decimal
    place (``1.323, 0.1371`` -> ``1.32 ± 0.14``); a zero std keeps the mean's own format (``0 ± 0``)."""
    if mean is None:
        return _fmt(mean)
    if std is None or not math.isfinite(std) or std <= 0:
        return _fmt(mean) + ("" if std is None else " ± 0")
    places = max(0, 1 - math.floor(math.log10(std)))
    return f"{mean:.{places}f} ± {std:.{places}f}"


def _flag(column: str, mean: float, refs: dict) -> str:
    """The flag note of a cell of ``column`` holding ``mean`` ("" when not flagged; see ``flag_above``)."""
    spec = resolve_metric(column)
    threshold = spec.flag_above.get(column.partition(":")[2] or None)
    if threshold == "reference":
        threshold = _num(refs.get(column))
    return spec.flag_note if threshold is not None and mean > threshold else ""


def _best_row(sub: pd.DataFrame, m: str):
    """``(index of the bold row, None)`` of column ``m``: the best mean whose interval does not overlap the
    runner-up's; ``(None, "no interval")`` when the best or the runner-up has none; ``(None, "")`` otherwise
    (fewer than two rows, or the intervals overlap)."""
    col = sub[f"{m}|mean"].dropna()
    if len(col) < 2:
        return None, ""
    higher = higher_is_better(m)
    order = col.sort_values(ascending=not higher, kind="stable").index
    first, second = order[0], order[1]
    lo, hi = (sub[f"{m}{LO}"] if f"{m}{LO}" in sub else None), (sub[f"{m}{HI}"] if f"{m}{HI}" in sub else None)
    if lo is None or hi is None or any(_num(v) is None for v in (lo[first], hi[first], lo[second], hi[second])):
        return None, "no interval"
    apart = lo[first] > hi[second] if higher else hi[first] < lo[second]
    return (first, None) if apart else (None, "")


def cost_table(agg: pd.DataFrame) -> Table:
    """Seeds, source, device and training cost per model/config: train minutes, img/s, the budget in images
    and epochs, GFLOP per training image (counted, :mod:`.compute`) and the total training PFLOP (GFLOP/img x images)."""
    headers = ["model", "config", "seeds", "source", "device", "train minutes", "img/s", "images (k)", "epochs",
               "GFLOP/img", "PFLOP"]
    rows, values = [], []
    for _, r in agg.iterrows():
        hours, ips, images, epochs, gflop = (_num(r.get(k)) for k in ("train_hours", "img_per_s", "images", "epochs",
                                                                      "gflop_per_img"))
        pflop = gflop * images / 1e6 if gflop is not None and images is not None else None
        vals = [None if hours is None else hours * 60, ips, None if images is None else images / 1000, epochs, gflop, pflop]
        cells = [f"{v:{f}}" if v is not None else "–" for v, f in zip(vals, (".2f", ".0f", ".1f", ".2f", ".3g", ".3g"))]
        head = [str(r["model"]), str(r["config"]), int(r["seeds"]), str(r.get("source", "")), str(r.get("device_type") or "")]
        rows.append([*map(str, head[:4]), head[4] or "–", *cells])
        values.append([*head[:4], head[4] or None, *vals])
    return Table(*COST_TABLE, headers, rows, [[False] * len(headers) for _ in rows], values, [None] * len(headers))


def leaderboard_tables(agg: pd.DataFrame, refs: dict, metrics: Sequence[str] | None = None,
                       with_source: bool | None = None) -> list[Table]:
    """The leaderboards of an aggregate, in order (fidelity, likelihood, class-aware, encoder,
    translation, editing, other, cost); metric tables without any value are left out.

    Args:
        agg: :func:`.results.aggregate` output; refs: real-data reference values ``{column: value}``.
        metrics: keep only these metric columns (names, protocols or families; None = all); the
            cost table is then left out.
        with_source: add a ``source`` column to the metric tables (default: when sources are mixed).

    Raises:
        UserError: a name in ``metrics`` matches no column.
    """
    cols = _selected(metric_columns(agg), metrics)
    if with_source is None:
        with_source = len({s for s in agg.get("source", pd.Series(dtype=str)).astype(str)}) > 1
    tables = []
    for name, title in LEADERBOARD_TABLES:
        t = _metric_table(name, title, agg, refs, [m for m in cols if table_of(m) == name], with_source)
        if t is not None:
            tables.append(t)
    if not metrics:
        tables.append(cost_table(agg))
    return tables


def leaderboard_cells(agg: pd.DataFrame, refs: dict, table: str = "fidelity"
                      ) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Headers, cell strings and bold flags of one leaderboard (see :func:`leaderboard_tables`);
    empty when it has no value."""
    for t in leaderboard_tables(agg, refs):
        if t.name == table:
            return t.headers, t.rows, t.bold
    return [], [], []


def notes_markdown(table: Table) -> str:
    """The table's notes (the bold rule, columns without intervals) as a markdown paragraph ("" for none)."""
    return (" ".join(table.notes) + "\n") if table.notes else ""


def to_markdown(headers, rows, bold) -> str:
    """A GitHub markdown table; bold cells as ``**x**``."""
    def cell(s, b):
        return f"**{s}**" if b and s else s

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(cell(c, b) for c, b in zip(r, f)) + " |" for r, f in zip(rows, bold)]
    return "\n".join(lines) + "\n"


def baseline_from(agg: pd.DataFrame, refs: dict, suite: str) -> dict:
    """The regression baseline: ``{"suite", "references": {metric: real-data value}, "models":
    {"model/config": {metric: {mean, std, n, higher_is_better}}}}``."""
    models = {}
    for _, r in agg.iterrows():
        entry = {}
        for m in metric_columns(agg):
            if f"{m}|n" in r and r[f"{m}|n"] and _num(r[f"{m}|mean"]) is not None:
                std = _num(r[f"{m}|std"])
                entry[m] = {"mean": float(r[f"{m}|mean"]), "std": std, "n": int(r[f"{m}|n"]),
                            "higher_is_better": higher_is_better(m)}
        models[f"{r['model']}/{r['config']}"] = entry
    values = {k: v for k, v in refs.items() if not k.endswith(REF_COUNT)}  # counts are not reference values
    return {"suite": suite, "references": dict(sorted(values.items())), "models": dict(sorted(models.items()))}

