"""``exprbench report RESULTS_DIR``: leaderboard tables, paper figures and a regression baseline.

Reads every run under ``RESULTS_DIR/runs/`` (``config.json``, ``record.json``, ``eval.json``,
``curve.jsonl``) with pandas and writes ``RESULTS_DIR/report/``:

* ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.tex``: one row per model/config, mean ± std
  over seeds (sample std, ddof=1; "±0" with one seed is shown as "(1 seed)"), protocol names in the
  column headers with the direction (↓ lower is better, ↑ higher), the real-data floors as the first
  row, the best model value per column in bold, training cost (device minutes per run, img/s);
* ``capabilities.md`` / ``.tex``: the encoder and translation leaderboard (encoder accuracy, linear
  probe, reconstruction L1/SSIM, translation target accuracy, identity L1/SSIM, translation FID) of
  the models that have those capabilities;
* ``editing.md`` / ``.tex``: the edit leaderboard (success at the model's reference strength, identity
  drift L1/SSIM/feature distance, entanglement) of the models with ``edit``; the likelihood (bits/dim,
  marked exact or bound, and the IWAE bound where there is one) is a column of the main leaderboard;
* ``baseline.json``: the same numbers for ``exprbench regress``;
* ``figures/``: PNG and PDF, seaborn "paper" context: a sample grid per model (rows = emotions,
  fixed latents), one comparison sheet of all models per emotion, the curve of the periodic metric
  over training steps, a bar chart per metric (error bars = std over seeds, dashed line = floor) and
  the label-accuracy confusion matrices.

Tables and baseline depend only on the run files: running the report twice gives identical tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from exprbench.errors import UserError
from exprbench.io import read_json, write_json, write_text

LOWER_IS_BETTER = {"fid", "kid", "ifid", "recon_l1", "translate_fid", "bpd"}
# metric families with a table of their own beside the generation leaderboard
TABLES = {"capabilities": {"enc_acc", "probe", "recon_l1", "translate_acc", "translate_fid"}, "editing": {"edit"}}
# detail values promoted to columns "<protocol>:<key>" (key -> higher is better)
DERIVED = {"translate_acc": {"identity_l1": False, "identity_ssim": True}, "recon_l1": {"ssim": True},
           "edit": {"identity_l1": False, "identity_ssim": True, "feature_distance": False, "entanglement": False},
           "bpd": {"iw_bpd": False}}
RUN_COLUMNS = {"run", "model", "config", "seed", "status", "device", "device_name", "steps", "train_seconds",
               "img_per_s", "bpd_kind"}
FLOOR_LABEL = "real data (floor)"


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


def higher_is_better(protocol: str) -> bool:
    """Direction of a protocol (or of a derived ``<protocol>:<key>`` column)."""
    if ":" in protocol:
        base, key = protocol.split(":", 1)
        return DERIVED.get(family_of(base), {}).get(key, True)
    return family_of(protocol) not in LOWER_IS_BETTER


def table_of(column: str) -> str:
    """The leaderboard a metric column belongs to: ``generation``, ``capabilities`` or ``editing``."""
    fam = family_of(column.split(":", 1)[0])
    return next((t for t, fams in TABLES.items() if fam in fams), "generation")


def collect(results_dir: str | Path) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Read all runs of a results directory.

    Returns:
        ``(runs, floors, curves)``: one row per run (model, config, seed, status, device, cost columns
        and one column per protocol value), the floors ``{protocol: value}``, and the periodic-metric
        curves (model, config, seed, step, metric, value).

    Raises:
        UserError: no ``runs/`` directory or no run in it.
    """
    results_dir = Path(results_dir)
    runs_dir = results_dir / "runs"
    if not runs_dir.is_dir():
        raise UserError(f"{results_dir} has no runs/ directory (run `exprbench bench SUITE --out {results_dir}` first)")
    rows, floors, curves = [], {}, []
    for run in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        cfg = read_json(run / "config.json")
        if cfg is None:
            continue
        rec = read_json(run / "record.json") or {}
        ev = read_json(run / "eval.json") or {}
        status = read_json(run / "status.json") or {}
        row = {"run": run.name, "model": cfg["model"], "config": cfg["config_name"], "seed": cfg["train"]["seed"],
               "status": rec.get("status", "partial"), "device": status.get("device", ""),
               "device_name": status.get("device_name", ""), "steps": status.get("step"),
               "train_seconds": status.get("train_seconds"), "img_per_s": status.get("img_per_s")}
        for name, entry in (ev.get("metrics") or {}).items():
            if entry.get("status") == "ok" and entry.get("value") is not None:
                row[name] = float(entry["value"])
                details = entry.get("details") or {}
                for key in DERIVED.get(family_of(name), {}):
                    if isinstance(details.get(key), (int, float)):
                        row[f"{name}:{key}"] = float(details[key])
                if "exact" in details and family_of(name) == "bpd":
                    row["bpd_kind"] = "exact" if details["exact"] else "bound"
        for name, entry in (ev.get("floors") or {}).items():
            if entry.get("status") == "ok" and entry.get("value") is not None:
                floors.setdefault(name, float(entry["value"]))
        rows.append(row)
        curve = run / "curve.jsonl"
        if curve.exists():
            for line in curve.read_text().splitlines():
                if line.strip():
                    rec_c = json.loads(line)
                    for k, v in rec_c.items():
                        if k != "step":
                            curves.append({"model": cfg["model"], "config": cfg["config_name"],
                                           "seed": cfg["train"]["seed"], "step": rec_c["step"], "metric": k, "value": v})
    if not rows:
        raise UserError(f"{runs_dir} holds no run directory")
    return pd.DataFrame(rows), floors, pd.DataFrame(curves)


