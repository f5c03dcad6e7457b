"""Published weights: a trained run's inference state as one safetensors file that verifies itself.

``exprbench`` commits the weights its leaderboards come from (``results/<suite>/runs/<point>/``) so
that ``sample``, ``evaluate`` and ``report`` work from a fresh clone without retraining. A checkpoint
holds everything needed to resume (optimizers, D, RNG states: tens of MB); the published file holds
only what inference needs: every net except the plugin's ``training_only_nets`` (the discriminators),
the EMA copy where the run keeps one, and the plugin's extra tensors (e.g. CCycleGAN's source pool).

File layout (``weights.safetensors``): tensors named by their path in ``ModelPlugin.state_dict()``
joined with ``/`` (``nets/G.fc.weight``, ``ema/module.fc.weight``, ``pool``); one metadata entry
``exprbench``, a JSON object (sorted keys, so the file's bytes are reproducible) with ``format``
(:data:`FORMAT`), ``step``, ``model``, ``spec`` (the DataSpec), ``extra`` (non-tensor leaves) and
``tensors_sha256``: the sha256 over every tensor's name, dtype, shape and bytes in name order, checked
on every load, so a damaged or edited file is refused even without a manifest. Loading never runs
code (safetensors holds tensors and strings only).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .rundir import WEIGHTS

FORMAT = "exprbench-weights/1"
FILENAME = WEIGHTS  # the run-directory file (see exprbench.rundir)


def _flatten(state: Any, prefix: str, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    if isinstance(state, dict):
        for k, v in state.items():
            _flatten(v, f"{prefix}/{k}" if prefix else str(k), tensors, extra)
    elif torch.is_tensor(state):
        tensors[prefix] = state.detach().cpu().contiguous().clone()
    else:
        extra[prefix] = state


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 (hex) over name, dtype, shape and raw bytes of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


STORED_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def export_weights(model, spec: dict, step: int, dest: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write ``model``'s inference state to ``dest`` (a ``.safetensors`` path) atomically.

    Args:
        model: a trained :class:`~exprbench.models.base.ModelPlugin`.
        spec: the run's DataSpec as a dict (``dataclasses.asdict``).
        step: the training step the weights come from.
        dest: output file path.
        dtype: how floating-point tensors are stored, ``float32`` or ``float16`` (half the bytes; loading
            casts them back to the model's float32, so outputs differ from the float32 weights by the
            rounding, about 5e-4 relative: evaluate the published file for numbers that come from it).

    Raises:
        ValueError: unknown ``dtype``.

    Returns:
        ``dest`` as a Path.
    """
    from safetensors.torch import save_file

    model.recalibrate_ema()  # publish the EMA net with the BatchNorm statistics of its own weights
    state = model.state_dict()
    state.pop("optimizers", None)
    drop = set(model.training_only_nets)
    ema_only = model.ema is not None and model.ema_net is not None
    if ema_only:  # sampling reads the EMA copy: the training net's weights are not published
        drop.add(model.ema_net)
    state["nets"] = {k: v for k, v in state["nets"].items() if k.split(".", 1)[0] not in drop}
    if dtype not in STORED_DTYPES:
        raise ValueError(f"stored dtype {dtype!r}: use one of {', '.join(STORED_DTYPES)}")
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, Any] = {}
    _flatten(state, "", tensors, extra)
    tensors = {k: t.to(STORED_DTYPES[dtype]) if t.is_floating_point() else t for k, t in tensors.items()}
    meta = {"format": FORMAT, "step": int(step), "spec": spec, "extra": extra, "model": model.name, "ema_only": ema_only,
            "tensors_sha256": tensors_sha256(tensors), "stored_dtype": dtype}
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"exprbench": json.dumps(meta, sort_keys=True, default=str)})
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a published weights file, after checking its ``tensors_sha256``.

    Raises:
        CheckpointError: not a safetensors file, not this format, or the tensors fail their hash.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("exprbench", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if tensors_sha256(tensors) != meta.get("tensors_sha256"):
        raise CheckpointError(f"{path}: its tensors do not match the sha256 stored in the file (damaged or edited)")
    return tensors, meta


def load_weights(model, path: str | os.PathLike) -> int:
    """Load a published weights file into a freshly built ``model`` (same config); returns its step.

    Nets absent from the file (the discriminators) keep the fresh model's initialization and are
    not used for inference. A file written from a model with EMA holds only the EMA copy of its
    sampling net; that net gets the EMA weights too, so every inference path reads the same weights.

    Raises:
        CheckpointError: see :func:`read_weights`; or the file does not fit the model (names the key).
    """
    tensors, meta = read_weights(path)
    state = model.state_dict()
    for name, t in tensors.items():
        node = state
        *parents, leaf = name.split("/")
        for p in parents:
            if not isinstance(node, dict) or p not in node:
                raise CheckpointError(f"{path}: tensor {name!r} does not fit model {model.name!r}")
            node = node[p]
        if leaf not in node and parents:
            raise CheckpointError(f"{path}: tensor {name!r} does not fit model {model.name!r}")
        here = node.get(leaf) if isinstance(node, dict) else None
        node[leaf] = t.to(here.dtype) if torch.is_tensor(here) and here.is_floating_point() and t.is_floating_point() else t
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: does not fit model {model.name!r} ({str(e).splitlines()[0]})") from None
    if meta.get("ema_only") and model.ema is not None:
        model.nets[model.ema_net].load_state_dict(model.ema.module.state_dict())
    return int(meta.get("step", 0))


def weights_spec(path: str | os.PathLike) -> dict:
    """The DataSpec dict stored in a weights file (after its hash check)."""
    _, meta = read_weights(path)
    return dict(meta["spec"])
