"""The run directory: its layout (documented here and nowhere else), and reading and writing its files.

The harness (training), the metrics (evaluation) and the report share this module; it imports no
other exprbench module than errors and io (no model, no dataset, no config). A run directory holds::

    config.json          the resolved RunConfig (exprbench.runs.config; written by the harness, read back
                         exactly by exprbench.runs.config.load_run_config). A string value that starts with
                         ``{runs}/`` names a sibling run directory (``{runs}`` = this run's parent folder;
                         ``exprbench publish`` writes InterFaceGAN's ``model.base_run`` that way)
    identity.json        what defines a suite grid point's results (benchmarks runner)
    status.json          the harness's state: status (one of RUN_STATUSES: running | completed |
                         interrupted | diverged | failed), step, train_seconds, img/s, device, data
                         fingerprint, versions; "failed" with ``error`` (one line) when training raised
                         (a full disk, a bug). A process killed outright leaves "running". The runner's
                         own verdict on a grid point is in record.json.
    record.json          the benchmark runner's record of a grid point: done | failed | diverged, wall
                         times, img/s, peak memory, device (benchmarks runner)
    train.jsonl          one record per log interval: step, epoch, losses (mean over the interval), img_s
    curve.jsonl          periodic evaluation during training: step, metric values
    tb/                  TensorBoard events (same scalars, sample sheets)
    samples/step_XXXXXX.png   sample grids, one row per class, fixed z (the same latents at every step)
    checkpoints/step_XXXXXX.pt (+ .sha256)  nets, optimizers, EMA, RNG states, data order, step, data spec
    weights.safetensors  published weights of a run whose checkpoints are not kept (exprbench.runs.weights)
    eval.json            the evaluations: {protocol: {value, std?, n_samples, seed, extractor, ...}}
    source.json          provenance of images scored with ``evaluate --images`` (no config.json then)
    figures/             figure inputs written by evaluate, read by the report: samples.png,
                         translations.png, edits.png, closest_pairs.png, and index.json naming them
    claim.lock, claim.json, attempts.jsonl   a runner's claim on the directory (benchmarks claims)
    translations/, encodings/, edits/        outputs of ``exprbench translate|encode|edit``

Every file is written atomically (:mod:`exprbench.core.io`). Checkpoints carry their own sha256 and load with
``torch.load(..., weights_only=True)`` after it is checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable

from exprbench.core.errors import CheckpointError, UserError
from exprbench.core.io import atomic_torch_save, file_sha256, json_safe, no_space, read_json, read_json_object, write_json, write_text

CONFIG = "config.json"
IDENTITY = "identity.json"
STATUS = "status.json"
RECORD = "record.json"
TRAIN_LOG = "train.jsonl"
CURVE_LOG = "curve.jsonl"
TENSORBOARD = "tb"
SAMPLES = "samples"
CHECKPOINTS = "checkpoints"
WEIGHTS = "weights.safetensors"
EVAL = "eval.json"
SOURCE = "source.json"
FIGURES = "figures"
FIGURE_INDEX = "index.json"
CLAIM_LOCK, CLAIM_INFO, ATTEMPTS = "claim.lock", "claim.json", "attempts.jsonl"

RUN_STATUSES = ("running", "completed", "interrupted", "diverged", "failed")
CKPT_GLOB = "step_*.pt"
CKPT_FORMAT = "exprbench-checkpoint/2"


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a ``config.json`` (a training run, not an ``--images`` evaluation)."""
    return (Path(path) / CONFIG).is_file()


def config_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CONFIG


def status_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / STATUS


def eval_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / EVAL


def figures_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / FIGURES


