"""Paper figures of a report (seaborn "paper" context, PNG at 200 dpi and PDF with embedded fonts),
composed from the files the runs wrote: no model is built and no dataset is read.

The sheets (samples, comparison, translations, edits, closest pairs) are the runs' figure inputs
(see :mod:`.figure_inputs`), labelled from ``figures/index.json``; the charts (curves, bars,
confusion, edit success) are drawn from the numbers (see :mod:`.charts`). A sheet whose input is
absent gets a placeholder panel saying so and a ``(figure, why)`` line that the report prints;
training's own sample grid stands in for a missing ``samples.png``, said as such. Sample sheets
show the run with the median FID of a model's seeds (the lower median for an even count).

Every figure is written as ``<name>.png`` and ``<name>.pdf`` (PDF without a creation date, so
re-running the report on the same results gives the same file).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from exprbench.core.io import atomic_open, read_json, write_text  # noqa: E402

from exprbench.benchmarks.report import charts  # noqa: E402
from exprbench.benchmarks.report.sweeps import sweep_figures  # noqa: E402
from exprbench.benchmarks.report.columns import resolve_metric  # noqa: E402
from exprbench.benchmarks.report.figure_inputs import (FigureInput, expected_inputs, legacy_pairs, read_index, representative_runs,  # noqa: E402
                            training_grid)
from exprbench.benchmarks.report.results import Report, metric_columns  # noqa: E402

PER_CELL = 4  # columns of each model's panel in the comparison figure
Skipped = list[tuple[str, str]]
# figure input -> (figure name prefix, what the sheet shows)
SHEETS = {"samples": ("samples", "samples"), "translations": ("translation", "translations of test faces"),
          "edits": ("edit", "edits of one latent"), "closest_pairs": ("memorisation", "closest (sample, train face) pairs")}


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)
    plt.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.bbox": "tight", "figure.dpi": 100})


class _Writer:
    """Saves figures and keeps the list of what was written."""

    def __init__(self, out: Path) -> None:
        self.out, self.written = out, []

    def save(self, fig, name: str) -> None:
        """Write ``name.png`` and ``name.pdf`` atomically (a temporary sibling renamed into place: a report
        killed or out of disk mid-write leaves the previous figure whole, never a truncated one)."""
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_open(self.out / f"{name}.png", "wb") as fh:
                fig.savefig(fh, format="png", dpi=200, metadata={"Software": None})
            with atomic_open(self.out / f"{name}.pdf", "wb") as fh:
                fig.savefig(fh, format="pdf", metadata={"CreationDate": None, "Producer": None})
        finally:
            plt.close(fig)
        self.written.append(name)


def _key(model: str, config: str) -> str:
    return f"{model}-{config}" if config else model


def _title(model: str, config: str) -> str:
    return f"{model} / {config}" if config else model


def _show(ax, img: np.ndarray, rows=(), columns=(), ylabels: bool = True) -> None:
    """``img`` with its grid's row/column labels at the cell centres (no labels: no ticks)."""
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.grid(False)
    h, w = img.shape[:2]
    ax.set_xticks([w / len(columns) * (i + 0.5) for i in range(len(columns))] if columns else [])
    if columns:
        ax.set_xticklabels(list(columns), rotation=60 if max(map(len, columns)) > 3 else 0, fontsize=6)
    ax.set_yticks([h / len(rows) * (i + 0.5) for i in range(len(rows))] if rows else [])
    if rows:
        ax.set_yticklabels(list(rows) if ylabels else [""] * len(rows), fontsize=7)


def _placeholder(ax, text: str) -> None:
    """A grey panel saying what is missing."""
    ax.set_facecolor("#eeeeee")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, wrap=True, transform=ax.transAxes, color="#555555")


def _missing(w: _Writer, skipped: Skipped, name: str, title: str, why: str) -> None:
    """A placeholder figure ``name`` and its line in the report."""
    fig, ax = plt.subplots(figsize=(3.2, 1.6))
    _placeholder(ax, "no figure input:\n" + why.replace("; ", ";\n"))
    ax.set_title(title, fontsize=8)
    w.save(fig, name)
    skipped.append((name, why))


def _sheet(w: _Writer, name: str, title: str, fi: FigureInput) -> None:
    img = fi.image()
    fig, ax = plt.subplots(figsize=(img.shape[1] / 60 + 1.2, img.shape[0] / 60 + 0.8))
    _show(ax, img, fi.rows, fi.columns)
    if not (fi.rows or fi.columns):
        ax.set_axis_off()
    ax.set_title(title, fontsize=7 if len(title) > 60 else 8)
    w.save(fig, name)


