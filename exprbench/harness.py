"""The generic training harness: budget, device, AMP, EMA, checkpoints, logs, sample grids, NaN guard, resume.

It knows nothing about GANs: it draws batches, calls ``plugin.training_step(batch, step)`` and records
what comes back. A run directory holds::

    config.json          the resolved RunConfig (see exprbench.config)
    status.json          running | completed | interrupted | diverged | failed, step, img/s, device, versions
    train.jsonl          one record per log interval: step, epoch, losses (mean over the interval), img_s
    tb/                  TensorBoard events (same scalars)
    samples/step_XXXXXX.png   grids, one row per class, fixed z (the same latents at every step)
    checkpoints/step_XXXXXX.pt (+ .sha256)  nets, optimizers, EMA, RNG states, data order, step

Checkpoints are written atomically and verified on load; ``resume=True`` continues the newest one so
that, on CPU with the same seed, a run killed at any moment and resumed ends with the same weights as
an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .augment import augment, build_augment
from .config import RunConfig, config_from_dict, flatten
from .data import DataSpec, FaceDataset, atomic_torch_save, load_dataset, to_float, to_uint8
from .errors import CheckpointError, ConfigError, TrainingDiverged, TrainingInterrupted, UserError
from .images import grid_image, save_png
from .io import check_writable_dir, file_sha256, remove_stale_temps, write_json, write_text
from .models.base import Batch

CKPT_GLOB = "step_*.pt"
# config keys that may differ when resuming: the budget and the hardware
RESUMABLE_CHANGES = ("train.steps", "train.minutes", "train.device", "data.path")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; otherwise ``torch.device(name)``.

    Raises:
        UserError: unknown device string, or CUDA asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r} (use auto, cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def library_versions() -> dict[str, str]:
    """Versions of Python, torch, torchvision, exprbench, and the git commit of the working tree."""
    import torchvision

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
            text=True, timeout=5,
        ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "exprbench": __version__, "git_commit": commit}


def device_name(device: torch.device) -> str:
    """Human-readable device name: the GPU model, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# --------------------------------------------------------------------------------------------
# checkpoints


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint files of a run, oldest first."""
    return sorted((run_dir / "checkpoints").glob(CKPT_GLOB))


CKPT_FORMAT = "exprbench-checkpoint/2"


def save_checkpoint(state: dict, run_dir: Path, step: int, keep: int) -> Path:
    """Write ``checkpoints/step_XXXXXX.pt`` atomically, carrying its own hash; keep the newest ``keep``.

    The file holds ``{"format": CKPT_FORMAT, "payload_sha256": hex, "payload": uint8 tensor}``, where
    ``payload`` is the ``torch.save`` serialization of ``state`` and ``payload_sha256`` its sha256, so
    the file verifies itself (:func:`load_checkpoint`). A ``.sha256`` sidecar with the file's sha256 is
    written beside it too (for tools outside exprbench).
    """
    path = run_dir / "checkpoints" / f"step_{step:06d}.pt"
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getbuffer()
    wrapped = {"format": CKPT_FORMAT, "payload_sha256": hashlib.sha256(payload).hexdigest(),
               "payload": torch.frombuffer(payload, dtype=torch.uint8)}
    atomic_torch_save(wrapped, path)
    del wrapped, payload
    write_text(path.with_suffix(".sha256"), file_sha256(path) + "\n")
    for old in list_checkpoints(run_dir)[: -max(keep, 1)]:
        old.unlink(missing_ok=True)
        old.with_suffix(".sha256").unlink(missing_ok=True)
    return path


class _Unverifiable(ValueError):
    """An old-format checkpoint without its sidecar."""


def _unwrap_checkpoint(obj: Any, side_ok: bool, map_location) -> dict:
    """The state dict inside a loaded checkpoint file, after checking its hash."""
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


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` after checking its hash.

    A checkpoint of :func:`save_checkpoint` is checked against the sha256 stored inside it (and against
    its ``.sha256`` sidecar when one is there). An older checkpoint (a plain ``torch.save`` of the state)
    loads only with a matching sidecar. A checkpoint that fails is never loaded, so a resumed run can
    never write (and re-sign) a successor of a damaged one.

    Raises:
        CheckpointError: the file is truncated, corrupt, fails its hash, or cannot be verified (names
            the file and the previous one kept).
    """
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


