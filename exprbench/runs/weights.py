"""Published weights: a trained run's inference state as one safetensors file that verifies itself.

``exprbench`` commits the weights its leaderboards come from (``results/<suite>/runs/<point>/``) so
that ``sample``, ``evaluate`` and ``report`` work from a fresh clone without retraining. A checkpoint
holds everything needed to resume (optimizers, D, RNG states: tens of MB); the published file holds
only what inference needs: every net except the plugin's ``training_only_nets`` (the discriminators),
the EMA copy where the run keeps one, and the plugin's extra tensors (e.g. CCycleGAN's source pool).

File layout (``weights.safetensors``): tensors named by their path in ``ModelPlugin.state_dict()``
joined with ``/`` (``nets/G.fc.weight``, ``ema/module.fc.weight``, ``pool``); one metadata entry
``exprbench``, a JSON object (sorted keys, so the file's bytes are reproducible) with ``format``
(:data:`FORMAT`), ``step``, ``model``, ``spec`` (the DataSpec), ``extra`` (non-tensor leaves),
``tensors_sha256`` (the sha256 over every tensor's name, dtype, shape and bytes in name order) and
``sha256``: the signature of the whole file's content, the sha256 over the rest of the metadata (canonical
JSON) and ``tensors_sha256`` (:func:`signature`). Both are checked on every load, so a damaged or edited
file (tensors, spec, step, anything) is refused even without a manifest. Loading never runs code
(safetensors holds tensors and strings only).

Files of the first format (``exprbench-weights/1``) carry ``tensors_sha256`` only, which leaves the
metadata unchecked: they load only when a ``MANIFEST.sha256`` of ``exprbench publish`` lists them with the
file's sha256 (the committed ``results/*/runs/*/weights.safetensors`` are); others are refused with the
advice to publish them again. Whatever the format, a file that a ``MANIFEST.sha256`` lists must have that
sha256 (:func:`manifest_entry`: the manifest in the run folder, or in the results folder above ``runs/``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from exprbench.core.errors import CheckpointError
from exprbench.runs.layout import WEIGHTS

FORMAT = "exprbench-weights/2"
OLD_FORMAT = "exprbench-weights/1"  # tensors_sha256 only: loads when a MANIFEST.sha256 vouches for the file
MANIFEST = "MANIFEST.sha256"
MAX_MANIFEST_BYTES = 16 * 2**20
FILENAME = WEIGHTS  # the run-directory file (see exprbench.runs.layout)


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
    meta = json.loads(json.dumps(meta, default=str))  # as a load reads it back, so the signature is the same
    meta["sha256"] = signature(meta, meta["tensors_sha256"])
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"exprbench": json.dumps(meta, sort_keys=True)})
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


def signature(meta: dict, tensors_digest: str) -> str:
    """The sha256 (hex) that signs a weights file: over its metadata without ``sha256`` as canonical JSON
    (sorted keys, no spaces, ASCII) and the :func:`tensors_sha256` of its tensors, so metadata and tensors
    are checked together."""
    body = {k: v for k, v in meta.items() if k != "sha256"}
    h = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())
    h.update(b"\n" + tensors_digest.encode())
    return h.hexdigest()


def manifest_entry(path: str | os.PathLike) -> tuple[Path, str] | None:
    """``(manifest, sha256)`` where a ``MANIFEST.sha256`` (``sha256sum`` format, as ``exprbench publish``
    writes) lists the weights file ``path``: the run folder's own manifest (entry ``weights.safetensors``), else
    the results folder's above ``runs/`` (entry ``runs/<run>/weights.safetensors``); None when none lists it.

    Raises:
        CheckpointError: a manifest larger than 16 MiB (not one of exprbench publish).
    """
    path = Path(path)
    run = path.parent
    places = [(run / MANIFEST, path.name)]
    if run.parent.name == "runs":
        places.append((run.parent.parent / MANIFEST, f"runs/{run.name}/{path.name}"))
    for manifest, rel in places:
        if not manifest.is_file():
            continue
        if manifest.stat().st_size > MAX_MANIFEST_BYTES:
            raise CheckpointError(f"{manifest}: over {MAX_MANIFEST_BYTES >> 20} MiB, not a manifest of exprbench publish")
        for line in manifest.read_text(errors="replace").splitlines():
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and parts[1].lstrip("*") == rel:
                return manifest, parts[0].lower()
    return None


def _open_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("exprbench", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged headers (json: RecursionError too)
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its exprbench metadata is {type(meta).__name__}, expected a JSON object")
    return tensors, meta


REPUBLISH = "publish it again with `exprbench publish RESULTS_DIR --to DEST`"


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a published weights file, after checking that nothing in it was changed.

    A ``MANIFEST.sha256`` that lists the file (:func:`manifest_entry`) must give its sha256; the file's own
    ``sha256`` (:func:`signature`) must match its metadata and tensors; a file of the old format (tensors
    signed only) needs the manifest. Nothing is built from the file before these checks.

    Raises:
        CheckpointError (one line): not a safetensors file, not this format, a manifest mismatch (both hashes
            named), tensors or metadata that fail their hash, an old-format file no manifest vouches for.
    """
    from exprbench.core.io import file_sha256

    path = Path(path)
    listed = manifest_entry(path)
    if listed is not None and (actual := file_sha256(path)) != listed[1]:
        raise CheckpointError(f"{path}: sha256 {actual} does not match {listed[1]} listed in {listed[0]} "
                              f"(damaged or edited): restore the file or {REPUBLISH}")
    tensors, meta = _open_weights(path)
    fmt = meta.get("format")
    if fmt not in (FORMAT, OLD_FORMAT):
        raise CheckpointError(f"{path}: format {fmt!r}, expected {FORMAT!r}")
    digest = tensors_sha256(tensors)
    if digest != meta.get("tensors_sha256"):
        raise CheckpointError(f"{path}: its tensors do not match the sha256 stored in the file (damaged or edited)")
    if fmt == OLD_FORMAT and listed is None:
        raise CheckpointError(f"{path}: format {OLD_FORMAT!r} signs its tensors only and no {MANIFEST} lists it, "
                              f"so its metadata cannot be verified: {REPUBLISH}")
    if fmt == FORMAT and meta.get("sha256") != signature(meta, digest):
        raise CheckpointError(f"{path}: its metadata or tensors do not match the sha256 stored in the file "
                              f"(damaged or edited): {REPUBLISH}")
    return tensors, meta


