"""A model plugin from a run config (:func:`build_model`) or from a run directory (:func:`load_trained`),
and the fixed-latent sample grid of a trained model (:func:`class_grid`)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from exprbench.runs.config import RunConfig, load_run_config
from exprbench.data import DataSpec, to_uint8
from exprbench.core.errors import ConfigError, UserError
from exprbench.core.devices import resolve_device
from exprbench.core.io import read_json
from exprbench.models.base import Resources
from exprbench.runs.layout import WEIGHTS, list_checkpoints, load_checkpoint


def build_model(cfg: RunConfig, spec: DataSpec, device: torch.device, resources: Resources | None = None):
    """Instantiate the plugin of ``cfg`` for ``spec`` on ``device`` (EMA enabled when configured).

    Args:
        resources: the trained parts a plugin that declares :attr:`~exprbench.models.base.ModelPlugin.needs`
            is built on; ``load_run`` defaults to :func:`load_trained` (the layers above add the rest).

    Raises:
        ConfigError: the plugin refuses its config.
    """
    from exprbench.models import get_model

    cls = get_model(cfg.model)
    kwargs = {}
    if cls.needs:
        resources = resources or Resources()
        kwargs["resources"] = replace(resources, load_run=resources.load_run or load_trained)
    try:
        model = cls(cfg.model_cfg, spec, device, cfg.train.channels_last, **kwargs)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.train.ema:
        model.enable_ema(cfg.train.ema_decay)
    return model


def checkpoint_steps(run_dir: str | os.PathLike) -> dict[int, Path]:
    """``{step: path}`` of a run's checkpoints (``checkpoints/step_XXXXXX.pt``), oldest first."""
    out = {}
    for path in list_checkpoints(Path(run_dir)):
        try:
            out[int(path.stem.split("_", 1)[1])] = path
        except (IndexError, ValueError):
            continue
    return dict(sorted(out.items()))


def reads_published_weights(run_dir: str | os.PathLike, checkpoint: str | int | None = None) -> bool:
    """Whether loading ``checkpoint`` reads the run's published ``weights.safetensors``: a committed run
    (weights, no checkpoints) asked for its latest state."""
    return checkpoint in (None, "latest") and (Path(run_dir) / WEIGHTS).exists() and not checkpoint_steps(run_dir)


def select_checkpoint(run_dir: str | os.PathLike, checkpoint: str | int | None = "latest") -> Path:
    """The checkpoint file of ``run_dir`` to load.

    Args:
        run_dir: a run directory.
        checkpoint: a step number (``4``, ``"4"``, ``"step_000004"``) or ``"latest"`` / None (the newest).

    Raises:
        UserError: no checkpoint at all (a published run: only ``latest``); a value that is neither a step nor
            ``latest``; a step the run has no checkpoint of (the message lists the available steps).
    """
    steps = checkpoint_steps(run_dir)
    if not steps:
        if (Path(run_dir) / WEIGHTS).exists():  # a published run: one state, the step its weights carry
            step = (read_json(Path(run_dir) / "status.json") or {}).get("step")
            raise UserError(f"--checkpoint {checkpoint}: {run_dir} is a published run: it keeps only its final weights "
                            f"({WEIGHTS}" + (f", step {step}" if step is not None else "") + "); use --checkpoint latest")
        raise UserError(f"{run_dir} has no checkpoint yet (checkpoints/step_*.pt) and no {WEIGHTS}")
    text = "latest" if checkpoint is None else str(checkpoint).strip()
    if text.lower() == "latest":
        return steps[max(steps)]
    digits = text[5:] if text.lower().startswith("step_") else text
    if not digits.isdigit():
        raise UserError(f"--checkpoint {text!r}: expected a step number or 'latest'")
    step = int(digits)
    if step not in steps:
        raise UserError(f"--checkpoint {step}: {run_dir} has no checkpoint at step {step} "
                        f"(available steps: {', '.join(map(str, steps))})")
    return steps[step]


def checkpoint_source(run_dir: str | os.PathLike, checkpoint: str | int | None = None) -> Path:
    """The file :func:`load_trained` reads for ``checkpoint``: a checkpoint, or the published weights.

    Raises:
        UserError: see :func:`select_checkpoint`.
    """
    if reads_published_weights(run_dir, checkpoint):
        return Path(run_dir) / WEIGHTS
    return select_checkpoint(run_dir, checkpoint)


def load_trained(run_dir: str | os.PathLike, device: str | torch.device = "cpu", checkpoint: str | int | None = None,
                 resources: Resources | None = None):
    """Load a run's config and one saved state into its plugin (eval mode): the one loader of a trained run,
    used by ``sample``, ``evaluate``, the report and InterFaceGAN's base run.

    A run directory without checkpoints but with published weights (``weights.safetensors``, see
    :mod:`exprbench.runs.weights`: the committed results of a suite) loads those for the latest state.

    Args:
        run_dir: a run directory.
        device: ``auto``, ``cpu``, ``cuda`` or a ``torch.device``.
        checkpoint: a step number (``4``, ``"step_000004"``), or ``"latest"`` / None: the newest state.
        resources: see :func:`build_model`.

    Returns:
        ``(cfg, model, spec, step)``.

    Raises:
        UserError: not a run directory, no checkpoint and no weights, a bad or absent ``checkpoint`` step;
            CheckpointError: a corrupt checkpoint, weights that fail their signature or their MANIFEST.sha256
            entry, or whose spec, model or step is out of bounds or disagrees with config.json
            (:func:`exprbench.runs.weights.checked_meta`).
    """
    return load_source(run_dir, checkpoint_source(run_dir, checkpoint), device, resources)


def load_source(run_dir: str | os.PathLike, source: Path, device: str | torch.device = "cpu",
                resources: Resources | None = None):
    """Load the saved state ``source`` of a run (a :func:`checkpoint_source`: a checkpoint or the published
    weights) into its plugin, eval mode: :func:`load_trained` for a caller that also records which file it read.

    Returns and raises as :func:`load_trained`.
    """
    from exprbench.runs.weights import checked_meta, load_weights, read_weights

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    dev = resolve_device(str(device))
    if source.name == WEIGHTS:
        loaded = read_weights(source)  # verified (signature, manifest) before anything is built
        raw, _ = checked_meta(loaded[1], source, cfg.model, cfg.data.label_set)
        spec = DataSpec(**{**raw, "class_names": tuple(raw["class_names"])})
        model = build_model(cfg, spec, dev, resources)
        step = load_weights(model, source, loaded)
        model.train(False)
        return cfg, model, spec, step
    state = load_checkpoint(source, map_location=dev)
    spec = DataSpec(**{**state["spec"], "class_names": tuple(state["spec"]["class_names"])})
    model = build_model(cfg, spec, dev, resources)
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

