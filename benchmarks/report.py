"""``exprbench report RESULTS_DIR [RUN_DIR...]``: leaderboards, paper figures, an HTML page, a baseline.

Reads result files only (a model is built only for a sample, translation or edit sheet, and only
where its checkpoint or published weights are there). The entries are every
directory under ``RESULTS_DIR/runs/`` (and every run directory given directly) that holds an
``eval.json`` or a bench ``record.json``, however it was made; the ``source`` column says how:

* ``bench``: ``exprbench bench`` (``record.json``; its ``status`` decides whether it is reported);
* ``train+evaluate``: ``exprbench train`` then ``exprbench evaluate`` (``eval.json``, no record);
* ``images``: ``exprbench evaluate --images DIR --out OUTDIR`` (``eval.json`` and ``source.json``;
  the model name is ``source.json``'s ``name``, else the directory name).

Entries of an earlier report (``RESULTS_DIR/report/leaderboard.csv``) whose run files are not here
(results committed without their git-ignored ``runs/``) are kept, and the report says which.

It writes ``RESULTS_DIR/report/`` (or ``--out``):

* ``leaderboard.md``, ``leaderboard.tex``, ``tables/<name>.{md,tex}``: one table per leaderboard
  (fidelity, coverage and memorisation, likelihood, class-aware, encoder, translation, editing,
  cost), each narrow enough for one paper column; one row per model/config with mean ± std over
  seeds (sample std, ddof=1) and a ``seeds`` column, protocol names in the headers with the
  direction (↓ lower is better, ↑ higher), the real-data values as the first row ("real data
  (reference)"), the best model value per column in bold; ``--metrics`` keeps only some columns. LaTeX through pandas ``Styler.to_latex``: a ``table`` environment with caption, label and
  booktabs rules;
* ``leaderboard.csv``: every number of the tables (mean, std, n per metric, cost, source);
* ``baseline.json``: the same numbers for ``exprbench regress``;
* ``figures/``: PNG and PDF (see :mod:`.figures`); figures whose inputs are absent are listed in
  ``leaderboard.md`` and the HTML page as skipped, with the reason;
* ``index.html``: one self-contained page (inline CSS/JS, images as data URIs) with sortable
  leaderboards, every figure, per-model sample sheets, protocol and hardware (see :mod:`.html`).

Tables and baseline depend only on the result files: running the report twice gives identical tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from exprbench.errors import UserError
from exprbench.io import read_json, write_json, write_text

LOWER_IS_BETTER = {"fid", "kid", "ifid", "recon_l1", "translate_fid", "bpd", "mem"}
# families whose value is a label accuracy in [0, 1]: their bar charts get a chance line at 1/K
ACCURACY_FAMILIES = {"acc_gen", "cas", "enc_acc", "probe", "translate_acc", "edit"}
# detail values promoted to columns "<protocol>:<key>" (key -> higher is better)
DERIVED = {"translate_acc": {"identity_l1": False, "identity_ssim": True}, "recon_l1": {"ssim": True},
           "edit": {"identity_l1": False, "identity_ssim": True, "feature_distance": False, "entanglement": False},
           "bpd": {"iw_bpd": False}, "pr": {"precision": True, "recall": True}, "dc": {"density": True}}
# display names of families / derived keys in the table headers (default: the name in capitals)
DISPLAY = {"pr": "F", "dc": "COVERAGE", "mem": "MEMORISED"}
RUN_COLUMNS = {"run", "model", "config", "seed", "status", "device", "device_name", "steps", "train_seconds",
               "img_per_s", "bpd_kind", "source", "path", "classes", "eval_seconds", "git_commit"}
REFERENCE_LABEL = "real data (reference)"
FLOOR_LABEL = REFERENCE_LABEL  # the former name, for importers
SOURCES = ("bench", "train+evaluate", "images")

# the leaderboards: (file name, title, columns as (family, derived key or None)); each fits a paper column
LEADERBOARDS: list[tuple[str, str, list[tuple[str, str | None]]]] = [
    ("fidelity", "Fidelity to the training faces",
     [("fid", None), ("kid", None), ("pr", "precision"), ("pr", "recall"), ("pr", None)]),
    ("coverage", "Coverage and memorisation", [("dc", None), ("dc", "density"), ("mem", None)]),
    ("likelihood", "Likelihood (bits/dim of the test faces)", [("bpd", None), ("bpd", "iw_bpd")]),
    ("class_aware", "Class-aware generation", [("acc_gen", None), ("cas", None), ("ifid", None)]),
    ("encoder", "Encoder", [("enc_acc", None), ("probe", None), ("recon_l1", None), ("recon_l1", "ssim")]),
    ("translation", "Translation of test faces",
     [("translate_acc", None), ("translate_acc", "identity_l1"), ("translate_acc", "identity_ssim"),
      ("translate_fid", None)]),
    ("editing", "Editing at the model's reference strength",
     [("edit", None), ("edit", "entanglement"), ("edit", "feature_distance"), ("edit", "identity_l1"),
      ("edit", "identity_ssim")]),
]
OTHER_TABLE = ("other", "Other protocols")
COST_TABLE = ("cost", "Training cost and where each entry comes from")


def family_of(protocol: str) -> str:
    """The metric family of a protocol name (``fid1k_train`` -> ``fid``); the name itself if unknown.
    A derived column ``<protocol>:<key>`` has the family ``<key>``."""
    if ":" in protocol:
        return protocol.split(":", 1)[1]
    try:
        from exprbench.metrics.registry import resolve_protocol

        return resolve_protocol(protocol).family
    except Exception:  # protocols of plugins not installed here: keep the name
        return protocol


def kind_of(column: str) -> tuple[str, str | None]:
    """``(family of the protocol, derived key or None)`` of a metric column (``pr10k_train:recall``
    -> ``("pr", "recall")``)."""
    base, _, key = column.partition(":")
    return family_of(base), (key or None)


def higher_is_better(protocol: str) -> bool:
    """Direction of a protocol (or of a derived ``<protocol>:<key>`` column)."""
    if ":" in protocol:
        base, key = protocol.split(":", 1)
        return DERIVED.get(family_of(base), {}).get(key, True)
    return family_of(protocol) not in LOWER_IS_BETTER


def table_of(column: str) -> str:
    """The leaderboard a metric column belongs to (``fidelity``, ..., ``editing``; ``other`` if unknown)."""
    kind = kind_of(column)
    return next((name for name, _, cols in LEADERBOARDS if kind in cols), OTHER_TABLE[0])


def _column_order(column: str) -> tuple:
    kind = kind_of(column)
    for t, (_, _, cols) in enumerate(LEADERBOARDS):
        if kind in cols:
            return (t, cols.index(kind), column)
    return (len(LEADERBOARDS), 0, column)


# --------------------------------------------------------------------------------------------
# reading the result files


def _read_json_strict(path: Path) -> dict | None:
    """A JSON object file, None when missing; a malformed one is a UserError naming it."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg}); re-run the command that wrote it") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


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