def _inputs(row) -> tuple[dict[str, FigureInput], set[str], dict]:
    """(figure inputs of a run, those its metrics would have written, its eval.json)."""
    run_dir = Path(row["path"])
    ev = read_json(run_dir / "eval.json") or {}
    return read_index(run_dir), expected_inputs(ev), ev


def sheets(rep: Report, w: _Writer, skipped: Skipped) -> dict[tuple[str, str], FigureInput | None]:
    """Per model/config (the median-FID seed): its sample, translation, edit and closest-pairs sheets
    from the run's figure inputs; returns each model's samples input (None: none) for the comparison."""
    samples: dict[tuple[str, str], FigureInput | None] = {}
    for (model, config), (row, note) in representative_runs(rep.runs).items():
        have, expected, ev = _inputs(row)
        run = row["run"]
        for kind in ("samples", "translations", "edits", "closest_pairs"):
            prefix, what = SHEETS[kind]
            name = f"{prefix}_{_key(model, config)}"
            fi = have.get(kind)
            why = f"{run}/figures/{kind}.png is not there (written by `exprbench evaluate`)"
            if row["source"] == "images":
                why = f"an images entry without figures/{kind}.png ({run}: its images were scored from outside)"
            if fi is None and kind == "samples" and row["source"] != "images" and kind in expected:
                fi = training_grid(row["path"])  # only for a model whose sampling protocols ran
            if fi is None and kind == "closest_pairs":
                fi = legacy_pairs(row["path"], ev)
            if kind == "samples" and (fi is not None or kind in expected):
                samples[(model, config)] = fi
            if fi is None:
                if kind in expected:
                    _missing(w, skipped, name, _title(model, config), why)
                continue
            title = f"{_title(model, config)} ({note}): {fi.what or what}"
            if kind == "samples" and unconditional(fi):
                title += ", unconditional"
            if fi.fallback:
                title += f"\n[{fi.fallback}: no figures/{kind}.png in this run]"
                skipped.append((name, f"{why}; {fi.fallback} is shown instead"))
            _sheet(w, name, title, fi)
    return samples


def unconditional(fi: FigureInput) -> bool:
    """A sample grid whose rows are not classes: one row, or rows without labels (an unconditional G
    drawn on the conditional models' 7-row grid)."""
    return len(fi.rows) <= 1 or not any(fi.rows)


