"""Paper figures of a report (seaborn "paper" context, PNG at 200 dpi and PDF with embedded fonts).

Every figure is written as ``<name>.png`` and ``<name>.pdf`` (PDF without a creation date, so
re-running the report on the same results gives the same file). Figures read the result files;
only the sample, translation and edit sheets run a model, and only when the run's checkpoint is
there (the translation and edit sheets also need the dataset). A figure whose inputs are absent is
returned as skipped with the reason, never an error. Sample sheets show the run with the median FID
of a model's seeds (the lower median for an even count), not simply the lowest seed.
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

from exprbench.io import read_json  # noqa: E402

from .report import (ACCURACY_FAMILIES, REFERENCE_LABEL, Report, _header, family_of, kind_of,  # noqa: E402
                     metric_columns)

FLOOR_LABEL = REFERENCE_LABEL
GRID_SEED = 2024  # latents of every sample figure
PER_CLASS = 8
Skipped = list[tuple[str, str]]


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)
    plt.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.bbox": "tight", "figure.dpi": 100})


class _Writer:
    """Saves figures and keeps the list of what was written."""

    def __init__(self, out: Path) -> None:
        self.out, self.written = out, []

    def save(self, fig, name: str) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.out / f"{name}.png", dpi=200, metadata={"Software": None})
        fig.savefig(self.out / f"{name}.pdf", metadata={"CreationDate": None, "Producer": None})
        plt.close(fig)
        self.written.append(name)


def _key(model: str, config: str) -> str:
    return f"{model}-{config}" if config else model


def _has_checkpoint(run_dir: Path) -> bool:
    """A checkpoint, or published inference weights (``weights.safetensors``, see ``exprbench publish``)."""
    return any((run_dir / "checkpoints").glob("step_*.pt")) or (run_dir / "weights.safetensors").is_file()


def _fid_column(runs: pd.DataFrame) -> str | None:
    cols = [m for m in metric_columns(runs) if kind_of(m) == ("fid", None)]
    fer = [m for m in cols if "inception" not in m]
    return (fer or cols or [None])[0]


def _seed(row: pd.Series) -> str:
    s = row.get("seed")
    if isinstance(s, (int, float, np.integer, np.floating)) and not math.isnan(float(s)):
        return f"seed {int(s)}"
    return str(row["run"])


def representative_runs(runs: pd.DataFrame) -> dict[tuple[str, str], tuple[pd.Series, str]]:
    """(model, config) -> (the run with the median FID over its reported seeds, a caption note).

    The FID is the first FER-feature FID protocol in the results; with an even number of seeds the
    lower median (the better of the two middle runs); without any FID the lowest seed.
    """
    done = runs[runs["status"] == "done"] if not runs.empty else runs
    fid = _fid_column(runs) if not runs.empty else None
    out = {}
    for (model, config), g in done.groupby(["model", "config"], sort=True):
        g = g.sort_values(["seed", "run"], kind="stable")
        if fid and fid in g and g[fid].notna().any():
            h = g.dropna(subset=[fid]).sort_values([fid, "seed", "run"], kind="stable")
            row = h.iloc[(len(h) - 1) // 2]
            note = _seed(row) + (f": median {fid} of {len(h)} seeds" if len(h) > 1 else "")
        else:
            row = g.iloc[0]
            note = _seed(row)
        out[(model, config)] = (row, note)
    return out


def _tile(imgs, rows: int, cols: int) -> np.ndarray:
    """uint8 (rows*cols) x C x H x W -> H*rows x W*cols (x C) array, no padding."""
    c, h, w = imgs.shape[1:]
    a = imgs.reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c).numpy()
    return a[:, :, 0] if c == 1 else a


def _model_grid(run_dir: Path):
    """The fixed-latent class grid of a run: (uint8 images, class names, conditional), or None for
    a model that cannot sample."""
    from exprbench.harness import class_grid, load_trained

    _, model, spec, _ = load_trained(run_dir, "cpu")
    if "sample" not in model.capabilities:
        return None
    imgs, rows = class_grid(model, spec, PER_CLASS, GRID_SEED)
    return imgs, list(spec.class_names), rows is not None


def _why(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:200]


def sample_grids(rep: Report, w: _Writer, skipped: Skipped) -> dict:
    """One sheet per model/config (the median-FID seed): rows = emotions, PER_CLASS columns of fixed
    latents from its checkpoint; without a checkpoint the run's newest training sample grid
    (``samples/step_*.png``)."""
    cache = {}
    for (model, config), (row, note) in representative_runs(rep.runs).items():
        name, run_dir = f"samples_{_key(model, config)}", Path(row["path"])
        title = f"{model} / {config}" if config else model
        if row["source"] == "images":
            skipped.append((name, f"an images entry: no model to sample (its images were scored from outside; {run_dir})"))
            continue
        if _has_checkpoint(run_dir):
            try:
                got = _model_grid(run_dir)
            except Exception as e:  # noqa: BLE001  (a report never fails on one figure)
                skipped.append((name, f"could not sample {row['run']}: {_why(e)}"))
                continue
            if got is None:
                continue  # cannot sample (e.g. CCycleGAN): its translation sheet stands for it
            imgs, names, conditional = got
            cache[(model, config)] = (imgs, names, conditional)
            k = len(names)
            fig, ax = plt.subplots(figsize=(PER_CLASS * 0.5 + 1.0, k * 0.5 + 0.4))
            ax.imshow(_tile(imgs, k, PER_CLASS), cmap="gray" if imgs.shape[1] == 1 else None, vmin=0, vmax=255,
                      interpolation="nearest")
            h = imgs.shape[2]
            ax.set_yticks([h * (i + 0.5) for i in range(k)], names if conditional else [""] * k)
            ax.set_xticks([])
            ax.grid(False)
            ax.set_title(f"{title} ({note})" + ("" if conditional else ", unconditional"), fontsize=8)
            w.save(fig, name)
            continue
        pngs = sorted((run_dir / "samples").glob("step_*.png"))
        if not pngs:
            skipped.append((name, f"{row['run']} has no checkpoint, no weights.safetensors and no samples/step_*.png"))
            continue
        from PIL import Image

        img = np.asarray(Image.open(pngs[-1]))
        fig, ax = plt.subplots(figsize=(img.shape[1] / 60 + 0.5, img.shape[0] / 60 + 0.5))
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{title} ({note}; training grid {pngs[-1].name}, no checkpoint here)", fontsize=7)
        w.save(fig, name)
    return cache


def memorisation_pairs(rep: Report, w: _Writer, skipped: Skipped) -> None:
    """Per model (median-FID seed): the closest (sample, train face) pairs that ``evaluate`` wrote
    for a memorisation protocol (``figures_input/<protocol>_pairs.png``)."""
    for (model, config), (row, note) in representative_runs(rep.runs).items():
        ev = read_json(Path(row["path"]) / "eval.json") or {}
        for proto, e in sorted((ev.get("metrics") or {}).items()):
            files = ((e.get("details") or {}).get("pairs_files") or {}) if isinstance(e, dict) else {}
            if family_of(proto) != "mem" or e.get("status") != "ok" or not files.get("png"):
                continue
            name, png = f"memorisation_{_key(model, config)}", Path(row["path"]) / files["png"]
            if not png.is_file():
                skipped.append((name, f"{png} is missing (written by `exprbench evaluate`)"))
                break
            from PIL import Image

            img = np.asarray(Image.open(png))
            fig, ax = plt.subplots(figsize=(img.shape[1] / 60 + 0.5, img.shape[0] / 60 + 0.5))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(f"{model} / {config} ({note}): closest (sample, train face) pairs, {proto}", fontsize=7)
            w.save(fig, name)
            break


def comparison_sheet(cache: dict, w: _Writer, skipped: Skipped, per_cell: int = 4) -> None:
    """All models side by side: rows = emotions, one column block of ``per_cell`` samples per model."""
    if not cache:
        skipped.append(("comparison", "no model could be sampled here (needs the runs' checkpoints or published weights)"))
        return
    keys = sorted(cache)
    names = cache[keys[0]][1]
    k = len(names)
    fig, axes = plt.subplots(1, len(keys), figsize=(len(keys) * per_cell * 0.45 + 1.0, k * 0.45 + 0.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        imgs, _, conditional = cache[key]
        sel = imgs.reshape(k, PER_CLASS, *imgs.shape[1:])[:, :per_cell].reshape(-1, *imgs.shape[1:])
        ax.imshow(_tile(sel, k, per_cell), cmap="gray" if imgs.shape[1] == 1 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_xticks([])
        h = imgs.shape[2]
        ax.set_yticks([h * (i + 0.5) for i in range(k)], names if ax is axes[0][0] else [""] * k)
        ax.grid(False)
        ax.set_title(f"{key[0]}/{key[1]}" + ("" if conditional else "*"), fontsize=8)
    fig.suptitle("samples per emotion, median-FID seed (* unconditional: rows are random draws)", fontsize=8)
    w.save(fig, "comparison")


def curves(curve_df: pd.DataFrame, w: _Writer, skipped: Skipped) -> None:
    """The periodic metric over training steps, one line per model/config (band = std over seeds)."""
    if curve_df.empty:
        skipped.append(("curve_*", "no curve.jsonl in the reported run directories"))
        return
    for metric, g in curve_df.groupby("metric"):
        g = g.assign(run=g["model"] + "/" + g["config"])
        fig, ax = plt.subplots(figsize=(4.5, 3))
        sns.lineplot(data=g, x="step", y="value", hue="run", errorbar="sd", marker="o", ax=ax)
        ax.set_ylabel(f"{family_of(metric).upper()} ({metric})")
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
        w.save(fig, f"curve_{metric}")


def _suite_classes(rep: Report) -> int | None:
    """Classes of the suite's label set when the entries do not say (reports of stored rows)."""
    import tomllib

    for p in (rep.suite_info.get("file"), Path(__file__).parent / "suites" / f"{rep.suite}.toml"):
        if p and Path(p).is_file():
            try:
                label_set = (tomllib.loads(Path(p).read_text()).get("data") or {}).get("label_set", "fer7")
                from exprbench.data import LABEL_SETS

                return len(LABEL_SETS[label_set]) if label_set in LABEL_SETS else None
            except Exception:  # noqa: BLE001
                return None
    return None