def _source(run: Path, rec: dict | None) -> str:
    if rec is not None:
        return "bench"
    return "images" if (run / "source.json").is_file() else "train+evaluate"


def _classes(ev: dict, cfg: dict | None) -> int | None:
    """Number of classes of an entry (for the chance line): from eval.json details, else the label set."""
    for entry in (ev.get("metrics") or {}).values():
        names = (entry.get("details") or {}).get("class_names") if isinstance(entry, dict) else None
        if isinstance(names, list) and names:
            return len(names)
    label_set = ((cfg or {}).get("data") or {}).get("label_set") or (ev.get("run") or {}).get("label_set")
    if label_set:
        try:
            from exprbench.data import LABEL_SETS

            if label_set in LABEL_SETS:
                return len(LABEL_SETS[label_set])
        except Exception:  # noqa: BLE001
            pass
        if str(label_set).startswith("celeba"):
            return 2
    return None


def _read_curve(path: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i}: malformed JSON line ({e.msg}; a torn write?): fix or delete the line") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), (int, float)):
            raise UserError(f"{path}:{i}: expected an object with a numeric 'step'")
        rows.append(rec)
    return rows


def collect(results_dir: str | Path | Sequence[str | Path]) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Read every entry of a results directory (or of several run/results directories).

    Args:
        results_dir: a results directory (with ``runs/``), a run directory, or a list of them.

    Returns:
        ``(runs, floors, curves)``: one row per entry (run, model, config, seed, status, source,
        path, device, cost columns and one column per protocol value or derived detail), the real-data
        reference values ``{column: value}``, and the periodic-metric curves (model, config, seed,
        step, metric, value). ``status`` is the bench record's status for bench runs, else ``done``
        when there is an ``eval.json`` (``partial`` without one).

    Raises:
        UserError: no ``runs/`` directory, no entry, or a malformed result file (naming it).
    """
    rows, floors, curves = [], {}, []
    dirs = entry_dirs(results_dir)
    for run in dirs:
        cfg = _read_json_strict(run / "config.json")
        rec = _read_json_strict(run / "record.json")
        ev = _read_json_strict(run / "eval.json")
        if cfg is None and ev is None and rec is None:
            continue
        ev = ev or {}
        status = _read_json_strict(run / "status.json") or {}
        src = _source(run, rec)
        meta = ev.get("run") if isinstance(ev.get("run"), dict) else {}
        if src == "images":
            info = _read_json_strict(run / "source.json") or {}
            model = str(info.get("name") or run.name)
            config, seed = str(info.get("config") or meta.get("config") or ""), info.get("seed", meta.get("seed"))
        elif cfg is not None:
            model, config, seed = cfg["model"], cfg.get("config_name", ""), (cfg.get("train") or {}).get("seed")
        else:
            model, config, seed = (meta.get("model") or (rec or {}).get("model") or run.name,
                                   meta.get("config") or (rec or {}).get("config") or "",
                                   meta.get("seed", (rec or {}).get("seed")))
        if rec is not None:
            state = rec.get("status", "partial")
        else:
            state = "done" if ev.get("metrics") else "partial"
        versions = status.get("versions") or ev.get("versions") or {}
        row = {"run": run.name, "model": str(model), "config": str(config), "seed": seed, "status": state,
               "source": src, "path": str(run.resolve()),
               "device": status.get("device") or (rec or {}).get("device") or str(ev.get("device") or ""),
               "device_name": status.get("device_name") or (rec or {}).get("device_name") or str(ev.get("device") or ""),
               "steps": status.get("step", meta.get("step")), "train_seconds": status.get("train_seconds"),
               "img_per_s": status.get("img_per_s"), "classes": _classes(ev, cfg),
               "eval_seconds": (rec or {}).get("eval_wall_s", ev.get("wall_s")),
               "git_commit": versions.get("git_commit")}
        for name, entry in (ev.get("metrics") or {}).items():
            if not isinstance(entry, dict):
                continue
            if entry.get("status") == "ok" and isinstance(entry.get("value"), (int, float)):
                row[name] = float(entry["value"])
                details = entry.get("details") or {}
                for key in DERIVED.get(family_of(name), {}):
                    if isinstance(details.get(key), (int, float)):
                        row[f"{name}:{key}"] = float(details[key])
                if "exact" in details and family_of(name) == "bpd":
                    row["bpd_kind"] = "exact" if details["exact"] else "bound"
        for name, entry in (ev.get("floors") or {}).items():
            if isinstance(entry, dict) and entry.get("status") == "ok" and isinstance(entry.get("value"), (int, float)):
                floors.setdefault(name, float(entry["value"]))
                details = entry.get("details") or {}
                for key in DERIVED.get(family_of(name), {}):
                    if isinstance(details.get(key), (int, float)):
                        floors.setdefault(f"{name}:{key}", float(details[key]))
        rows.append(row)
        curve = run / "curve.jsonl"
        if curve.is_file():
            for rec_c in _read_curve(curve):
                for k, v in rec_c.items():
                    if k != "step" and isinstance(v, (int, float)):
                        curves.append({"model": row["model"], "config": row["config"], "seed": seed,
                                       "step": rec_c["step"], "metric": k, "value": float(v)})
    if not rows:
        where = results_dir if isinstance(results_dir, (str, Path)) else ", ".join(map(str, results_dir))
        raise UserError(f"{where}: no run directory with an eval.json (or a bench record.json) in it")
    return pd.DataFrame(rows), floors, pd.DataFrame(curves)


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The metric columns of a runs (or aggregate) frame, in leaderboard order."""
    if any(str(c).endswith("|mean") for c in runs.columns):  # an aggregate: <metric>|mean columns
        names = {c[: -len("|mean")] for c in runs.columns if str(c).endswith("|mean")}
    else:
        names = {c for c in runs.columns if c not in RUN_COLUMNS}
    return sorted(names, key=_column_order)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1) and seed count per (model, config) over the reportable entries.

    Reportable: status ``done`` (a bench record says done, or an ``eval.json`` without a record).

    Returns a frame with one row per (model, config), columns ``model``, ``config``, ``seeds``,
    ``<metric>|mean``, ``<metric>|std``, ``<metric>|n`` and the cost columns ``train_hours``,
    ``device_type``, ``img_per_s``, ``bpd_kind``, ``source`` (sources joined by ", "), ``classes``
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
        secs = pd.to_numeric(g["train_seconds"], errors="coerce")
        row["train_hours"] = float(secs.mean()) / 3600 if secs.notna().any() else math.nan
        row["device_type"] = "GPU" if g["device"].astype(str).str.startswith("cuda").any() else (
            "CPU" if g["device"].astype(str).str.startswith("cpu").any() else "")
        ips = pd.to_numeric(g["img_per_s"], errors="coerce")
        row["img_per_s"] = float(ips.mean()) if ips.notna().any() else math.nan
        kinds = g["bpd_kind"].dropna().unique() if "bpd_kind" in g else []
        row["bpd_kind"] = kinds[0] if len(kinds) else ""
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

    Returns ``(agg, floors)`` in the shape of :func:`aggregate` (empty frame when there is none).

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
    floors = {}
    if len(ref):
        r = ref.iloc[0]
        floors = {c.split("|")[0]: float(r[c]) for c in df.columns if c.endswith("|mean") and pd.notna(r[c])}
    agg = df[df["row"] == "model"].drop(columns=["row"]).reset_index(drop=True)
    agg["config"] = _text(agg["config"])
    agg["model"] = agg["model"].astype(str)
    for c in ("bpd_kind", "device_type", "hardware"):
        agg[c] = _text(agg[c]) if c in agg else ""
    if "source" not in agg:
        agg["source"] = "bench"
    agg["source"] = _text(agg["source"])
    for c in agg.columns:
        if c.endswith("|n") or c == "seeds":
            agg[c] = pd.to_numeric(agg[c], errors="coerce").fillna(0).astype(int)
    return agg, floors