def _crop(fi: FigureInput, img: np.ndarray, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """The first ``n`` columns of a grid image (all of it when the grid is not described)."""
    if not fi.columns or len(fi.columns) <= n:
        return img, fi.columns
    cw = fi.cell[1] if fi.cell else img.shape[1] // len(fi.columns)
    pitch = img.shape[1] / len(fi.columns)
    return img[:, : int(round(pitch * (n - 1))) + cw], fi.columns[:n]


def comparison_sheet(samples: dict, w: _Writer, skipped: Skipped, per_cell: int = PER_CELL) -> None:
    """All models side by side, one panel per model from its ``samples.png`` (the first ``per_cell``
    latents; rows = classes); a placeholder panel for a model without one."""
    if not samples:
        skipped.append(("comparison", "no reported run here has sample images (figures/samples.png)"))
        return
    keys = sorted(samples)
    fig, axes = plt.subplots(1, len(keys), figsize=(len(keys) * per_cell * 0.45 + 1.0, 7 * 0.45 + 0.6),
                             squeeze=False)
    missing, labelled = [], None  # class names are written once, left of the first panel that has them
    for ax, key in zip(axes[0], keys):
        fi = samples[key]
        label = f"{key[0]}/{key[1]}" if key[1] else key[0]
        if fi is None or fi.fallback:
            _placeholder(ax, "no samples.png")
            ax.set_title(label, fontsize=8)
            missing.append(label)
            continue
        img, _ = _crop(fi, fi.image(), per_cell)
        uncond = unconditional(fi)
        show = not uncond and tuple(fi.rows) != labelled  # other panels' labels would overlap their left neighbour
        _show(ax, img, () if uncond else fi.rows, (), ylabels=show)
        labelled = tuple(fi.rows) if show else labelled
        ax.set_xticks([])
        ax.set_title(label + ("*" if uncond else ""), fontsize=8)
    fig.suptitle("samples per class (rows as labelled at the left), median-FID seed "
                 "(* unconditional: rows are random draws, not classes)", fontsize=8)
    w.save(fig, "comparison")
    if missing:
        skipped.append(("comparison", f"placeholder panels for {', '.join(missing)} (no figures/samples.png)"))


def _stored_skips(rep: Report, skipped: Skipped, written: set[str]) -> None:
    """Lines for the figures of rows kept from an earlier leaderboard.csv (no run files here)."""
    if not rep.stored:
        return
    stored = set(rep.stored)
    for _, r in rep.agg.iterrows():
        label = f"{r['model']}/{r['config']}" if r["config"] else r["model"]
        if label not in stored:
            continue
        specs = [resolve_metric(m) for m in metric_columns(rep.agg) if ":" not in m and r.get(f"{m}|n", 0)]
        prefixes = {SHEETS[s.figure][0] for s in specs if s.figure} | {"confusion" for s in specs if s.confusion}
        for prefix in [p for p in ("samples", "confusion", "translation", "edit", "memorisation") if p in prefixes]:
            name = f"{prefix}_{_key(r['model'], r['config'])}"
            if name not in written:
                kept = (rep.out / "figures" / f"{name}.png").is_file()
                skipped.append((name, "run files not here (row kept from the earlier leaderboard.csv)"
                                + ("; the earlier report's figure is kept" if kept else "")))


FLUSH_EVERY = 12  # figures between two \clearpage in figures.tex (LaTeX holds at most 18 floats waiting)


def latex_snippets(names: list[str], suite: str) -> str:
    """One ``figure`` environment per written figure (``\\includegraphics`` of its PDF, relative to the report
    folder, a caption to edit and a label ``fig:<suite>-<name>``), to paste into a paper (needs graphicx).

    A ``\\clearpage`` after every :data:`FLUSH_EVERY` figures, so that the whole file compiles as it is
    (figures one after the other with no text between them would exceed LaTeX's 18 waiting floats)."""
    blocks = ["% exprbench report figures: paste what you use; paths are relative to the report folder; "
              "needs \\usepackage{graphicx}\n"]
    for i, name in enumerate(sorted(names)):
        label = "".join(ch if ch.isalnum() or ch in "-:" else "-" for ch in f"{suite}-{name}")
        if i and i % FLUSH_EVERY == 0:
            blocks.append("\\clearpage % place the figures so far (at most 18 may wait)\n")
        blocks.append("\\begin{figure}[htbp]\n\\centering\n"
                      f"\\includegraphics[width=\\linewidth]{{figures/{name}.pdf}}\n"
                      f"\\caption{{{_tex_caption(name)} (suite {_tex_caption(suite)}).}}\n\\label{{fig:{label}}}\n"
                      "\\end{figure}\n")
    return "\n".join(blocks)


def _tex_caption(text: str) -> str:
    """A figure or suite name as caption text: underscores as spaces, LaTeX's special characters escaped."""
    for a, b in (("\\", " "), ("_", " "), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("$", r"\$"), ("{", " "),
                 ("}", " "), ("~", "-"), ("^", " ")):
        text = text.replace(a, b)
    return text


def write_figures(rep: Report, out: Path) -> tuple[list[str], Skipped]:
    """Write every figure of the report into ``out``.

    Returns:
        ``(written, skipped)``: the figure names written (without extension) and, for each figure
        whose input is absent (or stood in for), ``(name, reason)``.
    """
    _style()
    w, skipped = _Writer(out), []
    samples = sheets(rep, w, skipped) if not rep.runs.empty else {}
    if not rep.runs.empty:
        comparison_sheet(samples, w, skipped)
    else:
        skipped.append(("comparison", "no run directory here (rows kept from an earlier leaderboard.csv)"))
    charts.curves(rep.curves, w, skipped)
    charts.bars(rep, w, skipped)
    charts.confusion(rep, w, skipped)
    charts.edit_success(rep, w, skipped)
    charts.spectra(rep, w, skipped)
    sweep_figures(rep, w, skipped)
    _stored_skips(rep, skipped, set(w.written))
    write_text(out / "figures.tex", latex_snippets(w.written, rep.suite))
    done = set(w.written)
    for i, (name, why) in enumerate(skipped):  # say when an earlier report's file stays beside the new ones
        kept = [p.stem for p in out.glob(f"{name}.png") if p.stem not in done] if out.is_dir() else []
        if kept and "figure is kept" not in why:
            skipped[i] = (name, why + ("; the earlier report's figure is kept" if "*" not in name
                                       else f"; the earlier report's {', '.join(sorted(kept))} kept"))
    return w.written, skipped
