"""Verbs of the encoder / translation / editing capabilities: ``exprbench translate``, ``encode``, ``edit``.

    exprbench translate RUN_DIR (--image FILE | --index N) --to EMOTION [--out FILE.png] [--split test] [--data PATH]
    exprbench translate RUN_DIR --grid K [--split test] [--seed S] [--out FILE.png]
    exprbench encode RUN_DIR --image FILE [--out z.pt]
    exprbench edit RUN_DIR --to EMOTION [--strength -3:3:7] [--seed S --rows N | --image FILE] [--from EMOTION] [--keep EMOTION] [--out FILE.png]

Bad input (a missing or unreadable image, an image of the wrong size, an unknown emotion, an index
outside the split, a run whose model lacks the capability) raises a :class:`~exprbench.core.errors.UserError`
subclass: the CLI prints one line and exits 2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from exprbench.core.errors import InputError, UserError
from exprbench.cli.app import command

if TYPE_CHECKING:
    import torch


class CapabilityError(UserError):
    """The run's model lacks the capability a command needs (``translate``, ``encode``)."""


class ImageInputError(InputError):
    """An input image is missing, unreadable, or not of the run's size and channels."""


class LabelError(InputError):
    """An unknown emotion name, or an index outside the chosen split."""


def read_image(path: str | Path, spec) -> torch.Tensor:
    """Read one image file as uint8 1 x C x H x W (C, H, W of ``spec``; gray ``L`` or ``RGB``).

    Raises:
        ImageInputError: missing file, not an image, or not of the spec's size (no resizing: a face of
            another size would be a different input distribution). The size is checked from the header,
            before any pixel is decoded, so a huge image (a decompression bomb) costs nothing.
    """
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ImageInputError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            size = im.size
            if size != (spec.width, spec.height):
                raise ImageInputError(f"{p}: image is {size[0]}x{size[1]}, the model takes {spec.width}x{spec.height} "
                                      "(crop/resize the face first)")
            im.load()
            arr = torch.from_numpy(np.asarray(im.convert("L" if spec.channels == 1 else "RGB")).copy())
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as e:
        raise ImageInputError(f"{p}: cannot read the image ({_one_line(e)})") from None
    x = arr[None, None] if arr.dim() == 2 else arr.permute(2, 0, 1)[None]
    return x.contiguous()


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def out_path(out: Optional[Path], default: Path, run_dir: Optional[Path] = None) -> Path:
    """The output file (``--out``, else ``default`` inside ``run_dir``), checked for writability before
    any work starts.

    Raises:
        UserError: ``run_dir`` is not a run directory (when the default is used), the path is a folder,
            or its folder cannot be written.
    """
    from exprbench.core.io import check_writable_file

    if out is None and run_dir is not None and not (Path(run_dir) / "config.json").exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    return check_writable_file(out or default, "--out" if out else "output")


def emotion_index(name: str, spec) -> int:
    """Index of emotion ``name`` in the run's class names (case-insensitive).

    Raises:
        LabelError: unknown emotion (the message lists the known ones).
    """
    names = [n.lower() for n in spec.class_names]
    if name.lower() not in names:
        raise LabelError(f"unknown emotion {name!r} (known: {', '.join(spec.class_names)})")
    return names.index(name.lower())


def load_capable(run_dir: Path, capability: str, device: str = "cpu"):
    """``load_trained`` plus a capability check: returns ``(cfg, model, spec, step)``.

    Raises:
        UserError: not a run directory / no checkpoint. CapabilityError: the model lacks ``capability``.
    """
    from exprbench.runs.config import load_run_config
    from exprbench.runs.loader import load_trained
    from exprbench.models import get_model

    cfg = load_run_config(run_dir)
    cls = get_model(cfg.model)
    if capability not in cls.capabilities:
        raise CapabilityError(f"model {cfg.model!r} of {run_dir} cannot {capability} "
                              f"(its capabilities: {', '.join(sorted(cls.capabilities)) or 'none'})")
    return load_trained(run_dir, device)


def _split_images(cfg, spec, data: Optional[str], split: str):
    from exprbench.data import load_dataset

    ds = load_dataset(data or cfg.data.path, cfg.data.label_set).split(split)
    if tuple(ds.class_names) != tuple(spec.class_names):
        raise LabelError(f"the data's classes {ds.class_names} differ from the run's {spec.class_names}")
    return ds