# --------------------------------------------------------------------------------------------
# data order


class EpochSampler:
    """Draws batches of indices from a fresh random permutation each epoch (drop-last).

    Its state (epoch, position, generator state at the start of the epoch) is plain data, so a
    resumed run draws exactly the batches an uninterrupted one would.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if batch_size > n:
            raise ConfigError(f"train.batch_size={batch_size} is larger than the split ({n} images)")
        self.n, self.bs = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch, self.pos = 0, 0
        self._start_epoch()

    def _start_epoch(self) -> None:
        self.epoch_gen_state = self.gen.get_state()
        self.perm = torch.randperm(self.n, generator=self.gen)

    def next(self) -> torch.Tensor:
        if self.pos + self.bs > self.n:
            self.epoch, self.pos = self.epoch + 1, 0
            self._start_epoch()
        idx = self.perm[self.pos : self.pos + self.bs]
        self.pos += self.bs
        return idx

    @property
    def epochs_done(self) -> float:
        """Fractional epochs consumed (t for epoch-based schedules)."""
        return self.epoch + self.pos / self.n

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "gen_state": self.epoch_gen_state}

    def load_state_dict(self, s: dict) -> None:
        self.gen.set_state(s["gen_state"])
        self._start_epoch()
        self.epoch, self.pos = int(s["epoch"]), int(s["pos"])


# --------------------------------------------------------------------------------------------
# run directory helpers


def default_run_dir(cfg: RunConfig, root: str | os.PathLike = "results/runs") -> Path:
    """``<root>/<model>-<config>-s<seed>``."""
    return Path(root) / f"{cfg.model}-{cfg.config_name}-s{cfg.train.seed}"


def _dotted(cfg: RunConfig) -> dict:
    """A run config as ``{"model.z_dim": ..., "train.steps": ..., "name.model": ...}``."""
    d = cfg.to_dict()
    return flatten({"model": d["model_cfg"], "train": d["train"], "data": d["data"],
                    "name": {"model": cfg.model, "config": cfg.config_name}})


def _check_same_config(stored: RunConfig, given: RunConfig, run_dir: Path) -> None:
    a, b = _dotted(stored), _dotted(given)
    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES]
    if diff:
        k = diff[0]
        raise ConfigError(
            f"{run_dir}/config.json has {k}={a.get(k)!r} but this run asks for {b.get(k)!r}: "
            "resume with the same config or use another --out"
        )


def load_run_config(run_dir: Path) -> RunConfig:
    """Read ``run_dir/config.json`` back into a :class:`RunConfig`.

    Raises:
        UserError: no such run directory / config, or a malformed config.
    """
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    try:
        return config_from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None


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
            checkpoint or weights that fail their hash.
    """
    from .weights import FILENAME, load_weights, weights_spec

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ckpts = list_checkpoints(run_dir)
    dev = resolve_device(str(device))
    if not ckpts:
        if not (run_dir / FILENAME).exists():
            raise UserError(f"{run_dir} has no checkpoint yet (checkpoints/step_*.pt) and no {FILENAME}")
        raw = weights_spec(run_dir / FILENAME)
        spec = DataSpec(**{**raw, "class_names": tuple(raw["class_names"])})
        model = build_model(cfg, spec, dev)
        step = load_weights(model, run_dir / FILENAME)
        model.train(False)
        return cfg, model, spec, step
    state = load_checkpoint(ckpts[-1], map_location=dev)
    spec = DataSpec(**{**state["spec"], "class_names": tuple(state["spec"]["class_names"])})
    model = build_model(cfg, spec, dev)
    model.load_state_dict(state["model"])
    model.train(False)
    return cfg, model, spec, int(state["step"])


