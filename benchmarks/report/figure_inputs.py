"""The figure inputs a run directory holds, and which run stands for a model in a sample sheet.

``exprbench evaluate`` writes, beside ``eval.json``, the images the report composes its figures from::

    figures/samples.png          rows = classes (one row for an unconditional model), one latent per column
    figures/translations.png     rows = source faces, columns = the source then each target class
    figures/edits.png            rows = target classes, columns = edit strengths
    figures/closest_pairs.png    the closest (sample, training face) pairs of a memorisation protocol
    figures/index.json           {"<name>": {"file": "<name>.png", "rows": [labels], "columns": [labels],
                                              "cell": [H, W], "what": "one line"}} for those written

Older runs have none of these; for them the report falls back to what they did write (the training
grid ``samples/step_*.png``, a memorisation protocol's ``figures_input/<protocol>_pairs.png``) and
says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from exprbench.core.errors import UserError
from exprbench.core.io import read_json_object

from exprbench.benchmarks.report.columns import resolve_metric
from exprbench.benchmarks.report.results import metric_columns

FIGURE_INPUTS = ("samples", "translations", "edits", "closest_pairs")
INDEX = Path("figures") / "index.json"


@dataclass(frozen=True)
class FigureInput:
    """One image a run wrote for the report.

    Attributes:
        name: ``samples``, ``translations``, ``edits`` or ``closest_pairs``.
        path: the PNG file. rows, columns: labels of the grid's rows and columns (may be empty).
        cell: ``(H, W)`` of one grid cell in pixels (None: not recorded). what: one line saying what it shows.
        fallback: "" for an input of ``figures/index.json``; else what older file stands in for it.
    """

    name: str
    path: Path
    rows: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    cell: tuple[int, int] | None = None
    what: str = ""
    fallback: str = ""

    def image(self) -> np.ndarray:
        """The PNG as a uint8 array, H x W (gray) or H x W x C."""
        from PIL import Image

        with Image.open(self.path) as im:
            return np.asarray(im.convert("L") if im.mode in ("L", "I", "I;16", "P", "1") else im.convert("RGB"))


def _labels(v, path: Path, name: str, key: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list):
        raise UserError(f"{path}: {name}.{key} must be a list of labels, got {type(v).__name__}")
    return tuple(str(x) for x in v)


def read_index(run_dir: str | Path) -> dict[str, FigureInput]:
    """The figure inputs listed in ``run_dir/figures/index.json`` whose PNG is there (``{}`` without one).

    Raises:
        UserError: a malformed index (naming the file, the entry and the field).
    """
    path = Path(run_dir) / INDEX
    if not path.is_file():
        return {}
    data = read_json_object(path, "a JSON object {name: {file, rows, columns, cell, what}}",
                            hint="re-run `exprbench evaluate`")
    out = {}
    for name, e in data.items():
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise UserError(f"{path}: entry {name!r} must be an object with a 'file' name")
        cell = e.get("cell")
        if cell is not None and not (isinstance(cell, list) and len(cell) == 2
                                     and all(isinstance(c, int) and c > 0 for c in cell)):
            raise UserError(f"{path}: {name}.cell must be [H, W] (positive integers), got {cell!r}")
        png = path.parent / e["file"]
        if png.is_file():
            out[name] = FigureInput(name, png, _labels(e.get("rows"), path, name, "rows"),
                                    _labels(e.get("columns"), path, name, "columns"),
                                    tuple(cell) if cell else None, str(e.get("what") or ""))
    return out


def training_grid(run_dir: str | Path) -> FigureInput | None:
    """The newest sample grid written during training (``samples/step_*.png``), or None."""
    pngs = sorted((Path(run_dir) / "samples").glob("step_*.png"))
    if not pngs:
        return None
    return FigureInput("samples", pngs[-1], what="samples written during training",
                       fallback=f"the training grid samples/{pngs[-1].name}")


def legacy_pairs(run_dir: str | Path, ev: dict) -> FigureInput | None:
    """The closest-pairs PNG an older ``evaluate`` wrote for a memorisation protocol, or None."""
    for proto, e in sorted((ev.get("metrics") or {}).items()):
        if not isinstance(e, dict) or e.get("status") != "ok" or resolve_metric(proto).figure != "closest_pairs":
            continue
        png = ((e.get("details") or {}).get("pairs_files") or {}).get("png")
        if png and (Path(run_dir) / png).is_file():
            return FigureInput("closest_pairs", Path(run_dir) / png, what=f"closest (sample, train face) pairs, {proto}",
                               fallback=f"{png} of {proto}")
    return None


def expected_inputs(ev: dict) -> set[str]:
    """The figure inputs an evaluation with these metrics writes (from the metrics that are ok)."""
    out = set()
    for name, e in (ev.get("metrics") or {}).items():
        if isinstance(e, dict) and e.get("status") == "ok" and resolve_metric(name).figure:
            out.add(resolve_metric(name).figure)
    return out


def _ranking_column(runs: pd.DataFrame) -> str | None:
    cols = [m for m in metric_columns(runs) if ":" not in m and resolve_metric(m).ranks_samples]
    fer = [m for m in cols if "inception" not in m]  # the FER-feature one first
    return (fer or cols or [None])[0]


def seed_label(row: pd.Series) -> str:
    """``seed 2`` (or the run name when the seed is not recorded)."""
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
    rank = _ranking_column(runs) if not runs.empty else None
    out = {}
    for (model, config), g in done.groupby(["model", "config"], sort=True):
        g = g.sort_values(["seed", "run"], kind="stable")
        if rank and rank in g and g[rank].notna().any():
            h = g.dropna(subset=[rank]).sort_values([rank, "seed", "run"], kind="stable")
            row = h.iloc[(len(h) - 1) // 2]
            note = seed_label(row) + (f": median {rank} of {len(h)} seeds" if len(h) > 1 else "")
        else:
            row = g.iloc[0]
            note = seed_label(row)
        out[(model, config)] = (row, note)
    return out
