"""Paper figures of a report (seaborn "paper" context, PNG at 200 dpi and PDF with embedded fonts).

Every figure is written as ``<name>.png`` and ``<name>.pdf`` (PDF without a creation date, so
re-running the report on the same results gives the same file).
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
import torch  # noqa: E402

from exprbench.harness import class_grid, load_trained  # noqa: E402

from .report import FLOOR_LABEL, family_of, higher_is_better, metric_columns  # noqa: E402

GRID_SEED = 2024  # latents of every sample figure
PER_CLASS = 8


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)
    plt.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.bbox": "tight", "figure.dpi": 100})


def _save(fig, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", dpi=200, metadata={"Software": None})
    fig.savefig(out / f"{name}.pdf", metadata={"CreationDate": None, "Producer": None})
    plt.close(fig)


def _first_runs(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, config) -> the run directory name of its lowest seed among completed runs."""
    done = runs[runs["status"] == "done"].sort_values(["model", "config", "seed"])
    return {(m, c): g.iloc[0]["run"] for (m, c), g in done.groupby(["model", "config"], sort=True)}


def _samples(run_dir: Path) -> tuple[torch.Tensor, list[str], bool] | None:
    """The fixed-latent class grid of a run, or None for a model that cannot sample (e.g. CCycleGAN)."""
    _, model, spec, _ = load_trained(run_dir, "cpu")
    if "sample" not in model.capabilities:
        return None
    imgs, rows = class_grid(model, spec, PER_CLASS, GRID_SEED)
    return imgs, list(spec.class_names), rows is not None


def _tile(imgs: torch.Tensor, rows: int, cols: int) -> np.ndarray:
    """uint8 (rows*cols) x C x H x W -> H*rows x W*cols (x C) array, no padding."""
    c, h, w = imgs.shape[1:]
    a = imgs.view(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c).numpy()
    return a[:, :, 0] if c == 1 else a