@command("translate")
def translate_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory of a model that can translate."),
    image: Optional[Path] = typer.Option(None, "--image", help="Source face image (the run's size, e.g. 48x48 gray)."),
    index: Optional[int] = typer.Option(None, "--index", min=0, help="Source: image N of --split of the dataset."),
    to: Optional[str] = typer.Option(None, "--to", help="Target emotion, e.g. happy."),
    grid: Optional[int] = typer.Option(None, "--grid", min=1, help="Grid mode: K source faces x all emotions."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path (default RUN_DIR/translations/...)."),
    scale: int = typer.Option(1, "--scale", min=1, max=16, help="Upscale the image N x (nearest neighbour) for print; a .pdf --out writes a PDF."),
    split: str = typer.Option("test", "--split", help="Split for --index and --grid: train, val or test."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (default: the run's, $EXPRBENCH_DATA)."),
    seed: int = typer.Option(0, "--seed", help="Seed choosing the --grid source faces."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available, else CPU), cpu or cuda[:i]."),
) -> None:
    """Translate a face to another emotion (source | translation), or write a grid of sources x emotions."""
    import torch

    from exprbench.data import to_float, to_uint8
    from exprbench.core.images import grid_image, save_png

    if grid is None and (image is None) == (index is None):
        raise UserError("give exactly one of --image FILE and --index N (or --grid K)")
    if grid is None and to is None:
        raise UserError("--to EMOTION is required (or use --grid K for all emotions)")
    if grid is not None and (image is not None or index is not None or to is not None):
        raise UserError("--grid takes its faces from --split: do not combine it with --image, --index or --to")
    if out is not None:
        out_path(out, out)
    cfg, model, spec, step = load_capable(run_dir, "translate", device)
    run_dir = Path(run_dir)
    if grid is not None:
        ds = _split_images(cfg, spec, data, split)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(ds), generator=g)[: min(grid, len(ds))]
        src, c_src = ds.images[idx], ds.labels[idx]
        k, n = spec.num_classes, idx.shape[0]
        x = to_float(src).repeat(k, 1, 1, 1)
        targets = torch.arange(k).repeat_interleave(n)
        y = model.translate(x, targets, c_src.repeat(k))
        imgs = torch.cat([src, to_uint8(y).cpu()])
        rows = ["source"] + list(spec.class_names)
        path = save_png(grid_image(imgs, n, rows), out_path(out, run_dir / "translations" / f"grid_{split}_s{seed}.png", run_dir), scale=scale)
        typer.echo(f"wrote {path} ({n} {split} faces x {k} emotions, checkpoint step {step})")
        return
    c_t = emotion_index(to, spec)
    if image is not None:
        src, c_src, what = read_image(image, spec), None, Path(image).stem
    else:
        ds = _split_images(cfg, spec, data, split)
        if index >= len(ds):
            raise LabelError(f"--index {index} is outside the {split} split (0..{len(ds) - 1})")
        src, c_src, what = ds.images[index : index + 1], ds.labels[index : index + 1], f"{split}{index}"
    y = model.translate(to_float(src), torch.tensor([c_t]), c_src)
    path = save_png(grid_image(torch.cat([src, to_uint8(y).cpu()]), 2),
                    out_path(out, run_dir / "translations" / f"{what}_to_{spec.class_names[c_t]}.png", run_dir), scale=scale)
    source = spec.class_names[int(c_src)] if c_src is not None else "unknown"
    typer.echo(f"wrote {path} (source | translation; source emotion {source}, target {spec.class_names[c_t]}, "
               f"checkpoint step {step})")


@command("encode")
def encode_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory of a model with an encoder."),
    image: Path = typer.Option(..., "--image", help="Face image (the run's size, e.g. 48x48 gray)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write z (default RUN_DIR/encodings/<image>.pt)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available, else CPU), cpu or cuda[:i]."),
) -> None:
    """Encode a face: print the predicted emotion (models that predict c) and write z (torch.save)."""
    import torch

    from exprbench.data import atomic_torch_save, to_float

    path = out_path(out, Path(run_dir) / "encodings" / f"{Path(image).stem}.pt", run_dir)
    cfg, model, spec, step = load_capable(run_dir, "encode", device)
    x = read_image(image, spec)
    enc = model.encode(to_float(x))
    rec = {"z": enc["z"][0].cpu(), "image": str(image), "model": cfg.model, "step": step}
    if "c_logits" in enc:
        p = torch.softmax(enc["c_logits"][0].float().cpu(), dim=0)
        k = int(p.argmax())
        rec.update(c_logits=enc["c_logits"][0].cpu(), class_names=list(spec.class_names))
        ranked = ", ".join(f"{spec.class_names[i]} {float(p[i]):.2f}" for i in p.argsort(descending=True)[:3].tolist())
        typer.echo(f"predicted emotion: {spec.class_names[k]} (p={float(p[k]):.2f}; top: {ranked})")
    atomic_torch_save(rec, path)
    typer.echo(f"wrote z ({rec['z'].numel()} dims, |z|={float(rec['z'].norm()):.2f}) to {path}")


def _parse_strength_option(strength: Optional[str]) -> Optional[list[float]]:
    """The ``--strength`` values (None when not given), each a finite number, else a UserError."""
    from exprbench.metrics.families.editing import parse_strengths

    if strength is None:
        return None
    try:
        given = parse_strengths(strength)
    except ValueError as e:
        raise UserError(str(e)) from None
    bad = [s for s in given if not math.isfinite(s)]
    if bad:
        raise UserError(f"--strength {strength}: {bad[0]} is not a finite number")
    return given