def sample_sheet_path(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / SAMPLES / f"step_{step:06d}.png"


# --------------------------------------------------------------------------------------------
# config and status


def write_config(run_dir: str | os.PathLike, config: dict) -> Path:
    """Write ``config.json`` (a ``RunConfig.to_dict()``) atomically; returns its path."""
    path = config_path(run_dir)
    write_json(path, config)
    return path


def read_config(run_dir: str | os.PathLike) -> dict:
    """``run_dir/config.json`` as a dict (a ``RunConfig.to_dict()``; :func:`exprbench.runs.config.load_run_config`
    turns it back into a RunConfig, which needs the model plugins).

    Raises:
        UserError: no such run directory / config, or malformed JSON (names the line).
    """
    path = config_path(run_dir)
    if not path.exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    return read_json_object(path, "a JSON object (a run config)")


RUNS_PLACEHOLDER = "{runs}"


def _map_strings(value: Any, fn) -> Any:
    """``value`` (nested dicts and lists from JSON) with ``fn`` applied to every string in it."""
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    return fn(value) if isinstance(value, str) else value


def expand_runs(config: dict, run_dir: str | os.PathLike) -> dict:
    """``config`` with every string value ``{runs}`` or ``{runs}/...`` rooted at ``run_dir``'s parent folder (the
    folder of its sibling runs), at any depth; other values unchanged."""
    parent = str(Path(run_dir).resolve().parent)

    def expand(v: str) -> str:
        if v == RUNS_PLACEHOLDER or v.startswith(RUNS_PLACEHOLDER + "/"):
            return parent + v[len(RUNS_PLACEHOLDER):]
        return v

    return _map_strings(config, expand)


def collapse_runs(config: dict, runs_dir: str | os.PathLike) -> dict:
    """The inverse of :func:`expand_runs` for a config moved out of ``runs_dir``: string values that are
    ``runs_dir`` or a path under it (as given or resolved) become ``{runs}`` / ``{runs}/...``, at any depth."""
    prefixes = sorted({str(Path(runs_dir)), str(Path(runs_dir).resolve())}, key=len, reverse=True)

    def collapse(v: str) -> str:
        for pre in prefixes:
            if v == pre or v.startswith(pre + "/"):
                return RUNS_PLACEHOLDER + v[len(pre):]
        return v

    return _map_strings(config, collapse)


def write_status(run_dir: str | os.PathLike, status: str, **fields: Any) -> None:
    """Write ``status.json`` = ``{"status": status, **fields}`` atomically (strict JSON); on a full disk, where
    no temporary file can be written, an existing status.json is overwritten in place.

    Raises:
        ValueError: ``status`` is not one of :data:`RUN_STATUSES`.
    """
    if status not in RUN_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    path = status_path(run_dir)
    try:
        write_json(path, {"status": status, **fields})
    except OSError as e:
        if no_space(e) is None or not path.is_file():
            raise
        _rewrite_in_place(path, json.dumps(json_safe({"status": status, **fields}), indent=2, sort_keys=True) + "\n")


def _rewrite_in_place(path: Path, text: str) -> None:
    """Overwrite ``path`` in place: on a full disk a small file's blocks are already there, where a new
    temporary file finds none. Not atomic: only status.json, whose state must say what happened, uses it."""
    with open(path, "r+b") as fh:
        fh.write(text.encode())
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())


def read_status(run_dir: str | os.PathLike) -> dict | None:
    """``status.json`` as a dict, or None when it is missing or not valid JSON."""
    data = read_json(status_path(run_dir))
    return data if isinstance(data, dict) else None


