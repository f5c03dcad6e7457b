"""A model plugin from a run config (:func:`build_model`) or from a run directory (:func:`load_trained`),
and the fixed-latent sample grid of a trained model (:func:`class_grid`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import RunConfig, load_run_config
from .data import DataSpec, to_uint8
from .errors import ConfigError, UserError
from .rundir import list_checkpoints, load_checkpoint
from .runtime import resolve_device


def build_model(cfg: RunConfig, spec: DataSpec, device: torch.device):
    """Instantiate the plugin of ``cfg`` for ``spec`` on ``device`` (EMA enabled when configured)."""
    from .models import get_model

    cls = get_model(cfg.model)
    channels_last = cfg.train.channels_last
    try:
        model = cls(cfg.model_cfg, spec, device, channels_last)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.train.ema:
        model.enable_ema(cfg.train.ema_decay)
    return model


def load_trained(run_dir: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a run's config and its newest checkpoint into a plugin, ready for sampling.

    A run directory without checkpoints but with published weights (``weights.safetensors``, see
    :mod:`exprbench.weights`: the committed results of a suite) loads those instead.

    Returns:
        ``(cfg, model, spec, step)``.

    Raises:
        UserError: not a run directory, no checkpoint and no weights; CheckpointError: corrupt
            checkpoint, weights that fail their signature or their MANIFEST.sha256 entry, or whose spec,
            model or step is out of bounds or disagrees with config.json (:func:`exprbench.weights.checked_meta`).
    """
    from .weights import FILENAME, checked_meta, load_weights, read_weights

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ckpts = list_checkpoints(run_dir)
    dev = resolve_device(str(device))
    if not ckpts:
        if not (run_dir / FILENAME).exists():
            raise UserError(f"{run_dir} has no checkpoint yet (checkpoints/step_*.pt) and no {FILENAME}")
        loaded = read_weights(run_dir / FILENAME)  # verified (signature, manifest) before anything is built
        raw, _ = checked_meta(loaded[1], run_dir / FILENAME, cfg.model, cfg.data.label_set)
        spec = DataSpec(**{**raw, "class_names": tuple(raw["class_names"])})
        model = build_model(cfg, spec, dev)
        step = load_weights(model, run_dir / FILENAME, loaded)
        model.train(False)
        return cfg, model, spec, step
    state = load_checkpoint(ckpts[-1], map_location=dev)
    spec = DataSpec(**{**state["spec"], "class_names": tuple(state["spec"]["class_names"])})
    model = build_model(cfg, spec, dev)
    model.load_state_dict(state["model"])
    model.train(False)
    return cfg, model, spec, int(state["step"])


def class_grid(model, spec: DataSpec, per_class: int, seed: int,
               sources: torch.Tensor | None = None) -> tuple[torch.Tensor, list[str] | None]:
    """A grid of samples from fixed latents: K rows x ``per_class`` columns.

    Conditional models: one row per class and one noise draw per column, repeated down the rows
    (cell (r, j) is ``model.sample(1, [r])`` with a CPU generator seeded ``seed + j``), so a column
    shows one latent under every label and rows are comparable. Unconditional models: K * per_class
    independent samples from one generator seeded with ``seed``. Models without ``sample`` (a
    translator): column j is real image ``sources[j]`` (float32 in [-1, 1]) translated to every class.

    Returns uint8 images (K*per_class x C x H x W, row-major) and the row labels (None for
    unconditional models).

    Raises:
        UserError: a model that can neither sample nor translate, or a translator without ``sources``.
    """
    k = spec.num_classes
    if "sample" not in model.capabilities:
        if "translate" not in model.capabilities or sources is None:
            raise UserError(f"model {model.name!r} cannot sample; a grid needs 'translate' and source images")
        x = sources[:per_class]
        cells = [model.translate(x[j : j + 1], torch.tensor([r])) for r in range(k) for j in range(x.shape[0])]
        return to_uint8(torch.cat(cells)), list(spec.class_names)
    if "conditional" not in model.capabilities:
        gen = torch.Generator().manual_seed(seed)
        labels = torch.arange(k).repeat_interleave(per_class)
        return to_uint8(model.sample(k * per_class, labels=labels, generator=gen)), None
    cells = [model.sample(1, labels=torch.tensor([r]), generator=torch.Generator().manual_seed(seed + j))
             for r in range(k) for j in range(per_class)]
    return to_uint8(torch.cat(cells)), list(spec.class_names)

