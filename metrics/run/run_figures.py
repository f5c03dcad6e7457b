"""Figure inputs written by ``evaluate_run`` into ``RUN/figures/``, so a report never needs a model or the data.

* ``samples.png`` (models with ``sample``): the fixed-latent class grid of
  :func:`exprbench.runs.loader.class_grid` (8 columns, latents seeded 2024): rows = classes, one latent per
  column (unconditional models: K x 8 independent samples, rows unlabelled).
* ``translations.png`` (``translate``): rows = one real test face per class (the first of each, in file
  order), columns = the source then its translation to every class.
* ``edits.png`` (``edit``): one fixed latent (seed 2024) edited toward every class (rows) over the model's
  strength sweep (columns).
* ``closest_pairs.png`` (where a memorisation protocol ran): its closest (sample, train face) pairs,
  4 pairs per row with 2-pixel white padding (:func:`~exprbench.metrics.families.memorisation.pairs_grid`).
* ``index.json``: ``{name: {"file", "rows": [labels], "columns": [labels], "cell": [H, W], "what"}}`` of
  the files written. Images are plain uint8 tiles (gray ``L`` or ``RGB`` PNGs), written atomically.

A figure that cannot be computed (e.g. a class without a test face) is left out and listed under
``skipped`` in the returned index, with the reason.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from exprbench.data import to_float, to_uint8
from exprbench.core.io import atomic_open, read_json, write_json

from exprbench.metrics.families.editing import edit_strengths, fit_edit_directions
from exprbench.metrics.families.memorisation import pairs_grid

GRID_SEED = 2024  # latents of every sample figure
PER_CLASS = 8  # columns of the sample grid
FOLDER = "figures"


def tile(images: torch.Tensor, rows: int, cols: int) -> np.ndarray:
    """uint8 (rows*cols) x C x H x W (row-major) -> H*rows x W*cols (x C) array, no padding."""
    c, h, w = images.shape[1:]
    a = images.reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c).numpy()
    return a[:, :, 0] if c == 1 else a


def _png(path, array: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())


def sample_grid(model, spec) -> tuple[torch.Tensor, list[str]]:
    """The class grid (uint8 K*8 x C x H x W) and its row labels ("" for unconditional models)."""
    from exprbench.runs.loader import class_grid

    imgs, rows = class_grid(model, spec, PER_CLASS, GRID_SEED)
    return imgs.cpu(), list(rows) if rows is not None else [""] * spec.num_classes


def translation_grid(model, test) -> torch.Tensor:
    """uint8 K*(K+1) x C x H x W: per class the first test face, then its translation to every class.

    Raises:
        IndexError: a class without a test face.
    """
    k = model.spec.num_classes
    idx = torch.stack([torch.nonzero(test.labels == c)[0, 0] for c in range(k)])
    x = to_float(test.images[idx]).to(model.device)
    with torch.no_grad():
        cols = [to_uint8(x).cpu()] + [to_uint8(model.translate(x, torch.full((k,), t, dtype=torch.long,
                                                                             device=model.device))).cpu()
                                      for t in range(k)]
    return torch.stack(cols, dim=1).reshape(-1, *cols[0].shape[1:])


def edit_grid(model, train) -> tuple[torch.Tensor, list[float]]:
    """uint8 K*S x C x H x W: one latent (seed 2024) edited toward each class (rows) at each strength of the
    model's sweep (columns), and the sweep. Attribute-vector models fit their vectors first (as ``edit_success``)."""
    if model.edit_mode == "offset":
        fit_edit_directions(model, train.images, train.labels)
    sweep, k = edit_strengths(model), model.spec.num_classes
    with torch.no_grad():
        z = model.edit_start(1, torch.Generator().manual_seed(GRID_SEED)).repeat(k, 1)
        cols = [to_uint8(torch.cat([model.edit_decode(model.edit_move(z[i : i + 1], i, s))
                                    for i in range(k)])).cpu() for s in sweep]
    return torch.stack(cols, dim=1).reshape(-1, *cols[0].shape[1:]), sweep


def write_figure_inputs(ctx) -> dict:
    """Write the figure inputs of the evaluated model (in eval mode) into ``ctx.out_dir / "figures"``
    (nothing without one); ``index.json`` keeps an earlier entry this evaluation did not rewrite.

    Args:
        ctx: the evaluation context (model, data, the last memorisation pairs).

    Returns:
        ``{"index": "figures/index.json", "files": [names written], "skipped": {name: reason}}`` ({} when
        there is no output directory).
    """
    if ctx.out_dir is None:
        return {}
    model, data = ctx.model, ctx.data
    caps = set(model.capabilities)
    folder = ctx.out_dir / FOLDER
    names = list(data.class_names)
    index, skipped = {}, {}
    h, w = (int(s) for s in data.images.shape[2:])

    def put(name: str, array: np.ndarray, rows, columns, what: str) -> None:
        _png(folder / f"{name}.png", array)
        index[name] = {"file": f"{name}.png", "rows": list(rows), "columns": list(columns), "cell": [h, w],
                       "what": what}

    with torch.no_grad():
        if "sample" in caps:
            imgs, rows = sample_grid(model, data.spec)
            put("samples", tile(imgs, len(rows), PER_CLASS), rows, [f"latent {j + 1}" for j in range(PER_CLASS)],
                f"fixed latents (seed {GRID_SEED}): rows = classes, one latent per column")
        if "translate" in caps:
            try:
                grid = translation_grid(model, ctx.test)
                put("translations", tile(grid, len(names), len(names) + 1), names, ["source", *names],
                    "rows = the first real test face of each class, columns = the source then its translation")
            except IndexError:
                skipped["translations"] = "a class has no test face"
        if "edit" in caps:
            grid, sweep = edit_grid(model, ctx.train)
            put("edits", tile(grid, len(names), len(sweep)), [f"to {n}" for n in names],
                [f"{s + 0.0:.2g}" for s in sweep],
                f"one latent (seed {GRID_SEED}) edited toward each class over the strength sweep "
                f"({'signed distance d' if model.edit_mode == 'distance' else 'attribute-vector multiple f'})")
    if ctx.closest_pairs is not None:
        cand, pairs = ctx.closest_pairs
        s = cand[[q["sample"] for q in pairs]]
        nb = ctx.train.images[[q["train_index"] for q in pairs]]
        per_row = 4 if len(pairs) > 4 else 1
        put("closest_pairs", pairs_grid(s, nb), [f"pairs {r * per_row + 1}-{min(len(pairs), (r + 1) * per_row)}"
                                                 for r in range((len(pairs) + per_row - 1) // per_row)],
            ["sample", "nearest train face"] * per_row,
            "closest (generated sample, train face) pairs of the memorisation protocol, first channel, "
            "2-pixel white padding")
    if not index:
        return {"skipped": skipped} if skipped else {}
    write_json(folder / "index.json", {**_kept_entries(folder, index), **index})
    return {"index": f"{FOLDER}/index.json", "files": sorted(index), "skipped": skipped}


def _kept_entries(folder, written: dict) -> dict:
    """Entries of an earlier ``index.json`` that this evaluation did not rewrite and whose file is still
    there (``closest_pairs`` after an ``evaluate --metrics cas``), as eval.json keeps earlier results."""
    old = read_json(folder / "index.json")
    if not isinstance(old, dict):
        return {}
    return {k: v for k, v in old.items() if k not in written and isinstance(v, dict)
            and isinstance(v.get("file"), str) and (folder / v["file"]).is_file()}