def class_grid(model, spec: DataSpec, per_class: int, seed: int) -> tuple[torch.Tensor, list[str] | None]:
    """A grid of samples from fixed latents: K rows x ``per_class`` columns.

    Conditional models: one row per class and one noise draw per column, repeated down the rows
    (cell (r, j) is ``model.sample(1, [r])`` with a CPU generator seeded ``seed + j``), so a column
    shows one latent under every label and rows are comparable. Unconditional models: K * per_class
    independent samples from one generator seeded with ``seed``.

    Returns uint8 images (K*per_class x C x H x W, row-major) and the row labels (None for
    unconditional models).
    """
    k = spec.num_classes
    if "conditional" not in model.capabilities:
        gen = torch.Generator().manual_seed(seed)
        labels = torch.arange(k).repeat_interleave(per_class)
        return to_uint8(model.sample(k * per_class, labels=labels, generator=gen)), None
    cells = [model.sample(1, labels=torch.tensor([r]), generator=torch.Generator().manual_seed(seed + j))
             for r in range(k) for j in range(per_class)]
    return to_uint8(torch.cat(cells)), list(spec.class_names)


# --------------------------------------------------------------------------------------------
# the loop


class _StopOnSigint:
    """While installed, the first Ctrl-C (SIGINT) only sets ``requested`` (the training loop stops at
    the end of the current step and saves it); a second one raises KeyboardInterrupt at once.

    Installed only in the main thread and only over Python's default SIGINT handler (a process that
    ignores SIGINT, or set its own handler, keeps it).
    """

    def __init__(self) -> None:
        self.requested = False
        self._installed = False

    def install(self) -> "_StopOnSigint":
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            self.restore()
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False