def chance_level(rep: Report, metric: str) -> float | None:
    """1/K for an accuracy metric (K classes of the entries that have it), else None."""
    if kind_of(metric)[1] is not None or kind_of(metric)[0] not in ACCURACY_FAMILIES:
        return None
    agg = rep.agg
    has = agg[pd.to_numeric(agg[f"{metric}|n"], errors="coerce").fillna(0) > 0]
    ks = set(pd.to_numeric(has["classes"], errors="coerce").dropna().astype(int)) if "classes" in has else set()
    if not ks:
        k = _suite_classes(rep)
        ks = {k} if k else set()
    return 1.0 / ks.pop() if len(ks) == 1 else None


def bars(rep: Report, w: _Writer, skipped: Skipped) -> None:
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
        ref = rep.floors.get(m)
        if ref is not None and not math.isnan(ref):
            ax.axhline(ref, ls="--", color="k", lw=1, label=REFERENCE_LABEL)
        chance = chance_level(rep, m)
        if chance is not None:
            ax.axhline(chance, ls=":", color="#C44E52", lw=1.2, label=f"chance (1/{round(1 / chance)})")
        elif kind_of(m)[1] is None and kind_of(m)[0] in ACCURACY_FAMILIES:
            skipped.append((f"chance line of bar_{m}", "the number of classes is not recorded"))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.set_xlabel("")
        ax.set_ylabel(_header(m), fontsize=7)
        ax.tick_params(axis="x", rotation=30)
        w.save(fig, f"bar_{m.replace(':', '-')}")