def read_log_records(log: Path) -> tuple[list[tuple[str, dict]], str | None]:
    """The records of a ``train.jsonl`` / ``curve.jsonl``: ``([(line, record), ...], torn)``, where ``torn`` is
    a last line that is not a whole JSON record with a ``step`` (a crash or a full disk mid-write), else None.

    Raises:
        UserError: a line before the last that is not a JSON record with an integer ``step`` (file:line named).
    """
    lines = log.read_text(errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out, torn = [], None
    for i, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
            ok = isinstance(rec, dict) and isinstance(rec.get("step"), int)
        except json.JSONDecodeError:
            ok = False
        if ok:
            out.append((ln, rec))
        elif i == len(lines):
            torn = ln
        else:
            raise UserError(f"{log}:{i}: not a JSON record with an integer 'step' (fix or delete that line)")
    return out, torn


def trim_logs(run_dir: str | os.PathLike, step: int, warn: Callable[[str], None] | None = None) -> None:
    """Drop ``train.jsonl`` / ``curve.jsonl`` records past ``step`` (written after the checkpoint a resumed
    run starts from), and a torn last line (``warn`` is told), rewriting each file atomically; a whole
    record at or before ``step`` is never dropped.

    Raises:
        UserError: a malformed line before the last (see :func:`read_log_records`).
    """
    for name in (TRAIN_LOG, CURVE_LOG):
        log = Path(run_dir) / name
        if not log.exists():
            continue
        records, torn = read_log_records(log)
        if torn is not None and warn is not None:
            warn(f"warning: {log}: dropped a torn last line ({torn[:40]!r}...)")
        keep = [ln for ln, rec in records if rec["step"] <= step]
        write_text(log, "".join(ln + "\n" for ln in keep))


# --------------------------------------------------------------------------------------------
# checkpoints


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step_{step:06d}.pt"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint files of a run, oldest first."""
    return sorted((Path(run_dir) / CHECKPOINTS).glob(CKPT_GLOB))


def save_checkpoint(state: dict, run_dir: Path, step: int, keep: int) -> Path:
    """Write ``checkpoints/step_XXXXXX.pt`` atomically, carrying its own hash; keep the newest ``keep``.

    The file holds ``{"format": CKPT_FORMAT, "payload_sha256": hex, "payload": uint8 tensor}``, where
    ``payload`` is the ``torch.save`` serialization of ``state`` and ``payload_sha256`` its sha256, so
    the file verifies itself (:func:`load_checkpoint`). A ``.sha256`` sidecar with the file's sha256 is
    written beside it too (for tools outside exprbench).
    """
    path = checkpoint_path(run_dir, step)
    _write_wrapped(state, path)
    for old in list_checkpoints(run_dir)[: -max(keep, 1)]:
        old.unlink(missing_ok=True)
        old.with_suffix(".sha256").unlink(missing_ok=True)
    return path


def _write_wrapped(state: dict, path: Path) -> None:
    """``state`` at ``path`` in the self-verifying checkpoint format (atomically), with its ``.sha256`` sidecar."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getbuffer()
    wrapped = {"format": CKPT_FORMAT, "payload_sha256": hashlib.sha256(payload).hexdigest(),
               "payload": torch.frombuffer(payload, dtype=torch.uint8)}
    atomic_torch_save(wrapped, path)
    del wrapped, payload
    write_text(path.with_suffix(".sha256"), file_sha256(path) + "\n")


def write_init_checkpoint(src: Path, dest: Path) -> Path:
    """A checkpoint to start fine-tunes from (``train.init_from``): ``src``'s nets and EMA without optimizer
    states, RNG or data order (about half the size), in the same self-verifying format, at ``dest``.

    Raises:
        CheckpointError: ``src`` is not a valid checkpoint (:func:`load_checkpoint`).
    """
    model = load_checkpoint(Path(src))["model"]
    _write_wrapped({"model": {k: model[k] for k in ("nets", "ema") if k in model}}, Path(dest))
    return Path(dest)


class _Unverifiable(ValueError):
    """An old-format checkpoint without its sidecar."""


def _unwrap_checkpoint(obj: Any, side_ok: bool, map_location) -> dict:
    """The state dict inside a loaded checkpoint file, after checking its hash."""
    import torch

    if isinstance(obj, dict) and "payload_sha256" in obj:
        payload = obj.get("payload")
        if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8 or payload.dim() != 1:
            raise ValueError("malformed payload")
        raw = payload.contiguous().numpy()
        if hashlib.sha256(raw).hexdigest() != obj["payload_sha256"]:
            raise ValueError("its content does not match the sha256 stored inside it")
        return torch.load(io.BytesIO(raw.tobytes()), map_location=map_location, weights_only=True)
    if not side_ok:  # an old checkpoint (no embedded hash) needs its sidecar to be verified
        raise _Unverifiable("it carries no sha256 of its own and its .sha256 file is missing")
    return obj


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` after checking its hash.

    A checkpoint of :func:`save_checkpoint` is checked against the sha256 stored inside it (and against
    its ``.sha256`` sidecar when one is there). An older checkpoint (a plain ``torch.save`` of the state)
    loads only with a matching sidecar. A checkpoint that fails is never loaded, so a resumed run can
    never write (and re-sign) a successor of a damaged one.

    Args:
        path: the ``checkpoints/step_XXXXXX.pt`` file.
        map_location: where the tensors go (``"cpu"``, a ``torch.device``).

    Raises:
        CheckpointError: the file is truncated, corrupt, fails its hash, or cannot be verified (names
            the file and the previous one kept).
    """
    import torch

    path = Path(path)
    side = path.with_suffix(".sha256")
    try:
        side_ok = side.exists()
        if side_ok and side.read_text().strip() != file_sha256(path):
            raise ValueError("sha256 does not match its .sha256 file")
        obj = torch.load(path, map_location="cpu", weights_only=True)
        state = _unwrap_checkpoint(obj, side_ok, map_location)
        if state is obj and torch.device(map_location) != torch.device("cpu"):
            state = torch.load(path, map_location=map_location, weights_only=True)
        return state
    except Exception as e:  # torch raises several types for truncated zips
        older = [p for p in list_checkpoints(path.parent.parent) if p != path and p.name < path.name]
        keep = f"; the previous checkpoint {older[-1].name} is kept: delete {path.name} to resume from it" if older else ""
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        what = "cannot be verified" if isinstance(e, _Unverifiable) else "is corrupt or truncated"
        raise CheckpointError(f"checkpoint {path} {what} ({msg}){keep}") from None


def default_run_dir(cfg, root: str | os.PathLike = "results/runs") -> Path:
    """``<root>/<model>-<config>-s<seed>`` of a :class:`~exprbench.runs.config.RunConfig`."""
    return Path(root) / f"{cfg.model}-{cfg.config_name}-s{cfg.train.seed}"


def init_model(model, path: str) -> None:
    """Load the model state (nets, optimizers, EMA) of the checkpoint at ``path`` into ``model`` (``train.init_from``);
    an init checkpoint without optimizer states (:func:`~exprbench.runs.layout.write_init_checkpoint`) keeps the fresh ones.

    Raises:
        UserError: no such file; the file is not a checkpoint or fails its hash (one line naming it); its nets
            do not fit ``model`` (another model, width or config: names the first mismatch).
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"train.init_from {path}: no such checkpoint file")
    try:
        state = load_checkpoint(p)["model"]
        if "optimizers" not in state:  # an init checkpoint (write_init_checkpoint): fresh optimizers
            state = {**state, "optimizers": {k: o.state_dict() for k, o in model.optimizers.items()}}
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"train.init_from {path}: not a checkpoint of this model ({str(e).splitlines()[0][:200]})") from None
    except RuntimeError as e:  # a size or key mismatch in load_state_dict
        raise UserError(f"train.init_from {path}: its nets do not fit this model "
                        f"({str(e).splitlines()[1 if len(str(e).splitlines()) > 1 else 0].strip()[:200]})") from None
