"""The generic training harness: budget, device, AMP, EMA, checkpoints, logs, sample grids, NaN guard, resume.

It knows nothing about GANs: it draws batches, calls ``plugin.training_step(batch, step)`` and records
what comes back into a run directory (its layout: :mod:`exprbench.runs.layout`; the status.json states it
writes are ``rundir.RUN_STATUSES``: running, completed, interrupted, diverged, failed).

Checkpoints are written atomically and verified on load; ``resume=True`` continues the newest one so
that, on CPU with the same seed, a run killed at any moment and resumed ends with the same weights as
an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from exprbench.data.augment import augment, build_augment
from exprbench.runs.config import RunConfig, flatten, load_run_config  # noqa: F401 (load_run_config: old import path)
from exprbench.data import FaceDataset, load_dataset, to_float
from exprbench.core.errors import ConfigError, TrainingDiverged, TrainingInterrupted, UserError
from exprbench.core.images import grid_image, save_png
from exprbench.core.io import check_writable_dir, file_sha256, no_space, remove_stale_temps, write_json  # noqa: F401 (write_json: old import path)
from exprbench.models.base import Batch, Resources
from exprbench.runs.layout import (  # noqa: F401 (CKPT_*, default_run_dir, save_checkpoint: old import paths)
    CKPT_FORMAT, CKPT_GLOB, CHECKPOINTS, CURVE_LOG, TENSORBOARD, TRAIN_LOG, checkpoint_path, config_path,
    default_run_dir, init_model, list_checkpoints, load_checkpoint, sample_sheet_path, save_checkpoint,
    read_log_records, trim_logs, write_config, write_status,
)
from exprbench.core.devices import device_name, library_versions, resolve_device  # noqa: F401 (old import paths)
from exprbench.runs.loader import build_model, class_grid

# config keys that may differ when resuming: the budget and the hardware
RESUMABLE_CHANGES = ("train.steps", "train.minutes", "train.device", "data.path")


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
        resources: trained parts a plugin is built on (:class:`~exprbench.models.base.Resources`; InterFaceGAN's
            scorer: ``exprbench.metrics.extractors.evaluator.plugin_resources()``).
    """

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike, resume: bool = False,
                 dataset: FaceDataset | None = None, progress: bool = True,
                 eval_hook: Callable[[int, Any], dict[str, float]] | None = None, eval_every: int = 0,
                 resources: Resources | None = None) -> None:
        self.cfg, self.run_dir, self.resume, self.progress = cfg, Path(run_dir), resume, progress
        self.resources = resources
        self._dataset = dataset
        self.eval_hook, self.eval_every = eval_hook, eval_every

    # -- setup ---------------------------------------------------------------------------
    def _check_dir(self) -> None:
        """Refuse a run directory this training may not write (nothing is written yet)."""
        check_writable_dir(self.run_dir, "run directory")  # before any file is written (bench included)
        cfg_path = config_path(self.run_dir)
        if cfg_path.exists() and not self.resume:
            raise UserError(f"run directory {self.run_dir} exists: pass --resume to continue it or choose another --out")
        if cfg_path.exists():
            _check_same_config(load_run_config(self.run_dir), self.cfg, self.run_dir)

    def _prepare_dir(self) -> dict | None:
        """Write config.json (once the data and the model are known to load: a failed start leaves no run that
        blocks a plain retry) and return the newest checkpoint's state when resuming."""
        ckpts = list_checkpoints(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.run_dir / CHECKPOINTS)  # left by checkpoint writes that were killed
        write_config(self.run_dir, self.cfg.to_dict())
        if self.resume and ckpts:
            return load_checkpoint(ckpts[-1])
        return None

    def _status(self, status: str, **extra: Any) -> None:
        write_status(self.run_dir, status, **{**self.info, **extra})

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

    def _failed(self, step: int, train_seconds: float, e: Exception) -> OSError | None:
        """Mark the run ``failed`` (with the error's first line; best effort) and return the one-line error of
        a full disk (naming the file, else the run directory), or None for any other error."""
        full = no_space(e, self.run_dir)
        first = str(full or e).splitlines()[0] if str(full or e) else ""
        with contextlib.suppress(OSError):  # the disk may be too full even for this
            self._status("failed", step=step, train_seconds=round(train_seconds, 3),
                         error=f"{type(full or e).__name__}: {first}")
        return full

    # -- main ----------------------------------------------------------------------------
    def run(self) -> dict:
        """Train until the budget is spent; returns the final status dict.

        Raises:
            UserError: bad config/data/run dir. CheckpointError: corrupt checkpoint on resume.
            TrainingDiverged: a loss became NaN/inf (status.json says ``diverged``).
            TrainingInterrupted: Ctrl-C; the first one stops at the end of the current step and saves a
                checkpoint there, a second one stops at once without saving (status.json says ``interrupted``).
            OSError: a full disk (ENOSPC/EDQUOT, ``filename`` the file or run directory; status.json says
                ``failed``); any other error of the loop is raised as it came, status.json ``failed`` too.
        """
        cfg, tc = self.cfg, self.cfg.train
        device = resolve_device(tc.device)
        self._check_dir()
        data = self._dataset or load_dataset(cfg.data.path, cfg.data.label_set)
        torch.manual_seed(tc.seed)
        if tc.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        train = data.split(tc.split).to(device)
        spec = data.spec
        model = build_model(cfg, spec, device, self.resources)
        state = self._prepare_dir()
        sampler = EpochSampler(len(train), tc.batch_size, tc.seed)
        grid_sources = to_float(train.images[: tc.samples_per_class])  # translators: sources of their grid
        aug = build_augment(cfg.data.augment).to(device)
        step, train_seconds = 0, 0.0
        if state is not None:
            model.load_state_dict(state["model"])
            sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["rng"]["torch"])
            if device.type == "cuda" and state["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"], device)
            step, train_seconds = int(state["step"]), float(state["train_seconds"])
        elif tc.init_from:
            init_model(model, tc.init_from)
        trim_logs(self.run_dir, step, warn=lambda msg: print(msg, file=sys.stderr, flush=True))
        self.info = {"model": cfg.model, "config": cfg.config_name, "seed": tc.seed,
                     "device": str(device), "device_name": device_name(device),
                     "data_fingerprint": data.fingerprint, "num_parameters": model.num_parameters(),
                     "versions": library_versions()}
        if tc.init_from:  # what the fine-tune started from, by content
            self.info["init_from"] = {"path": tc.init_from, "sha256": file_sha256(tc.init_from)}
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
            imgs, rows = class_grid(model, spec, tc.samples_per_class, tc.seed + 12345, grid_sources)
            sheet = grid_image(imgs, tc.samples_per_class, rows)
            save_png(sheet, sample_sheet_path(self.run_dir, at))
            # the same sheet in TensorBoard's Images tab (HWC uint8; gray sheets get a channel axis)
            arr = np.asarray(sheet)
            writer.add_image("samples", arr if arr.ndim == 3 else arr[:, :, None], at, dataformats="HWC")

        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        from exprbench.runs.ticker import LogTicker

        writer = SummaryWriter(str(self.run_dir / TENSORBOARD), purge_step=step)

        curve = self.run_dir / CURVE_LOG
        done = [rec["step"] for _, rec in read_log_records(curve)[0]] if curve.exists() else []
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
        total = tc.steps if tc.minutes is None else None
        bar = tqdm(total=total, initial=step, disable=None if self.progress else True,
                   desc=f"{cfg.model}/{cfg.config_name}", unit="step", dynamic_ncols=True)
        ticker = LogTicker(f"{cfg.model}/{cfg.config_name}", total, step, tc.batch_size,
                           enabled=None if self.progress else False)  # a line every 30 s where no bar is drawn
        amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and tc.amp
               else contextlib.nullcontext())
        sums: dict[str, float] = {}  # per log key: the sum over the window's steps that returned it
        counts: dict[str, int] = {}  # ... and how many did (a key a model logs on some steps only is not diluted)
        n_acc, t_window, img_s = 0, time.perf_counter(), 0.0
        budget_s = tc.minutes * 60 if tc.minutes is not None else math.inf
        logf = open(self.run_dir / TRAIN_LOG, "a")
        sigint = _StopOnSigint().install()  # Ctrl-C: stop at the end of the current step and save it
        try:
            while (tc.steps is None or step < tc.steps) and train_seconds < budget_s and not sigint.requested:
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
                    counts[k] = counts.get(k, 0) + 1
                n_acc += 1
                bar.update(1)
                ticker.update(1)
                if step % tc.log_every == 0 or step == tc.steps:
                    now = time.perf_counter()
                    img_s = n_acc * tc.batch_size / max(now - t_window, 1e-9)
                    rec = {"step": step, "epoch": round(sampler.epochs_done, 4),
                           **{k: v / counts[k] for k, v in sums.items()}, "img_s": img_s,
                           "train_seconds": round(train_seconds, 3)}
                    logf.write(json.dumps(rec) + "\n")
                    logf.flush()
                    for k, v in rec.items():
                        if k != "step":
                            writer.add_scalar(k, v, step)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in rec.items() if k not in ("step", "train_seconds")})
                    sums, counts, n_acc, t_window = {}, {}, 0, now
                if tc.sample_every and step % tc.sample_every == 0:
                    grid(step)
                if self.eval_hook and self.eval_every and step % self.eval_every == 0:
                    run_hook(step)
                if tc.ckpt_every and step % tc.ckpt_every == 0:
                    checkpoint(step)
            if sigint.requested:
                checkpoint(step)
                raise self._interrupted(step, train_seconds, checkpoint_path(self.run_dir, step))
            checkpoint(step)
            grid(step)
            if self.eval_hook and self.eval_every and last_hook[0] != step:
                run_hook(step)
        except (TrainingInterrupted, TrainingDiverged):
            raise
        except KeyboardInterrupt:  # a second Ctrl-C, or one raised mid-step: the state may be torn, not saved
            raise self._interrupted(step, train_seconds, None) from None
        except Exception as e:  # a full disk (one line), a bug (its traceback): status.json says failed
            full = self._failed(step, train_seconds, e)
            if full is not None:
                raise full from None
            raise
        finally:
            failing = sys.exc_info()[0] is not None  # then closing must not replace the error being raised
            sigint.restore()
            for close in (logf.close, bar.close, writer.close):
                with contextlib.suppress(OSError) if failing else contextlib.nullcontext():
                    close()
        peak = (torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None
        final = {"step": step, "train_seconds": round(train_seconds, 3),
                 "img_per_s": round(step * tc.batch_size / max(train_seconds, 1e-9), 2),
                 "peak_gpu_memory_mib": peak}
        self._status("completed", **final)
        return {"status": "completed", **self.info, **final}