def confusion(rep: Report, w: _Writer, skipped: Skipped) -> None:
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
                det = e.get("details") or {}
                if e.get("status") == "ok" and family_of(name) == "acc_gen" and "confusion_matrix" in det:
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


def _loaded(row: pd.Series, need: str, name: str, skipped: Skipped):
    """(cfg, model, spec) of a run with a checkpoint and capability ``need``; None (skipped) otherwise."""
    run_dir = Path(row["path"])
    if row["source"] == "images" or not _has_checkpoint(run_dir):
        return None
    try:
        from exprbench.harness import load_trained

        cfg, model, spec, _ = load_trained(run_dir, "cpu")
    except Exception as e:  # noqa: BLE001
        skipped.append((name, f"could not load {row['run']}: {_why(e)}"))
        return None
    return (cfg, model, spec) if need in model.capabilities else None


def _capable_without_checkpoint(rep: Report, family: str) -> list[str]:
    """model/config of reported runs with a metric of ``family`` but no checkpoint here."""
    out = []
    for (model, config), (row, _) in representative_runs(rep.runs).items():
        has = any(kind_of(m) == (family, None) and pd.notna(row.get(m)) for m in metric_columns(rep.runs))
        if has and (row["source"] == "images" or not _has_checkpoint(Path(row["path"]))):
            out.append(_key(model, config))
    return out