def load_weights(model, path: str | os.PathLike, loaded: tuple[dict, dict] | None = None) -> int:
    """Load a published weights file into a freshly built ``model`` (same config); returns its step.

    ``loaded``: the file's ``(tensors, meta)`` as :func:`read_weights` returned them (read again when None).

    Nets absent from the file (the discriminators) keep the fresh model's initialization and are
    not used for inference. A file written from a model with EMA holds only the EMA copy of its
    sampling net; that net gets the EMA weights too, so every inference path reads the same weights.

    Raises:
        CheckpointError: see :func:`read_weights`; or the file does not fit the model (names the key).
    """
    tensors, meta = loaded if loaded is not None else read_weights(path)
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


# bounds of a published DataSpec, checked before a model is built from it (a 4800 x 4800 spec would
# allocate until killed): far above what exprbench trains (FER2013 1 x 48 x 48, CelebA 3 x 64 x 64)
MAX_SIDE, MAX_CLASSES, MAX_NAME = 1024, 1000, 200
SPEC_KEYS = ("channels", "class_names", "height", "label_set", "width")


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _spec_problem(spec: Any) -> str | None:
    """What is wrong with a stored DataSpec dict on its own (shape, bounds, types), or None."""
    if not isinstance(spec, dict) or sorted(spec) != list(SPEC_KEYS):
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        return f"spec {keys} is not a DataSpec (keys {', '.join(SPEC_KEYS)})"
    if not _int_in(spec["channels"], 1, 3) or spec["channels"] == 2:
        return f"spec channels={spec['channels']!r}: expected 1 or 3"
    for k in ("height", "width"):
        if not _int_in(spec[k], 1, MAX_SIDE):
            return f"spec {k}={spec[k]!r}: expected an integer in 1..{MAX_SIDE}"
    names = spec["class_names"]
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_CLASSES or \
            not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in names) or len(set(names)) != len(names):
        return f"spec class_names: expected 1..{MAX_CLASSES} distinct names, got {str(names)[:60]}"
    if not isinstance(spec["label_set"], str) or not 0 < len(spec["label_set"]) <= MAX_NAME:
        return f"spec label_set={str(spec['label_set'])[:60]!r}: expected a label set name"
    return None


def _config_problem(spec: dict, label_set: str) -> str | None:
    """What in a (well-formed) stored DataSpec disagrees with the run's config.json ``data.label_set``, or None."""
    from exprbench.data.celeba import celeba_attribute
    from exprbench.data.fer2013 import LABEL_SETS, SIZE

    same = spec["label_set"] == label_set or (celeba_attribute(label_set) is not None
                                              and celeba_attribute(label_set) == celeba_attribute(spec["label_set"]))
    if not same:
        return f"spec label_set={spec['label_set']!r} but config.json says data.label_set={label_set!r}"
    if label_set in LABEL_SETS:
        shape = (spec["channels"], spec["height"], spec["width"])
        if shape != (1, SIZE, SIZE):
            return f"spec {shape[0]}x{shape[1]}x{shape[2]} but {label_set} images are 1x{SIZE}x{SIZE}"
        if tuple(spec["class_names"]) != LABEL_SETS[label_set]:
            return f"spec class_names {spec['class_names']} are not those of {label_set}"
    return None


def checked_meta(meta: dict, path: str | os.PathLike, model: str, label_set: str) -> tuple[dict, int]:
    """The DataSpec dict and step of a verified weights file's metadata, checked before anything is built:
    the spec's bounds (channels 1 or 3, height and width 1..1024, 1..1000 distinct class names), its
    agreement with the run's config.json (``model``, ``label_set``; a FER2013 label set's classes and
    1 x 48 x 48), and a step in 0..10^12.

    Raises:
        CheckpointError: one line naming the file and the value.
    """
    step = meta.get("step")
    problem = (f"model {meta.get('model')!r} but config.json says {model!r}" if meta.get("model") != model else
               f"step={step!r}: expected an integer in 0..10^12" if not _int_in(step, 0, 10**12) else
               _spec_problem(meta.get("spec")) or _config_problem(meta["spec"], label_set))
    if problem:
        raise CheckpointError(f"{path}: {problem}: not the weights of this run")
    return dict(meta["spec"]), step


def weights_spec(path: str | os.PathLike) -> dict:
    """The DataSpec dict stored in a weights file (after its hash check; bounds checked, see :func:`checked_meta`).

    Raises:
        CheckpointError: see :func:`read_weights`; a spec out of bounds.
    """
    _, meta = read_weights(path)
    problem = _spec_problem(meta.get("spec"))
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    return dict(meta["spec"])
