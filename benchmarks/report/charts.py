"""The report's charts, drawn from numbers of the result files: training curves (``curve.jsonl``), one
bar chart per metric column, confusion matrices and edit success over strength (``eval.json`` details).

Each takes a :class:`.results.Report`, a writer with ``save(fig, name)`` and the list of
``(figure, why)`` lines of figures that could not be drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from exprbench.core.io import read_json  # noqa: E402

from exprbench.benchmarks.report.columns import is_accuracy, resolve_metric  # noqa: E402
from exprbench.benchmarks.report.results import REFERENCE_LABEL, Report, metric_columns  # noqa: E402
from exprbench.benchmarks.report.tables import column_header  # noqa: E402

Skipped = list[tuple[str, str]]


def _key(model: str, config: str) -> str:
    return f"{model}-{config}" if config else model


def curves(curve_df: pd.DataFrame, w, skipped: Skipped) -> None:
    """The periodic metric over training steps, one line per model/config (band = std over seeds)."""
    if curve_df.empty:
        skipped.append(("curve_*", "no curve.jsonl in the reported run directories"))
        return
    for metric, g in curve_df.groupby("metric"):
        g = g.assign(run=g["model"] + "/" + g["config"])
        fig, ax = plt.subplots(figsize=(4.5, 3))
        sns.lineplot(data=g, x="step", y="value", hue="run", errorbar="sd", marker="o", ax=ax)
        ax.set_ylabel(f"{resolve_metric(metric).family.upper()} ({metric})")
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
        w.save(fig, f"curve_{metric}")


def chance_level(rep: Report, metric: str) -> float | None:
    """1/K for a label-accuracy column (K classes of the entries that have it), else None."""
    if not is_accuracy(metric):
        return None
    agg = rep.agg
    has = agg[pd.to_numeric(agg[f"{metric}|n"], errors="coerce").fillna(0) > 0]
    ks = set(pd.to_numeric(has["classes"], errors="coerce").dropna().astype(int)) if "classes" in has else set()
    return 1.0 / ks.pop() if len(ks) == 1 else None


def bars(rep: Report, w, skipped: Skipped) -> None:
    """One bar chart per metric: mean over seeds per model/config, error bars = std over seeds,
    dashed line = real data (reference), dotted line = chance (1/K) for label accuracies."""
    agg = rep.agg
    for m in metric_columns(agg):
        d = agg[pd.to_numeric(agg[f"{m}|n"], errors="coerce").fillna(0) > 0]
        if d.empty:
            continue
        d = d.assign(label=[f"{a}/{b}" if b else a for a, b in zip(d["model"], d["config"])]).sort_values("label")
        fig, ax = plt.subplots(figsize=(max(3.0, 0.6 * len(d) + 1.5), 2.8))
        mean = pd.to_numeric(d[f"{m}|mean"]).to_numpy()
        std = pd.to_numeric(d[f"{m}|std"], errors="coerce").to_numpy()
        ax.bar(d["label"], mean, color="#4C72B0")
        spread = ~np.isnan(std)  # error bars only where there are >= 2 seeds
        if spread.any():
            ax.errorbar(np.arange(len(d))[spread], mean[spread], yerr=std[spread], fmt="none", ecolor="k",
                        capsize=2, lw=1)
        ref = rep.references.get(m)
        if ref is not None and not math.isnan(ref):
            ax.axhline(ref, ls="--", color="k", lw=1, label=REFERENCE_LABEL)
        chance = chance_level(rep, m)
        if chance is not None:
            ax.axhline(chance, ls=":", color="#C44E52", lw=1.2, label=f"chance (1/{round(1 / chance)})")
        elif is_accuracy(m):
            skipped.append((f"chance line of bar_{m}", "the number of classes is not recorded in these results"))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.set_xlabel("")
        ax.set_ylabel(column_header(m), fontsize=7)
        ax.tick_params(axis="x", rotation=30)
        w.save(fig, f"bar_{m.replace(':', '-')}")


def _ok(e) -> dict | None:
    """The details of an ok eval.json entry, else None."""
    return (e.get("details") or {}) if isinstance(e, dict) and e.get("status") == "ok" else None


def confusion(rep: Report, w, skipped: Skipped) -> None:
    """Row-normalized label-accuracy confusion matrices (summed over seeds) per conditional model."""
    runs = rep.runs
    if runs.empty:
        return
    done = runs[runs["status"] == "done"]
    for (model, config), g in done.groupby(["model", "config"], sort=True):
        total, names, proto = None, None, None
        for path in g["path"]:
            ev = read_json(Path(path) / "eval.json") or {}
            for name, e in (ev.get("metrics") or {}).items():
                det = _ok(e)
                if det is not None and resolve_metric(name).confusion and "confusion_matrix" in det:
                    cm = np.asarray(det["confusion_matrix"], dtype=float)
                    if total is not None and cm.shape != total.shape:
                        continue
                    total = cm if total is None else total + cm
                    names, proto = det.get("class_names"), name
        if total is None:
            continue
        norm = total / np.clip(total.sum(1, keepdims=True), 1, None)
        fig, ax = plt.subplots(figsize=(3.6, 3.2))
        sns.heatmap(norm, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax,
                    xticklabels=names or "auto", yticklabels=names or "auto", annot_kws={"fontsize": 6})
        ax.set_xlabel("evaluator prediction")
        ax.set_ylabel("conditioning label")
        ax.set_title(f"{model}/{config} ({proto})", fontsize=8)
        w.save(fig, f"confusion_{_key(model, config)}")


def edit_success(rep: Report, w, skipped: Skipped) -> None:
    """Edit success (evaluator, mean over classes) vs strength relative to each model's reference
    strength, one line per model, from the edit protocols' ``sweep`` details."""
    rows = []
    if not rep.runs.empty:
        for r in rep.runs[rep.runs["status"] == "done"].itertuples():
            for name, e in ((read_json(Path(r.path) / "eval.json") or {}).get("metrics") or {}).items():
                det = _ok(e)
                if det is not None and resolve_metric(name).sweep and "sweep" in det:
                    sw, ref = det["sweep"], det.get("reference_strength") or 1.0
                    label = f"{r.model}/{r.config}" if r.config else r.model
                    rows += [{"model": label, "strength": s / ref, "success": v}
                             for s, v in zip(sw["strengths"], sw["success_mean"])]
    if rows:
        fig, ax = plt.subplots(figsize=(4.5, 3))
        sns.lineplot(data=pd.DataFrame(rows), x="strength", y="success", hue="model", errorbar="sd",
                     marker="o", ax=ax)
        ax.set_xlabel("edit strength / the model's reference strength")
        ax.set_ylabel("edit success (evaluator), mean over emotions")
        ax.legend(fontsize=7)
        w.save(fig, "edit_success_vs_strength")