def translation_grids(rep: Report, w: _Writer, skipped: Skipped) -> None:
    """Per model with ``translate``: rows = one real test face per emotion (the first of each, in file
    order), columns = the source then its translation to every emotion."""
    for key in _capable_without_checkpoint(rep, "translate_acc"):
        skipped.append((f"translation_{key}", "no checkpoint or published weights here to translate with"))
    for (model_name, config), (row, note) in representative_runs(rep.runs).items():
        name = f"translation_{_key(model_name, config)}"
        got = _loaded(row, "translate", name, skipped)
        if got is None:
            continue
        cfg, model, spec = got
        try:
            import torch

            from exprbench.data import load_dataset, to_float, to_uint8

            test = load_dataset(cfg.data.path, cfg.data.label_set).split("test")
            k = spec.num_classes
            idx = torch.stack([torch.nonzero(test.labels == c)[0, 0] for c in range(k)])
            x = to_float(test.images[idx])
            with torch.no_grad():
                cols = [to_uint8(x)] + [to_uint8(model.translate(x, torch.full((k,), t, dtype=torch.long)).cpu())
                                        for t in range(k)]
        except Exception as e:  # noqa: BLE001  (the data may not be here when reporting elsewhere)
            skipped.append((name, f"the test faces are not available: {_why(e)}"))
            continue
        grid = torch.stack(cols, dim=1).reshape(-1, *x.shape[1:])
        fig, ax = plt.subplots(figsize=((k + 1) * 0.5 + 1.0, k * 0.5 + 0.6))
        ax.imshow(_tile(grid, k, k + 1), cmap="gray" if x.shape[1] == 1 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        h = x.shape[2]
        ax.set_yticks([h * (i + 0.5) for i in range(k)], list(spec.class_names))
        ax.set_xticks([h * (i + 0.5) for i in range(k + 1)], ["source", *spec.class_names], rotation=60, fontsize=6)
        ax.grid(False)
        ax.set_title(f"{model_name} / {config} ({note}): translations of test faces", fontsize=8)
        w.save(fig, name)


def edit_figures(rep: Report, w: _Writer, skipped: Skipped, seed: int = GRID_SEED) -> None:
    """Per model with ``edit``: one fixed latent edited toward every emotion (rows) over the model's
    strength sweep (columns); and, over all of them, edit success vs relative strength from eval.json."""
    for key in _capable_without_checkpoint(rep, "edit"):
        skipped.append((f"edit_{key}", "no checkpoint or published weights here to edit with"))
    for (model_name, config), (row, note) in representative_runs(rep.runs).items():
        name = f"edit_{_key(model_name, config)}"
        got = _loaded(row, "edit", name, skipped)
        if got is None:
            continue
        cfg, model, spec = got
        try:
            import torch

            from exprbench.data import load_dataset, to_uint8
            from exprbench.metrics.editing import edit_strengths, fit_edit_directions

            if model.edit_mode == "offset":
                train = load_dataset(cfg.data.path, cfg.data.label_set).split("train")
                fit_edit_directions(model, train.images, train.labels)
            sweep, k = edit_strengths(model), spec.num_classes
            with torch.no_grad():
                z = model.edit_start(1, torch.Generator().manual_seed(seed)).repeat(k, 1)
                cols = [to_uint8(torch.cat([model.edit_decode(model.edit_move(z[i : i + 1], i, s))
                                            for i in range(k)])).cpu() for s in sweep]
        except Exception as e:  # noqa: BLE001  (the data may not be here when reporting elsewhere)
            skipped.append((name, f"the edit directions could not be fitted: {_why(e)}"))
            continue
        grid = torch.stack(cols, dim=1).reshape(-1, *cols[0].shape[1:])
        fig, ax = plt.subplots(figsize=(len(sweep) * 0.5 + 1.2, k * 0.5 + 0.6))
        ax.imshow(_tile(grid, k, len(sweep)), cmap="gray" if spec.channels == 1 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        h, wd = spec.height, spec.width
        ax.set_yticks([h * (i + 0.5) for i in range(k)], [f"to {n}" for n in spec.class_names])
        ax.set_xticks([wd * (i + 0.5) for i in range(len(sweep))], [f"{s + 0.0:.2g}" for s in sweep], fontsize=6)
        ax.set_xlabel("signed distance d" if model.edit_mode == "distance" else "attribute-vector multiple f")
        ax.grid(False)
        ax.set_title(f"{model_name} / {config} ({note}): edits of one latent", fontsize=8)
        w.save(fig, name)
    curve_rows = []
    if not rep.runs.empty:
        for r in rep.runs[rep.runs["status"] == "done"].itertuples():
            for name, e in ((read_json(Path(r.path) / "eval.json") or {}).get("metrics") or {}).items():
                det = e.get("details") or {}
                if family_of(name) == "edit" and e.get("status") == "ok" and "sweep" in det:
                    sw, ref = det["sweep"], det.get("reference_strength") or 1.0
                    label = f"{r.model}/{r.config}" if r.config else r.model
                    curve_rows += [{"model": label, "strength": s / ref, "success": v}
                                   for s, v in zip(sw["strengths"], sw["success_mean"])]
    if curve_rows:
        fig, ax = plt.subplots(figsize=(4.5, 3))
        sns.lineplot(data=pd.DataFrame(curve_rows), x="strength", y="success", hue="model", errorbar="sd",
                     marker="o", ax=ax)
        ax.set_xlabel("edit strength / the model's reference strength")
        ax.set_ylabel("edit success (evaluator), mean over emotions")
        ax.legend(fontsize=7)
        w.save(fig, "edit_success_vs_strength")


def _stored_skips(rep: Report, skipped: Skipped, written: set[str]) -> None:
    """Lines for the figures of rows kept from an earlier leaderboard.csv (no run files here)."""
    if not rep.stored:
        return
    stored = set(rep.stored)
    for _, r in rep.agg.iterrows():
        label = f"{r['model']}/{r['config']}" if r["config"] else r["model"]
        if label not in stored:
            continue
        key = _key(r["model"], r["config"])
        fams = {kind_of(m) for m in metric_columns(rep.agg) if r.get(f"{m}|n", 0)}
        for prefix, fam in (("samples", ("fid", None)), ("confusion", ("acc_gen", None)),
                            ("translation", ("translate_acc", None)), ("edit", ("edit", None))):
            name = f"{prefix}_{key}"
            if fam in fams and name not in written:
                kept = (rep.out / "figures" / f"{name}.png").is_file()
                skipped.append((name, "run files not here (row kept from the earlier leaderboard.csv)"
                                + ("; the earlier report's figure is kept" if kept else "")))


def write_figures(rep: Report, out: Path) -> tuple[list[str], Skipped]:
    """Write every figure of the report into ``out``.

    Returns:
        ``(written, skipped)``: the figure names written (without extension) and, for each figure
        whose inputs are absent, ``(name, reason)``.
    """
    _style()
    w, skipped = _Writer(out), []
    cache = sample_grids(rep, w, skipped) if not rep.runs.empty else {}
    comparison_sheet(cache, w, skipped)
    if not rep.runs.empty:
        memorisation_pairs(rep, w, skipped)
    curves(rep.curves, w, skipped)
    bars(rep, w, skipped)
    confusion(rep, w, skipped)
    if not rep.runs.empty:
        translation_grids(rep, w, skipped)
        edit_figures(rep, w, skipped)
    _stored_skips(rep, skipped, set(w.written))
    done = set(w.written)
    for i, (name, why) in enumerate(skipped):  # say when an earlier report's file stays beside the new ones
        kept = [p.stem for p in out.glob(f"{name}.png") if p.stem not in done] if out.is_dir() else []
        if kept and "figure is kept" not in why:
            skipped[i] = (name, why + ("; the earlier report's figure is kept" if "*" not in name
                                       else f"; the earlier report's {', '.join(sorted(kept))} kept"))
    return w.written, skipped