# --------------------------------------------------------------------------------------------
# tables


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


def _header(metric: str) -> str:
    fam, key = kind_of(metric)
    name = DISPLAY.get(key or fam, (key or fam).upper())
    return f"{name} {'↑' if higher_is_better(metric) else '↓'} ({metric.split(':')[0]})"


def _selected(metrics: list[str], select: Sequence[str] | None) -> list[str]:
    """The metric columns named by ``select`` (a column, its protocol, its family or derived key)."""
    if not select:
        return metrics
    names = [s.strip() for item in select for s in str(item).split(",") if s.strip()]
    def matches(name: str, m: str) -> bool:
        fam, key = kind_of(m)
        if name in (m, m.split(":")[0]) or (key is not None and name == key):
            return True
        return key is None and name in (fam, DISPLAY.get(fam, "").lower())

    keep: list[str] = []
    for name in names:
        hits = [m for m in metrics if matches(name, m)]
        if not hits:
            raise UserError(f"--metrics {name!r}: no such metric in these results (known: {', '.join(metrics)})")
        keep += [m for m in hits if m not in keep]
    return sorted(keep, key=_column_order)


def _metric_table(name: str, title: str, agg: pd.DataFrame, floors: dict, metrics: list[str],
                  with_source: bool) -> Table | None:
    has = agg[[f"{m}|n" for m in metrics]].sum(axis=1) > 0 if metrics else pd.Series(False, index=agg.index)
    sub = agg[has]
    if not metrics or sub.empty:
        return None
    bpd = [m for m in metrics if kind_of(m) == ("bpd", None)]
    headers = ["model", "config", "seeds", *(["source"] if with_source else []), *[_header(m) for m in metrics],
               *(["bpd kind"] if bpd else [])]
    columns = [None, None, None, *([None] if with_source else []), *metrics, *([None] if bpd else [])]
    best = {}
    for m in metrics:
        col = sub[f"{m}|mean"].dropna()
        if len(col):
            best[m] = col.max() if higher_is_better(m) else col.min()
    lead = 3 + bool(with_source)
    rows, bold, values = [], [], []
    has_ref = any(_num(floors.get(m)) is not None for m in metrics)
    if has_ref:
        rows.append([REFERENCE_LABEL, "", "", *([""] if with_source else []),
                     *[_fmt(_num(floors.get(m))) for m in metrics], *([""] if bpd else [])])
        values.append([REFERENCE_LABEL, None, None, *([None] if with_source else []),
                       *[_num(floors.get(m)) for m in metrics], *([None] if bpd else [])])
        bold.append([False] * len(headers))
    for _, r in sub.iterrows():
        seeds = int(r["seeds"])
        cells = [str(r["model"]), str(r["config"]), str(seeds), *([str(r.get("source", ""))] if with_source else [])]
        vals: list = [str(r["model"]), str(r["config"]), seeds, *([str(r.get("source", ""))] if with_source else [])]
        flags = [False] * lead
        for m in metrics:
            mean, std, n = _num(r[f"{m}|mean"]), _num(r[f"{m}|std"]), int(r[f"{m}|n"] or 0)
            cell = _fmt(mean)
            if mean is not None:
                if std is not None:
                    cell += f" ± {_fmt(std)}"
                if n < seeds:
                    cell += f" (n={n})"
            cells.append(cell)
            vals.append(mean)
            flags.append(m in best and mean is not None and mean == best[m])
        if bpd:
            kind = str(r.get("bpd_kind") or "")
            cells.append(kind)
            vals.append(kind or None)
            flags.append(False)
        rows.append(cells)
        values.append(vals)
        bold.append(flags)
    return Table(name, title, headers, rows, bold, values, columns, has_reference=has_ref)