def _resolve_edit_emotions(spec, to: str, keep: Optional[str], start_from: Optional[str],
                   image: Optional[Path]) -> tuple[int, Optional[int], Optional[int]]:
    """The class indices of ``--to``, ``--keep`` and ``--from`` (None when not given), checked together."""
    target = emotion_index(to, spec)
    held = emotion_index(keep, spec) if keep is not None else None
    source = emotion_index(start_from, spec) if start_from is not None else None
    if source is not None and image is not None:
        raise UserError("--from moves sampled latents: do not combine it with --image")
    if held == target:
        raise LabelError(f"--keep {keep!r} is the --to emotion: nothing would change")
    return target, held, source


def _make_edit_latents(model, spec, run_dir: Path, image: Optional[Path], seed: int, rows: int,
                        source: Optional[int]) -> tuple[torch.Tensor, list[str], str]:
    """The latents to edit (the --image's, else one per seed, moved to --from first), their row labels and
    the file name part that says what they are."""
    import torch

    from exprbench.data import to_float

    if image is not None:
        try:
            z = model.edit_encode(to_float(read_image(image, spec)))
        except NotImplementedError as e:
            raise CapabilityError(f"{run_dir}: {e}") from None
        return z, ["image"], Path(image).stem
    z = torch.cat([model.edit_start(1, torch.Generator().manual_seed(seed + r)) for r in range(rows)])
    labels, what = [f"seed {seed + r}" for r in range(rows)], f"s{seed}"
    if source is not None:
        z = model.edit_move(z, source, float(model.edit_reference_strength))
        what = f"from_{spec.class_names[source]}_{what}"
    return z, labels, what


@command("edit")
def edit_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory of a model that can edit (interfacegan, flow, vae)."),
    to: str = typer.Option(..., "--to", help="Emotion to edit toward, e.g. happy."),
    strength: Optional[str] = typer.Option(None, "--strength",
                                           help="START:STOP:COUNT or a list; default: the model's sweep "
                                                "(InterFaceGAN signed distance -3:3:7, attribute vectors -1:1:7)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first row's latent (rows use seed, seed+1, ...)."),
    rows: int = typer.Option(4, "--rows", min=1, help="Rows (one latent each) when editing sampled latents."),
    image: Optional[Path] = typer.Option(None, "--image", help="Edit this face instead (models with an encoder)."),
    keep: Optional[str] = typer.Option(None, "--keep", help="Hold this emotion fixed (conditional manipulation)."),
    start_from: Optional[str] = typer.Option(None, "--from",
                                             help="First move the sampled latents to this emotion (by the model's "
                                                  "reference strength), e.g. --from neutral --to happy."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path (default RUN_DIR/edits/<to>_s<seed>.png)."),
    scale: int = typer.Option(1, "--scale", min=1, max=16, help="Upscale the image N x (nearest neighbour) for print; a .pdf --out writes a PDF."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset for attribute vectors (default: the run's)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available, else CPU), cpu or cuda[:i]."),
) -> None:
    """Write an edit strip: rows = latents (seeds or the --image), columns = edit strength toward --to."""
    import torch

    from exprbench.data import to_uint8
    from exprbench.core.images import grid_image, save_png
    from exprbench.metrics.families.editing import edit_strengths, fit_edit_directions

    if out is not None:
        out_path(out, out)
    given = _parse_strength_option(strength)  # checked before the run is loaded
    cfg, model, spec, step = load_capable(run_dir, "edit", device)
    target, held, source = _resolve_edit_emotions(spec, to, keep, start_from, image)
    sweep = given if given is not None else edit_strengths(model)
    if model.edit_mode == "offset":  # attribute vectors come from labelled real images
        ds = _split_images(cfg, spec, data, "train")
        fit_edit_directions(model, ds.images, ds.labels)
    with torch.no_grad():
        z, labels, what = _make_edit_latents(model, spec, run_dir, image, seed, rows, source)
        cols = [to_uint8(model.edit_decode(model.edit_move(z, target, s, held))).cpu() for s in sweep]
    imgs = torch.stack(cols, dim=1).flatten(0, 1)
    head = [f"{s + 0.0:g}" for s in sweep]  # + 0.0: no "-0"
    name = f"{spec.class_names[target]}_{what}" + (f"_keep_{spec.class_names[held]}" if held is not None else "")
    path = save_png(grid_image(imgs, len(sweep), labels, col_labels=head), out_path(out, Path(run_dir) / "edits" / f"{name}.png", run_dir), scale=scale)
    unit = "signed distance" if model.edit_mode == "distance" else "attribute-vector multiple"
    typer.echo(f"wrote {path} ({len(labels)} rows x {len(sweep)} strengths ({unit}) toward {spec.class_names[target]}, "
               f"checkpoint step {step})")