def spectra(rep: Report, w, skipped: Skipped) -> None:
    """Radially averaged power spectra (log scale) of every model's samples against the train faces', from the
    details that hold them (``radial``, ``real_radial``: the spectral protocol's; seeds averaged): an
    up-sampling footprint shows as a rise at high radii."""
    rows, real = [], None
    if not rep.runs.empty:
        for r in rep.runs[rep.runs["status"] == "done"].itertuples():
            for name, e in ((read_json(Path(r.path) / "eval.json") or {}).get("metrics") or {}).items():
                det = _ok(e)
                if det is not None and det.get("radial") and det.get("real_radial"):  # a spectral footprint
                    label = f"{r.model}/{r.config}" if r.config else r.model
                    rows += [{"model": label, "radius": i + 1, "power": p} for i, p in enumerate(det["radial"])]
                    real = det.get("real_radial") or real
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(4.5, 3))
    sns.lineplot(data=pd.DataFrame(rows), x="radius", y="power", hue="model", errorbar=None, ax=ax, lw=1)
    if real:
        ax.plot(range(1, len(real) + 1), real, color="black", lw=2, ls="--", label="real faces (train)")
    ax.set_yscale("log")
    ax.set_xlabel("spatial frequency (radius in FFT bins; 24 = Nyquist at 48 px)")
    ax.set_ylabel("mean power (mean-removed images)")
    ax.legend(fontsize=6)
    w.save(fig, "spectra")