def cost_table(agg: pd.DataFrame) -> Table:
    """Seeds, source, device and training cost per model/config."""
    headers = ["model", "config", "seeds", "source", "device", "train minutes", "img/s"]
    rows, values = [], []
    for _, r in agg.iterrows():
        hours, ips = _num(r.get("train_hours")), _num(r.get("img_per_s"))
        rows.append([str(r["model"]), str(r["config"]), str(int(r["seeds"])), str(r.get("source", "")),
                     str(r.get("device_type") or "") or "–", "–" if hours is None else f"{hours * 60:.2f}",
                     "–" if ips is None else f"{ips:.0f}"])
        values.append([str(r["model"]), str(r["config"]), int(r["seeds"]), str(r.get("source", "")),
                       str(r.get("device_type") or "") or None, None if hours is None else hours * 60, ips])
    return Table(COST_TABLE[0], COST_TABLE[1], headers, rows, [[False] * len(headers) for _ in rows], values,
                 [None] * len(headers))


def leaderboard_tables(agg: pd.DataFrame, floors: dict, metrics: Sequence[str] | None = None,
                       with_source: bool | None = None) -> list[Table]:
    """The leaderboards of an aggregate, in order (fidelity, likelihood, class-aware, encoder,
    translation, editing, other, cost); metric tables without any value are left out.

    Args:
        agg: :func:`aggregate` output; floors: reference values ``{column: value}``.
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
    for name, title, _ in [*LEADERBOARDS, (*OTHER_TABLE, [])]:
        t = _metric_table(name, title, agg, floors, [m for m in cols if table_of(m) == name], with_source)
        if t is not None:
            tables.append(t)
    if not metrics:
        tables.append(cost_table(agg))
    return tables


def leaderboard_cells(agg: pd.DataFrame, floors: dict, table: str = "fidelity"
                      ) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Headers, cell strings and bold flags of one leaderboard (see :func:`leaderboard_tables`);
    empty when it has no value."""
    for t in leaderboard_tables(agg, floors):
        if t.name == table:
            return t.headers, t.rows, t.bold
    return [], [], []