def metric_columns(runs: pd.DataFrame) -> list[str]:
    return sorted(c for c in runs.columns if c not in RUN_COLUMNS)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1) and seed count per (model, config) over completed runs, metrics and cost.

    Returns a frame indexed by (model, config) with columns ``<metric>|mean``, ``<metric>|std``,
    ``<metric>|n`` and the cost columns ``train_hours``, ``device_type``, ``img_per_s``, ``seeds``.
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
        row["train_hours"] = float(g["train_seconds"].fillna(0).mean()) / 3600
        row["device_type"] = "GPU" if g["device"].astype(str).str.startswith("cuda").any() else "CPU"
        row["img_per_s"] = float(g["img_per_s"].mean())
        kinds = g["bpd_kind"].dropna().unique() if "bpd_kind" in g else []
        row["bpd_kind"] = kinds[0] if len(kinds) else ""
        out.append(row)
    if not out:
        raise UserError("no completed run (record.json status 'done') to report")
    return pd.DataFrame(out)


def _fmt(v: float) -> str:
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


def _header(metric: str) -> str:
    return f"{family_of(metric).upper()} {'↑' if higher_is_better(metric) else '↓'} ({metric.split(':')[0]})"


def leaderboard_cells(agg: pd.DataFrame, floors: dict, table: str = "generation"
                      ) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Headers, cell strings and bold flags of the leaderboard (floor row first): the generation
    metrics (``table="generation"``), the encoder/translation ones (``capabilities``) or the editing
    ones (``editing``); the side tables drop the rows of models that have none of their metrics.
    Likelihood cells say whether they are exact or a bound."""
    metrics = sorted(m for m in {c.split("|")[0] for c in agg.columns if "|" in c} if table_of(m) == table)
    if table != "generation":
        agg = agg[agg[[f"{m}|n" for m in metrics]].sum(axis=1) > 0] if metrics else agg.iloc[0:0]
    headers = ["model", "config", "seeds", *[_header(m) for m in metrics], "train minutes", "img/s"]
    best = {}
    for m in metrics:
        col = agg[f"{m}|mean"].dropna()
        if len(col):
            best[m] = col.max() if higher_is_better(m) else col.min()
    rows = [[FLOOR_LABEL, "", "", *[_fmt(floors.get(m)) for m in metrics], "", ""]]
    bold = [[False] * len(headers)]
    for _, r in agg.iterrows():
        cells, flags = [r["model"], r["config"], str(r["seeds"])], [False] * 3
        for m in metrics:
            mean, std = r[f"{m}|mean"], r[f"{m}|std"]
            cell = _fmt(mean)
            if not math.isnan(mean):
                cell += f" ± {_fmt(std)}" if not math.isnan(std) else " (1 seed)"
                if family_of(m) == "bpd" and r.get("bpd_kind"):
                    cell += f" [{r['bpd_kind']}]"
            cells.append(cell)
            flags.append(m in best and not math.isnan(mean) and mean == best[m])
        cells += [f"{r['train_hours'] * 60:.2f} {r['device_type']}", f"{r['img_per_s']:.0f}"]
        flags += [False, False]
        rows.append(cells)
        bold.append(flags)
    return headers, rows, bold


def to_markdown(headers, rows, bold) -> str:
    def cell(s, b):
        return f"**{s}**" if b and s else s

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(cell(c, b) for c, b in zip(r, f)) + " |" for r, f in zip(rows, bold)]
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"), ("–", "--")):
        s = s.replace(a, b)
    return s


def to_latex(headers, rows, bold) -> str:
    lines = [r"\begin{tabular}{" + "l" * 3 + "r" * (len(headers) - 3) + "}", r"\toprule",
             " & ".join(_tex_escape(h) for h in headers) + r" \\", r"\midrule"]
    for i, (r, f) in enumerate(zip(rows, bold)):
        cells = [(r"\textbf{" + _tex_escape(c) + "}") if b and c else _tex_escape(c) for c, b in zip(r, f)]
        lines.append(" & ".join(cells) + r" \\")
        if i == 0:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def baseline_from(agg: pd.DataFrame, floors: dict, suite: str) -> dict:
    """The regression baseline: ``{"models": {"model/config": {metric: {mean, std, n, higher_is_better}}}}``."""
    models = {}
    for _, r in agg.iterrows():
        entry = {}
        for m in sorted({c.split("|")[0] for c in agg.columns if "|" in c}):
            if r[f"{m}|n"]:
                std = r[f"{m}|std"]
                entry[m] = {"mean": float(r[f"{m}|mean"]), "std": None if math.isnan(std) else float(std),
                            "n": int(r[f"{m}|n"]), "higher_is_better": higher_is_better(m)}
        models[f"{r['model']}/{r['config']}"] = entry
    return {"suite": suite, "floors": floors, "models": models}


def write_report(results_dir: str | Path, figures: bool = True) -> Path:
    """Write tables, baseline and (optionally) figures to ``results_dir/report``; returns that folder.

    Raises:
        UserError: no runs or no completed run.
    """
    results_dir = Path(results_dir)
    runs, floors, curves = collect(results_dir)
    agg = aggregate(runs)
    out = results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    headers, rows, bold = leaderboard_cells(agg, floors)
    suite_info = read_json(results_dir / "suite.json") or {}
    suite = suite_info.get("suite", results_dir.name)
    done_runs = runs[runs["status"] == "done"]
    hw = sorted(set(done_runs["device_name"].dropna()))
    note = (f"Suite `{suite}`: {len(done_runs)} completed runs; mean ± std over seeds; "
            f"hardware: {', '.join(hw) or 'unknown'}. Floors: real FER2013 test images in place of generated ones.\n\n")
    pending = [g for g in suite_info.get("grid", []) if g not in set(done_runs["run"])]
    if pending:
        note += f"Not completed yet ({len(pending)} of {len(suite_info['grid'])} grid points): {', '.join(pending)}.\n\n"
    write_text(out / "leaderboard.md", note + to_markdown(headers, rows, bold))
    write_text(out / "leaderboard.tex", to_latex(headers, rows, bold))
    for table in TABLES:  # encoder / translation and editing leaderboards of the models that have them
        cheaders, crows, cbold = leaderboard_cells(agg, floors, table=table)
        if len(crows) > 1:
            write_text(out / f"{table}.md", note + to_markdown(cheaders, crows, cbold))
            write_text(out / f"{table}.tex", to_latex(cheaders, crows, cbold))
    csv = agg.copy()
    csv.insert(0, "row", "model")
    floor_row = {"row": "floor", "model": FLOOR_LABEL, "config": ""}
    floor_row.update({f"{m}|mean": v for m, v in floors.items() if f"{m}|mean" in csv.columns})
    csv = pd.concat([pd.DataFrame([floor_row]), csv], ignore_index=True)
    write_text(out / "leaderboard.csv", csv.to_csv(index=False, float_format="%.6g"))
    write_json(out / "baseline.json", baseline_from(agg, floors, suite))
    failed = runs[runs["status"].isin(["failed", "diverged"])]
    if len(failed):
        write_text(out / "failed.md", "\n".join(f"- {r.run}: {r.status}" for r in failed.itertuples()) + "\n")
    if figures:
        from .figures import write_figures

        write_figures(results_dir, runs, agg, floors, curves, out / "figures")
    return out