def sample_grids(results_dir: Path, runs: pd.DataFrame, out: Path) -> dict:
    """One figure per model/config: rows = emotions, PER_CLASS columns, fixed latents."""
    cache = {}
    for (model, config), run in _first_runs(runs).items():
        got = _samples(results_dir / "runs" / run)
        if got is None:
            continue
        imgs, names, conditional = got
        cache[(model, config)] = (imgs, names, conditional)
        k = len(names)
        fig, ax = plt.subplots(figsize=(PER_CLASS * 0.5 + 1.0, k * 0.5 + 0.4))
        ax.imshow(_tile(imgs, k, PER_CLASS), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        h = imgs.shape[2]
        ax.set_yticks([h * (i + 0.5) for i in range(k)], names if conditional else [""] * k)
        ax.set_xticks([])
        ax.grid(False)
        ax.set_title(f"{model} / {config}" + ("" if conditional else " (unconditional)"))
        _save(fig, out, f"samples_{model}-{config}")
    return cache


def comparison_sheet(cache: dict, out: Path, per_cell: int = 4) -> None:
    """All models side by side: rows = emotions, one column block of ``per_cell`` samples per model."""
    if not cache:
        return
    keys = sorted(cache)
    names = cache[keys[0]][1]
    k = len(names)
    fig, axes = plt.subplots(1, len(keys), figsize=(len(keys) * per_cell * 0.45 + 1.0, k * 0.45 + 0.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        imgs, _, conditional = cache[key]
        sel = imgs.view(k, PER_CLASS, *imgs.shape[1:])[:, :per_cell].reshape(-1, *imgs.shape[1:])
        ax.imshow(_tile(sel, k, per_cell), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        h = imgs.shape[2]
        ax.set_yticks([h * (i + 0.5) for i in range(k)], names if ax is axes[0][0] else [""] * k)
        ax.grid(False)
        ax.set_title(f"{key[0]}/{key[1]}" + ("" if conditional else "*"), fontsize=8)
    fig.suptitle("samples per emotion (* unconditional: rows are random draws)", fontsize=8)
    _save(fig, out, "comparison")


def curves(curve_df: pd.DataFrame, out: Path) -> None:
    """The periodic metric over training steps, one line per model/config (band = std over seeds)."""
    if curve_df.empty:
        return
    for metric, g in curve_df.groupby("metric"):
        g = g.assign(run=g["model"] + "/" + g["config"])
        fig, ax = plt.subplots(figsize=(4.5, 3))
        sns.lineplot(data=g, x="step", y="value", hue="run", errorbar="sd", marker="o", ax=ax)
        ax.set_ylabel(f"{family_of(metric).upper()} ({metric})")
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
        _save(fig, out, f"curve_{metric}")


def bars(runs: pd.DataFrame, floors: dict, out: Path) -> None:
    """One bar chart per metric: mean over seeds per model/config, error bars = std, dashed floor."""
    done = runs[runs["status"] == "done"].assign(run_name=lambda d: d["model"] + "/" + d["config"])
    for m in metric_columns(runs):
        d = done.dropna(subset=[m]) if m in done else done.iloc[0:0]
        if d.empty:
            continue
        fig, ax = plt.subplots(figsize=(max(3.0, 0.6 * d["run_name"].nunique() + 1.5), 2.8))
        sns.barplot(data=d.sort_values("run_name"), x="run_name", y=m, errorbar="sd", ax=ax, color="#4C72B0")
        if m in floors and not math.isnan(floors[m]):
            ax.axhline(floors[m], ls="--", color="k", lw=1, label=FLOOR_LABEL)
            ax.legend(fontsize=7)
        ax.set_xlabel("")
        ax.set_ylabel(f"{family_of(m).upper()} {'↑' if higher_is_better(m) else '↓'} ({m})")
        ax.tick_params(axis="x", rotation=30)
        _save(fig, out, f"bar_{m.replace(':', '-')}")


def confusion(results_dir: Path, runs: pd.DataFrame, out: Path) -> None:
    """Row-normalized label-accuracy confusion matrices (summed over seeds) per conditional model."""
    from exprbench.io import read_json

    done = runs[runs["status"] == "done"]
    for (model, config), g in done.groupby(["model", "config"], sort=True):
        total, names, proto = None, None, None
        for run in g["run"]:
            ev = read_json(results_dir / "runs" / run / "eval.json") or {}
            for name, e in ev.get("metrics", {}).items():
                det = e.get("details") or {}
                if e.get("status") == "ok" and family_of(name) == "acc_gen" and "confusion_matrix" in det:
                    cm = np.asarray(det["confusion_matrix"], dtype=float)
                    total = cm if total is None else total + cm
                    names, proto = det.get("class_names"), name
        if total is None:
            continue
        norm = total / np.clip(total.sum(1, keepdims=True), 1, None)
        fig, ax = plt.subplots(figsize=(3.6, 3.2))
        sns.heatmap(norm, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax,
                    xticklabels=names, yticklabels=names, annot_kws={"fontsize": 6})
        ax.set_xlabel("evaluator prediction")
        ax.set_ylabel("conditioning label")
        ax.set_title(f"{model}/{config} ({proto})", fontsize=8)
        _save(fig, out, f"confusion_{model}-{config}")


def translation_grids(results_dir: Path, runs: pd.DataFrame, out: Path) -> None:
    """Per model with ``translate``: rows = one real test face per emotion (the first of each, in file
    order), columns = the source then its translation to every emotion."""
    from exprbench.data import load_dataset, to_float, to_uint8

    for (model_name, config), run in _first_runs(runs).items():
        cfg, model, spec, _ = load_trained(results_dir / "runs" / run, "cpu")
        if "translate" not in model.capabilities:
            continue
        try:
            test = load_dataset(cfg.data.path, cfg.data.label_set).split("test")
        except Exception as e:  # noqa: BLE001  (the data may not be here when reporting elsewhere)
            print(f"translation grid of {run} skipped: {e}")
            continue
        k = spec.num_classes
        idx = torch.stack([torch.nonzero(test.labels == c)[0, 0] for c in range(k)])
        x = to_float(test.images[idx])
        cols = [to_uint8(x)] + [to_uint8(model.translate(x, torch.full((k,), t, dtype=torch.long)).cpu())
                                for t in range(k)]
        grid = torch.stack(cols, dim=1).reshape(-1, *x.shape[1:])
        fig, ax = plt.subplots(figsize=((k + 1) * 0.5 + 1.0, k * 0.5 + 0.6))
        ax.imshow(_tile(grid, k, k + 1), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        h = x.shape[2]
        ax.set_yticks([h * (i + 0.5) for i in range(k)], list(spec.class_names))
        ax.set_xticks([h * (i + 0.5) for i in range(k + 1)], ["source", *spec.class_names], rotation=60, fontsize=6)
        ax.grid(False)
        ax.set_title(f"{model_name} / {config}: translations of test faces", fontsize=8)
        _save(fig, out, f"translation_{model_name}-{config}")


def edit_figures(results_dir: Path, runs: pd.DataFrame, out: Path, seed: int = GRID_SEED) -> None:
    """Per model with ``edit``: one fixed latent edited toward every emotion (rows) over the model's
    strength sweep (columns); and, over all of them, edit success vs relative strength from eval.json."""
    from exprbench.data import load_dataset, to_uint8
    from exprbench.io import read_json
    from exprbench.metrics.editing import edit_strengths, fit_edit_directions

    curves_rows = []
    for (model_name, config), run in _first_runs(runs).items():
        cfg, model, spec, _ = load_trained(results_dir / "runs" / run, "cpu")
        if "edit" not in model.capabilities:
            continue
        try:
            if model.edit_mode == "offset":
                train = load_dataset(cfg.data.path, cfg.data.label_set).split("train")
                fit_edit_directions(model, train.images, train.labels)
        except Exception as e:  # noqa: BLE001  (the data may not be here when reporting elsewhere)
            print(f"edit figure of {run} skipped: {e}")
            continue
        sweep, k = edit_strengths(model), spec.num_classes
        with torch.no_grad():
            z = model.edit_start(1, torch.Generator().manual_seed(seed)).repeat(k, 1)
            cols = [to_uint8(torch.cat([model.edit_decode(model.edit_move(z[i : i + 1], i, s)) for i in range(k)])).cpu()
                    for s in sweep]
        grid = torch.stack(cols, dim=1).reshape(-1, *cols[0].shape[1:])
        fig, ax = plt.subplots(figsize=(len(sweep) * 0.5 + 1.2, k * 0.5 + 0.6))
        ax.imshow(_tile(grid, k, len(sweep)), cmap="gray" if spec.channels == 1 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        h, w = spec.height, spec.width
        ax.set_yticks([h * (i + 0.5) for i in range(k)], [f"to {n}" for n in spec.class_names])
        ax.set_xticks([w * (i + 0.5) for i in range(len(sweep))], [f"{s + 0.0:.2g}" for s in sweep], fontsize=6)
        ax.set_xlabel("signed distance d" if model.edit_mode == "distance" else "attribute-vector multiple f")
        ax.grid(False)
        ax.set_title(f"{model_name} / {config}: edits of one latent", fontsize=8)
        _save(fig, out, f"edit_{model_name}-{config}")
        for r in runs[(runs["model"] == model_name) & (runs["config"] == config)]["run"]:
            ev = (results_dir / "runs" / r / "eval.json")
            for name, e in ((read_json(ev) or {}).get("metrics") or {}).items():
                if family_of(name) == "edit" and e.get("status") == "ok":
                    sw = e["details"]["sweep"]
                    ref = e["details"]["reference_strength"]
                    curves_rows += [{"model": f"{model_name}/{config}", "strength": s / ref, "success": v}
                                    for s, v in zip(sw["strengths"], sw["success_mean"])]
    if curves_rows:
        fig, ax = plt.subplots(figsize=(4.5, 3))
        sns.lineplot(data=pd.DataFrame(curves_rows), x="strength", y="success", hue="model", errorbar="sd",
                     marker="o", ax=ax)
        ax.set_xlabel("edit strength / the model's reference strength")
        ax.set_ylabel("edit success (evaluator), mean over emotions")
        ax.legend(fontsize=7)
        _save(fig, out, "edit_success_vs_strength")


def write_figures(results_dir: Path, runs: pd.DataFrame, agg: pd.DataFrame, floors: dict,
                  curve_df: pd.DataFrame, out: Path) -> None:
    """Write every figure of the report into ``out``."""
    _style()
    cache = sample_grids(results_dir, runs, out)
    comparison_sheet(cache, out)
    curves(curve_df, out)
    bars(runs, floors, out)
    confusion(results_dir, runs, out)
    translation_grids(results_dir, runs, out)
    edit_figures(results_dir, runs, out)