def to_markdown(headers, rows, bold) -> str:
    """A GitHub markdown table; bold cells as ``**x**``."""
    def cell(s, b):
        return f"**{s}**" if b and s else s

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(cell(c, b) for c, b in zip(r, f)) + " |" for r, f in zip(rows, bold)]
    return "\n".join(lines) + "\n"


def _tex_escape(s) -> str:
    s = str(s)
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("{", r"\{"), ("}", r"\}"), ("$", r"\$"),
                 ("±", r"$\pm$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"), ("–", "--")):
        s = s.replace(a, b)
    return s.replace(r"\textbackslash\{\}", r"\textbackslash{}")


def _tex_header(h: str) -> str:
    """``FID ↓ (fid10k_train)`` -> two lines (name and direction over the protocol in small type), so
    that a table fits a paper column; other headers escaped as they are."""
    name, sep, proto = h.partition(" (")
    if not sep or not proto.endswith(")"):
        return _tex_escape(h)
    return (r"\begin{tabular}[b]{@{}c@{}}" + _tex_escape(name) + r"\\ {\scriptsize " + _tex_escape(proto[:-1])
            + r"}\end{tabular}")


def _label(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-:" else "-" for ch in text)


def to_latex(table: Table, suite: str = "") -> str:
    """A booktabs ``table`` environment (pandas ``Styler.to_latex``) with caption and label
    (``tab:<suite>-<name>``); best values in ``\\textbf``, a rule under the reference row."""
    if not table.rows:
        return ""
    df = pd.DataFrame(table.rows, columns=pd.Index(range(len(table.headers))))
    styler = df.style.hide(axis="index").format(_tex_escape)
    labels = [_tex_header(h) for h in table.headers]
    styler = styler.format_index(lambda i: labels[i], axis=1)
    flags = pd.DataFrame(table.bold, index=df.index, columns=df.columns)
    styler = styler.apply(lambda d: flags.map(lambda b: "textbf:--rwrap;" if b else ""), axis=None)
    numeric = [i for i, c in enumerate(table.columns) if c is not None]
    fmt = "".join("r" if i in numeric or h in ("seeds", "train minutes", "img/s") else "l"
                  for i, h in enumerate(table.headers))
    where = f" (suite {suite})" if suite else ""
    what = "mean ± std over seeds" if table.name != "cost" else "mean over seeds"
    caption = f"{table.title}{where}: {what}"
    if table.name != "cost":
        caption += "; ↓ lower is better, ↑ higher; best in bold"
    if table.has_reference:
        caption += f"; first row: {REFERENCE_LABEL}"
    tex = styler.to_latex(environment="table", position="htbp", position_float="centering", hrules=True,
                          column_format=fmt, caption=_tex_escape(caption + "."),
                          label=f"tab:{_label(suite + '-' if suite else '')}{_label(table.name)}")
    if table.has_reference and len(table.rows) > 1:  # a rule between the reference row and the models
        lines = tex.splitlines()
        i = lines.index(r"\midrule") + 1
        lines.insert(i + 1, r"\midrule")
        tex = "\n".join(lines) + "\n"
    return tex


def baseline_from(agg: pd.DataFrame, floors: dict, suite: str) -> dict:
    """The regression baseline: ``{"suite", "floors": {metric: real-data value}, "models":
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
    return {"suite": suite, "floors": dict(sorted(floors.items())), "models": dict(sorted(models.items()))}


# --------------------------------------------------------------------------------------------
# the report


@dataclass
class Report:
    """What :func:`build_report` read and computed (input of the writers and the HTML page)."""

    results_dir: Path
    out: Path
    suite: str
    suite_info: dict
    runs: pd.DataFrame
    agg: pd.DataFrame
    floors: dict
    curves: pd.DataFrame
    tables: list[Table]
    note: str
    stored: list[str]
    run_floors: dict = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]


def build_report(results_dir: str | Path, extra: Sequence[str | Path] = (), out: str | Path | None = None,
                 metrics: Sequence[str] | None = None, use_stored: bool = True) -> Report:
    """Read the entries and compute tables (nothing written).

    Args:
        results_dir: the results directory (its ``runs/``; or one run directory).
        extra: more run or results directories to put beside them.
        out: the report folder (default ``results_dir/report``).
        metrics: keep only these metric columns in the tables (None = all).
        use_stored: keep the rows of ``<out>/leaderboard.csv`` whose run files are not here.

    Raises:
        UserError: nothing to report, a malformed result file, or an unknown metric name.
    """
    results_dir = Path(results_dir)
    out = Path(out) if out else results_dir / "report"
    stored_agg, stored_floors = read_stored(out / "leaderboard.csv") if use_stored else (pd.DataFrame(), {})
    paths = [p for p in [results_dir, *map(Path, extra)]
             if not (p == results_dir and not stored_agg.empty and not (p / "runs").is_dir()
                     and not (p / "eval.json").is_file())]
    runs, floors, curves = pd.DataFrame(), {}, pd.DataFrame()
    agg = pd.DataFrame()
    if paths:
        try:
            runs, floors, curves = collect(paths)
            agg = aggregate(runs)
        except UserError:
            if stored_agg.empty:
                raise
    stored, run_floors = [], dict(floors)
    if not stored_agg.empty:
        have = set(zip(agg["model"], agg["config"])) if not agg.empty else set()
        keep = stored_agg[[(m, c) not in have for m, c in zip(stored_agg["model"], stored_agg["config"])]]
        stored = [f"{m}/{c}" if c else m for m, c in zip(keep["model"], keep["config"])]
        agg = _concat([agg, keep])
        for k, v in stored_floors.items():
            floors.setdefault(k, v)
    if agg.empty:
        raise UserError(f"{results_dir}: nothing to report (no run with an eval.json)")
    for c in agg.columns:  # columns one side lacked: counts 0, text empty
        if c.endswith("|n") or c == "seeds":
            agg[c] = pd.to_numeric(agg[c], errors="coerce").fillna(0).astype(int)
    for c in ("source", "bpd_kind", "device_type", "config", "hardware"):
        if c in agg:
            agg[c] = _text(agg[c])
    first = [c for c in ("model", "config", "seeds") if c in agg]
    ordered = first + [f"{m}|{s}" for m in metric_columns(agg) for s in ("mean", "std", "n") if f"{m}|{s}" in agg]
    agg = agg[ordered + [c for c in agg.columns if c not in ordered]]
    agg = agg.sort_values(["model", "config"], kind="stable").reset_index(drop=True)
    suite_info = read_json(results_dir / "suite.json") or {}
    suite = str(suite_info.get("suite", results_dir.name))
    tables = leaderboard_tables(agg, floors, metrics)
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
        note += (f"Kept from the earlier `{out.name}/leaderboard.csv` (their run files are not here): "
                 f"{', '.join(stored)}.\n\n")
    have_runs = set(done["run"]) if not done.empty else set()
    grid = suite_info.get("grid", [])
    pending = [g for g in grid if g not in have_runs]
    if pending and not stored:
        note += f"Not completed yet ({len(pending)} of {len(grid)} grid points): {', '.join(pending)}.\n\n"
    elif grid and n_seeds < len(grid):
        note += f"Not completed yet: {len(grid) - n_seeds} of the suite's {len(grid)} grid points.\n\n"
    return Report(results_dir, out, suite, suite_info, runs, agg, floors, curves, tables, note, stored, run_floors)


def _skipped_md(skipped: list[tuple[str, str]]) -> str:
    if not skipped:
        return ""
    return "## Figures skipped\n\n" + "".join(f"- {what}: {why}\n" for what, why in skipped)


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
        from .figures import write_figures

        rep.written, rep.skipped = write_figures(rep, out / "figures")
    md = [rep.note]
    tex = []
    for t in rep.tables:
        body = to_markdown(t.headers, t.rows, t.bold)
        md.append(f"## {t.title}\n\n{body}\n")
        latex = to_latex(t, rep.suite)
        tex.append(latex)
        write_text(out / "tables" / f"{t.name}.md", f"{t.title}\n\n{body}")
        write_text(out / "tables" / f"{t.name}.tex", latex)
    md.append(_skipped_md(rep.skipped))
    write_text(out / "leaderboard.md", "".join(md).rstrip("\n") + "\n")
    write_text(out / "leaderboard.tex", "% needs \\usepackage{booktabs}\n" + "\n".join(tex))
    csv = rep.agg.copy()
    csv.insert(0, "row", "model")
    ref = {"row": "reference", "model": REFERENCE_LABEL, "config": ""}
    ref.update({f"{m}|mean": v for m, v in rep.floors.items() if f"{m}|mean" in csv.columns})
    csv = pd.concat([pd.DataFrame([ref]), csv], ignore_index=True)[list(csv.columns)]
    write_text(out / "leaderboard.csv", csv.to_csv(index=False, float_format="%.10g"))
    base = baseline_from(rep.agg, rep.floors, rep.suite)
    old = read_json(out / "baseline.json") if rep.stored else None
    if isinstance(old, dict) and isinstance(old.get("models"), dict):  # stored rows: the earlier exact numbers
        for key in rep.stored:
            key = key if "/" in key else f"{key}/"
            if isinstance(old["models"].get(key), dict):
                base["models"][key] = old["models"][key]
        for k, v in (old.get("floors") or {}).items():
            if k in base["floors"] and k not in rep.run_floors:
                base["floors"][k] = v
    write_json(out / "baseline.json", base)
    runs = rep.runs
    failed = runs[runs["status"].isin(["failed", "diverged"])] if not runs.empty else runs
    if len(failed):
        write_text(out / "failed.md", "\n".join(f"- {r.run}: {r.status}" for r in failed.itertuples()) + "\n")
    if html:
        from .html import write_html

        write_html(rep, out / "index.html", embed=embed_images)
    return out
