"""Run directories as the evaluation reads them: which dataset, which checkpoint, the trained model, the
training data's fingerprint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from exprbench.errors import DataError, UserError


def resolve_eval_data_path(data, cfg_path) -> str:
    """Dataset path for an evaluation: ``data``, else the run's ``data.path``, else ``$EXPRBENCH_DATA``.

    Raises:
        DataError: an explicit path that does not exist, or none of the candidates exists.
    """
    if data is not None:
        if not Path(data).expanduser().exists():
            raise DataError(f"dataset not found: {data}")
        return str(data)
    tried = []
    for cand in (cfg_path, os.environ.get("EXPRBENCH_DATA") or None):
        if cand:
            tried.append(str(cand))
            if Path(cand).expanduser().exists():
                return str(cand)
    raise DataError("no dataset for the evaluation: pass --data PATH or set EXPRBENCH_DATA"
                    + (f" (not found: {', '.join(tried)})" if tried else ""))


def checkpoint_steps(run_dir: str | os.PathLike) -> dict[int, Path]:
    """``{step: path}`` of a run's checkpoints (``checkpoints/step_XXXXXX.pt``), oldest first."""
    from exprbench.rundir import list_checkpoints

    out = {}
    for path in list_checkpoints(Path(run_dir)):
        try:
            out[int(path.stem.split("_", 1)[1])] = path
        except (IndexError, ValueError):
            continue
    return dict(sorted(out.items()))


def select_checkpoint(run_dir: str | os.PathLike, checkpoint: str | int | None = "latest") -> Path:
    """The checkpoint file of ``run_dir`` to evaluate.

    Args:
        run_dir: a run directory.
        checkpoint: a step number (``4``, ``"4"``, ``"step_000004"``) or ``"latest"`` / None (the newest).

    Raises:
        UserError: no checkpoint at all; a value that is neither a step nor ``latest``; a step the run
            has no checkpoint of (the message lists the available steps).
    """
    run_dir = Path(run_dir)
    steps = checkpoint_steps(run_dir)
    if not steps:
        from exprbench.io import read_json
        from exprbench.rundir import WEIGHTS

        if (run_dir / WEIGHTS).exists():  # a published run: one state, the step its weights carry
            step = (read_json(run_dir / "status.json") or {}).get("step")
            raise UserError(f"--checkpoint {checkpoint}: {run_dir} is a published run: it keeps only its final weights "
                            f"({WEIGHTS}" + (f", step {step}" if step is not None else "") + "); use --checkpoint latest")
        raise UserError(f"{run_dir} has no checkpoint yet (checkpoints/step_*.pt)")
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


def reads_published_weights(run_dir: str | os.PathLike, checkpoint: str | int | None) -> bool:
    """Whether the evaluation of ``checkpoint`` reads the run's published ``weights.safetensors``: a committed
    run (weights, no checkpoints) asked for its latest state."""
    from exprbench.rundir import WEIGHTS

    return checkpoint in (None, "latest") and (Path(run_dir) / WEIGHTS).exists() and not checkpoint_steps(run_dir)


def load_for_eval(run_dir: str | os.PathLike, checkpoint: str | int | None, device: torch.device):
    """Load a run's config and the chosen checkpoint into its plugin (eval mode), as ``load_trained`` does
    (a run with no checkpoints but published weights, ``weights.safetensors``, loads those).

    Returns:
        ``(cfg, model, spec, step, path)``.

    Raises:
        UserError: see :func:`select_checkpoint`; CheckpointError: a corrupt checkpoint.
    """
    from exprbench.data import DataSpec
    from exprbench.config import load_run_config
    from exprbench.rundir import WEIGHTS, load_checkpoint
    from exprbench.trained import build_model, load_trained

    run_dir = Path(run_dir)
    if reads_published_weights(run_dir, checkpoint):
        cfg, model, spec, step = load_trained(run_dir, device)  # a committed run: its published weights
        return cfg, model, spec, step, run_dir / WEIGHTS
    cfg = load_run_config(run_dir)
    path = select_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path, map_location=device)
    spec = DataSpec(**{**state["spec"], "class_names": tuple(state["spec"]["class_names"])})
    model = build_model(cfg, spec, device)
    model.load_state_dict(state["model"])
    model.train(False)
    return cfg, model, spec, int(state["step"]), path


def run_train_fingerprint(run_dir: Path) -> str | None:
    """The data fingerprint a run was trained on: ``status.json``'s ``data_fingerprint``, else the one in
    ``config.json`` (``data.fingerprint``), else None."""
    for name, get in (("status.json", lambda d: d.get("data_fingerprint")),
                      ("config.json", lambda d: (d.get("data") or {}).get("fingerprint"))):
        f = Path(run_dir) / name
        if f.exists():
            try:
                fp = get(json.loads(f.read_text()))
            except (json.JSONDecodeError, AttributeError):
                fp = None
            if fp:
                return str(fp)
    return None


def fingerprint_warnings(train_fp: str | None, eval_fp: str, path) -> list[str]:
    """One warning line when the run's training data fingerprint differs from the evaluation data's."""
    if train_fp is None or train_fp == eval_fp:
        return []
    return [f"warning: the run was trained on data with fingerprint {train_fp[:12]}, the evaluation data {path} has "
            f"{eval_fp[:12]}: its numbers compare the model with other data than it learned from"]


def check_fingerprint(run_dir: Path, train_fp: str | None, eval_fp: str, path, strict: bool) -> list[str]:
    """The data-identity check of an evaluation: the warning lines (see :func:`fingerprint_warnings`), or
    with ``strict`` a refusal.

    Raises:
        UserError: ``strict`` and the run's training data fingerprint (status.json ``data_fingerprint``)
            differs from the evaluation data's.
    """
    warnings = fingerprint_warnings(train_fp, eval_fp, path)
    if warnings and strict:
        raise UserError(f"{run_dir}: trained on data {train_fp[:12]}, the evaluation data {path} is {eval_fp[:12]} "
                        "(--strict refuses; drop --strict to evaluate with a warning, or pass --data with the "
                        "training data)")
    return warnings


def unfinished_warnings(run_dir: Path, step: int, budget_steps: int | None) -> list[str]:
    """A warning line when the evaluated checkpoint is not the end of a completed run (status.json not
    ``completed``, or ``step`` short of the config's ``train.steps``), else none."""
    from exprbench.io import read_json

    status = (read_json(Path(run_dir) / "status.json") or {}).get("status")
    short = budget_steps is not None and step < budget_steps
    if status in (None, "completed") and not short:
        return []
    what = f"status {status!r}" if status not in (None, "completed") else "completed"
    return [f"the run is unfinished ({what}, checkpoint step {step:,}" + (f" of {budget_steps:,}" if budget_steps else "")
            + "): these numbers describe a partly trained model"]