class Trainer:
    """Runs one training run into ``run_dir``.

    Args:
        cfg: the resolved run config.
        run_dir: the run directory (created).
        resume: continue from the newest checkpoint if there is one (else start fresh).
        dataset: an already loaded dataset (tests); default loads ``cfg.data``.
        progress: show a tqdm progress bar (on a terminal).
        eval_hook: ``hook(step, model) -> {name: value}`` run every ``eval_every`` steps and at the end
            (e.g. FID for a curve over training); records go to ``curve.jsonl``. It runs under
            ``torch.random.fork_rng``, so it never changes the training's random stream.
        eval_every: steps between hook calls (0 = off).
    """

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike, resume: bool = False,
                 dataset: FaceDataset | None = None, progress: bool = True,
                 eval_hook: Callable[[int, Any], dict[str, float]] | None = None, eval_every: int = 0) -> None:
        self.cfg, self.run_dir, self.resume, self.progress = cfg, Path(run_dir), resume, progress
        self._dataset = dataset
        self.eval_hook, self.eval_every = eval_hook, eval_every

    # -- setup ---------------------------------------------------------------------------
    def _prepare_dir(self) -> dict | None:
        check_writable_dir(self.run_dir, "run directory")  # before any file is written (bench included)
        ckpts = list_checkpoints(self.run_dir)
        cfg_path = self.run_dir / "config.json"
        if cfg_path.exists() and not self.resume:
            raise UserError(f"run directory {self.run_dir} exists: pass --resume to continue it or choose another --out")
        if cfg_path.exists():
            _check_same_config(load_run_config(self.run_dir), self.cfg, self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.run_dir / "checkpoints")  # left by checkpoint writes that were killed
        write_json(cfg_path, self.cfg.to_dict())
        if self.resume and ckpts:
            return load_checkpoint(ckpts[-1])
        return None

    def _status(self, status: str, **extra: Any) -> None:
        write_json(self.run_dir / "status.json", {"status": status, **self.info, **extra})

    def _interrupted(self, step: int, train_seconds: float, saved: Path | None) -> TrainingInterrupted:
        """Mark the run ``interrupted`` and build the one-line error saying where its checkpoint is."""
        ckpts = list_checkpoints(self.run_dir)
        newest = saved or (ckpts[-1] if ckpts else None)
        self._status("interrupted", step=step, train_seconds=round(train_seconds, 3),
                     checkpoint=str(newest) if newest else None)
        if saved is not None:
            where = f"checkpoint saved: {saved}"
        else:
            where = f"stopped mid-step, not saved; newest checkpoint: {newest or 'none'}"
        return TrainingInterrupted(f"interrupted at step {step}: {where} (continue with --resume)")

    def _trim_logs(self, step: int) -> None:
        """Drop log records past ``step`` (written after the checkpoint a resumed run starts from)."""
        for name in ("train.jsonl", "curve.jsonl"):
            self._trim_log(self.run_dir / name, step)

    def _trim_log(self, log: Path, step: int) -> None:
        if not log.exists():
            return
        keep = [ln for ln in log.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        write_text(log, "".join(ln + "\n" for ln in keep))

    # -- main ----------------------------------------------------------------------------
    def run(self) -> dict:
        """Train until the budget is spent; returns the final status dict.

        Raises:
            UserError: bad config/data/run dir. CheckpointError: corrupt checkpoint on resume.
            TrainingDiverged: a loss became NaN/inf (status.json says ``diverged``).
            TrainingInterrupted: Ctrl-C; the first one stops at the end of the current step and saves a
                checkpoint there, a second one stops at once without saving (status.json says ``interrupted``).
        """
        cfg, tc = self.cfg, self.cfg.train
        device = resolve_device(tc.device)
        state = self._prepare_dir()
        torch.manual_seed(tc.seed)
        if tc.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        data = self._dataset or load_dataset(cfg.data.path, cfg.data.label_set)
        train = data.split(tc.split).to(device)
        spec = data.spec
        model = build_model(cfg, spec, device)
        sampler = EpochSampler(len(train), tc.batch_size, tc.seed)
        aug = build_augment(cfg.data.augment).to(device)
        step, train_seconds = 0, 0.0
        if state is not None:
            model.load_state_dict(state["model"])
            sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["rng"]["torch"])
            if device.type == "cuda" and state["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"], device)
            step, train_seconds = int(state["step"]), float(state["train_seconds"])
        self._trim_logs(step)
        self.info = {"model": cfg.model, "config": cfg.config_name, "seed": tc.seed,
                     "device": str(device), "device_name": device_name(device),
                     "data_fingerprint": data.fingerprint, "num_parameters": model.num_parameters(),
                     "versions": library_versions()}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self._status("running", step=step)

        def checkpoint(at: int) -> None:
            rng = {"torch": torch.get_rng_state(),
                   "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
            save_checkpoint({"model": model.state_dict(), "sampler": sampler.state_dict(), "rng": rng,
                             "step": at, "train_seconds": train_seconds,
                             "spec": dataclasses.asdict(spec)}, self.run_dir, at, tc.keep_ckpts)

        def grid(at: int) -> None:
            imgs, rows = class_grid(model, spec, tc.samples_per_class, tc.seed + 12345)
            sheet = grid_image(imgs, tc.samples_per_class, rows)
            save_png(sheet, self.run_dir / "samples" / f"step_{at:06d}.png")
            # the same sheet in TensorBoard's Images tab (HWC uint8; gray sheets get a channel axis)
            arr = np.asarray(sheet)
            writer.add_image("samples", arr if arr.ndim == 3 else arr[:, :, None], at, dataformats="HWC")

        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=step)

        curve = self.run_dir / "curve.jsonl"
        done = [json.loads(x)["step"] for x in curve.read_text().splitlines() if x.strip()] if curve.exists() else []
        last_hook = [done[-1] if done else -1]

        def run_hook(at: int) -> None:
            last_hook[0] = at
            devices = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                values = self.eval_hook(at, model)
            with open(curve, "a") as fh:
                fh.write(json.dumps({"step": at, **values}) + "\n")
            for k, v in values.items():
                writer.add_scalar(f"eval/{k}", v, at)
        bar = tqdm(total=tc.steps if tc.minutes is None else None, initial=step, disable=None if self.progress else True,
                   desc=f"{cfg.model}/{cfg.config_name}", unit="step", dynamic_ncols=True)
        amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and tc.amp
               else contextlib.nullcontext())
        sums: dict[str, float] = {}
        n_acc, t_window, img_s = 0, time.perf_counter(), 0.0
        budget_s = tc.minutes * 60 if tc.minutes is not None else math.inf
        logf = open(self.run_dir / "train.jsonl", "a")
        sigint = _StopOnSigint().install()  # Ctrl-C: stop at the end of the current step and save it
        try:
            while step < tc.steps and train_seconds < budget_s and not sigint.requested:
                t0 = time.perf_counter()
                idx = sampler.next().to(device)
                x = augment(to_float(train.images[idx]), aug)
                if tc.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                progress = max(step / tc.steps if tc.steps else 0.0, train_seconds / budget_s)
                epoch = sampler.epochs_done - tc.batch_size / sampler.n  # epochs consumed before this batch
                with amp:
                    logs = model.training_step(Batch(x, train.labels[idx], epoch=max(epoch, 0.0),
                                                     progress=min(progress, 1.0)), step)
                bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
                if bad:
                    self._status("diverged", step=step, losses=logs)
                    kept = list_checkpoints(self.run_dir)
                    raise TrainingDiverged(
                        f"{cfg.model}: loss {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}; "
                        f"run marked diverged in {self.run_dir / 'status.json'}, "
                        + (f"last good checkpoint {kept[-1].name} kept" if kept else "no checkpoint was written before it")
                    )
                model.update_ema()
                step += 1
                train_seconds += time.perf_counter() - t0
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_acc += 1
                bar.update(1)
                if step % tc.log_every == 0 or step == tc.steps:
                    now = time.perf_counter()
                    img_s = n_acc * tc.batch_size / max(now - t_window, 1e-9)
                    rec = {"step": step, "epoch": round(sampler.epochs_done, 4),
                           **{k: v / n_acc for k, v in sums.items()}, "img_s": img_s,
                           "train_seconds": round(train_seconds, 3)}
                    logf.write(json.dumps(rec) + "\n")
                    logf.flush()
                    for k, v in rec.items():
                        if k != "step":
                            writer.add_scalar(k, v, step)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in rec.items() if k not in ("step", "train_seconds")})
                    sums, n_acc, t_window = {}, 0, now
                if tc.sample_every and step % tc.sample_every == 0:
                    grid(step)
                if self.eval_hook and self.eval_every and step % self.eval_every == 0:
                    run_hook(step)
                if tc.ckpt_every and step % tc.ckpt_every == 0:
                    checkpoint(step)
            if sigint.requested:
                checkpoint(step)
                raise self._interrupted(step, train_seconds, self.run_dir / "checkpoints" / f"step_{step:06d}.pt")
            checkpoint(step)
            grid(step)
            if self.eval_hook and self.eval_every and last_hook[0] != step:
                run_hook(step)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:  # a second Ctrl-C, or one raised mid-step: the state may be torn, not saved
            raise self._interrupted(step, train_seconds, None) from None
        finally:
            sigint.restore()
            logf.close()
            bar.close()
            writer.close()
        peak = (torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None
        final = {"step": step, "train_seconds": round(train_seconds, 3),
                 "img_per_s": round(step * tc.batch_size / max(train_seconds, 1e-9), 2),
                 "peak_gpu_memory_mib": peak}
        self._status("completed", **final)
        return {"status": "completed", **self.info, **final}
