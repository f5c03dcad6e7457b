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
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from exprbench.data.augment import augment, build_augment
from exprbench.runs.config import RunConfig, flatten, load_run_config
from exprbench.data import DataSpec, FaceDataset, load_dataset, to_float
from exprbench.core.errors import ConfigError, TrainingDiverged, TrainingInterrupted, UserError
from exprbench.core.images import grid_image, save_png
from exprbench.core.io import check_writable_dir, file_sha256, no_space, remove_stale_temps
from exprbench.models.base import Batch, ModelPlugin, Resources
from exprbench.runs.layout import (CHECKPOINTS, checkpoint_path, config_path, init_model, list_checkpoints,
    load_checkpoint, sample_sheet_path, save_checkpoint, trim_logs, write_config, write_status)
from exprbench.core.devices import device_name, library_versions, resolve_device
from exprbench.runs.loader import build_model, class_grid
from exprbench.runs.interrupts import StopOnSigint
from exprbench.runs.recorder import TrainingRecorder

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


@dataclasses.dataclass
class _RunState:
    """What the parts of one training run share: where it runs, its data, its model, and how far it is."""

    device: torch.device
    train: FaceDataset  # the training split, on the device
    spec: DataSpec
    model: ModelPlugin
    sampler: EpochSampler
    grid_sources: torch.Tensor  # translators: the sources of their sample sheet
    aug: Any  # the augmentation (build_augment)
    step: int = 0
    train_seconds: float = 0.0


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
        r = self._set_up_run()
        amp = (torch.autocast("cuda", dtype=torch.bfloat16) if r.device.type == "cuda" and tc.amp
               else contextlib.nullcontext())
        rec = TrainingRecorder(self.run_dir, r.step, f"{cfg.model}/{cfg.config_name}",
                               tc.steps if tc.minutes is None else None, tc.batch_size, self.progress)
        sigint = StopOnSigint().install()  # Ctrl-C: stop at the end of the current step and save it
        try:
            self._train_until_budget(r, rec, amp, sigint)
            self._finish_run(r, rec, sigint)
        except (TrainingInterrupted, TrainingDiverged):
            raise
        except KeyboardInterrupt:  # a second Ctrl-C, or one raised mid-step: the state may be torn, not saved
            raise self._interrupted(r.step, r.train_seconds, None) from None
        except Exception as e:  # a full disk (one line), a bug (its traceback): status.json says failed
            full = self._failed(r.step, r.train_seconds, e)
            if full is not None:
                raise full from None
            raise
        finally:
            failing = sys.exc_info()[0] is not None  # then closing must not replace the error being raised
            sigint.restore()
            rec.close(failing)
        return self._mark_completed(r)

    def _set_up_run(self) -> _RunState:
        """Check the run directory, load the data, build the model (seeded), restore a resumed run's state
        (or the fine-tune's start) and mark the run ``running``."""
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
        r = _RunState(device, train, spec, model, EpochSampler(len(train), tc.batch_size, tc.seed),
                      to_float(train.images[: tc.samples_per_class]),  # translators: sources of their grid
                      build_augment(cfg.data.augment).to(device))
        if state is not None:
            self._restore_state(r, state)
        elif tc.init_from:
            init_model(model, tc.init_from)
        trim_logs(self.run_dir, r.step, warn=lambda msg: print(msg, file=sys.stderr, flush=True))
        self.info = self._describe_run(r, data.fingerprint)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self._status("running", step=r.step)
        return r

    def _restore_state(self, r: _RunState, state: dict) -> None:
        """Continue a checkpoint: the model, the data order, the random state and the step and training time."""
        r.model.load_state_dict(state["model"])
        r.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["rng"]["torch"])
        if r.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], r.device)
        r.step, r.train_seconds = int(state["step"]), float(state["train_seconds"])

    def _describe_run(self, r: _RunState, data_fingerprint: str) -> dict:
        """What status.json says about the run besides its state: model, seed, device, data, size, versions."""
        cfg, tc = self.cfg, self.cfg.train
        info = {"model": cfg.model, "config": cfg.config_name, "seed": tc.seed,
                "device": str(r.device), "device_name": device_name(r.device),
                "data_fingerprint": data_fingerprint, "num_parameters": r.model.num_parameters(),
                "versions": library_versions()}
        if tc.init_from:  # what the fine-tune started from, by content
            info["init_from"] = {"path": tc.init_from, "sha256": file_sha256(tc.init_from)}
        return info

    def _train_until_budget(self, r: _RunState, rec: TrainingRecorder, amp: Any, sigint: StopOnSigint) -> None:
        """Train step by step (under ``amp``), each step followed by the work due at it, until the step or time
        budget is spent or a Ctrl-C asks to stop."""
        tc = self.cfg.train
        budget_s = tc.minutes * 60 if tc.minutes is not None else math.inf
        while (tc.steps is None or r.step < tc.steps) and r.train_seconds < budget_s and not sigint.requested:
            self._train_step(r, rec, amp, budget_s)
            self._do_periodic_work(r, rec)

    def _train_step(self, r: _RunState, rec: TrainingRecorder, amp: Any, budget_s: float) -> None:
        """One step: draw and augment a batch, call the model's training_step, stop on a non-finite loss, update
        the EMA, count the step and its time, and log (every ``log_every`` steps)."""
        tc = self.cfg.train
        t0 = time.perf_counter()
        idx = r.sampler.next().to(r.device)
        x = augment(to_float(r.train.images[idx]), r.aug)
        if tc.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        progress = max(r.step / tc.steps if tc.steps else 0.0, r.train_seconds / budget_s)
        epoch = r.sampler.epochs_done - tc.batch_size / r.sampler.n  # epochs consumed before this batch
        with amp:
            logs = r.model.training_step(Batch(x, r.train.labels[idx], epoch=max(epoch, 0.0),
                                               progress=min(progress, 1.0)), r.step)
        self._stop_if_diverged(logs, r.step)
        r.model.update_ema()
        r.step += 1
        r.train_seconds += time.perf_counter() - t0
        rec.add_step(logs)
        if r.step % tc.log_every == 0 or r.step == tc.steps:
            rec.write_window(r.step, r.sampler.epochs_done, r.train_seconds)

    def _stop_if_diverged(self, logs: dict[str, float], step: int) -> None:
        """Mark the run ``diverged`` and raise TrainingDiverged if a logged loss is NaN or infinite."""
        bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
        if bad:
            self._status("diverged", step=step, losses=logs)
            kept = list_checkpoints(self.run_dir)
            raise TrainingDiverged(
                f"{self.cfg.model}: loss {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}; "
                f"run marked diverged in {self.run_dir / 'status.json'}, "
                + (f"last good checkpoint {kept[-1].name} kept" if kept else "no checkpoint was written before it")
            )

    def _do_periodic_work(self, r: _RunState, rec: TrainingRecorder) -> None:
        """The work due at this step: a sample sheet, an eval hook call, a checkpoint (each every so many steps)."""
        tc = self.cfg.train
        if tc.sample_every and r.step % tc.sample_every == 0:
            self._save_samples(r, rec)
        if self.eval_hook and self.eval_every and r.step % self.eval_every == 0:
            self._run_eval_hook(r, rec)
        if tc.ckpt_every and r.step % tc.ckpt_every == 0:
            self._save_checkpoint(r)

    def _save_checkpoint(self, r: _RunState) -> None:
        """Checkpoint the current step: model, data order, random state, step and training time, data spec."""
        tc = self.cfg.train
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(r.device) if r.device.type == "cuda" else None}
        save_checkpoint({"model": r.model.state_dict(), "sampler": r.sampler.state_dict(), "rng": rng,
                         "step": r.step, "train_seconds": r.train_seconds,
                         "spec": dataclasses.asdict(r.spec)}, self.run_dir, r.step, tc.keep_ckpts)

    def _save_samples(self, r: _RunState, rec: TrainingRecorder) -> None:
        """Write the current step's sample sheet (fixed latents, a row per class) as PNG and to TensorBoard."""
        tc = self.cfg.train
        imgs, rows = class_grid(r.model, r.spec, tc.samples_per_class, tc.seed + 12345, r.grid_sources)
        sheet = grid_image(imgs, tc.samples_per_class, rows)
        save_png(sheet, sample_sheet_path(self.run_dir, r.step))
        rec.add_sheet(sheet, r.step)

    def _run_eval_hook(self, r: _RunState, rec: TrainingRecorder) -> None:
        """Call the eval hook at the current step (on a forked random state) and record its values."""
        rec.last_eval = r.step
        devices = [r.device] if r.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            values = self.eval_hook(r.step, r.model)
        rec.add_eval(r.step, values)

    def _finish_run(self, r: _RunState, rec: TrainingRecorder, sigint: StopOnSigint) -> None:
        """After the last step: on Ctrl-C, checkpoint and raise TrainingInterrupted; else the final checkpoint,
        sample sheet and (unless just done) eval hook call."""
        if sigint.requested:
            self._save_checkpoint(r)
            raise self._interrupted(r.step, r.train_seconds, checkpoint_path(self.run_dir, r.step))
        self._save_checkpoint(r)
        self._save_samples(r, rec)
        if self.eval_hook and self.eval_every and rec.last_eval != r.step:
            self._run_eval_hook(r, rec)

    def _mark_completed(self, r: _RunState) -> dict:
        """Mark the run ``completed`` with its totals (steps, time, img/s, peak GPU memory); the final status dict."""
        tc = self.cfg.train
        peak = (torch.cuda.max_memory_allocated(r.device) / 2**20) if r.device.type == "cuda" else None
        final = {"step": r.step, "train_seconds": round(r.train_seconds, 3),
                 "img_per_s": round(r.step * tc.batch_size / max(r.train_seconds, 1e-9), 2),
                 "peak_gpu_memory_mib": peak}
        self._status("completed", **final)
        return {"status": "completed", **self.info, **final}
