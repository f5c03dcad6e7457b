"""``evaluate_run``: run the metric protocols on a trained run and write ``eval.json``.

For each protocol (a registered declaration, see :mod:`exprbench.metrics.protocols.spec` and
:mod:`exprbench.metrics.protocols.builtin`) it generates the protocol's images with the protocol's seed
(quantized with :func:`exprbench.data.to_uint8`, exactly like the real data), computes the metric, and
records it with the protocol: sample count, seed, feature extractor and its weights sha256, wall time.
Every protocol whose declaration gives a ``reference`` also gets a real-data *reference* computed the
same way with real images (see :mod:`.references`), so every number has a scale; the others record an
``unavailable`` reference with the declared reason.

Generated sets are shared between protocols with the same (seed, count, label draw): fid10k_train,
kid10k_train and pr10k_train use one set and extract its features once. ``eval.json`` is merged, never
replaced (:mod:`.evaljson`); ``--checkpoint`` picks the step (:mod:`.rundir`); :func:`evaluate_images`
(:mod:`.images_eval`) scores images from any source. Progress goes through an
:class:`~exprbench.metrics.run.progress.EvalReporter` (silent by default). The modules this one composes:
:mod:`.context` (what the protocols share), :mod:`.references`, :mod:`.evaljson`, :mod:`.console`,
:mod:`.figure_inputs`; the names they define stay importable from here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from exprbench.data import FaceDataset, load_dataset
from exprbench.core.errors import EvaluationInterrupted, UserError
from exprbench.core.io import file_sha256

from exprbench.metrics.run.context import EvalContext
from exprbench.metrics.run.eval_config import GENERATION_BATCH
from exprbench.metrics.run.evaljson import PARTIAL_NAME, PartialEval, read_eval, write_eval
from exprbench.metrics.run.run_figures import write_figure_inputs
from exprbench.metrics.run.sample_store import FOLDER as SAMPLES_FOLDER, SampleStore
from exprbench.metrics.families.fidelity_inputs import drop_generated_cache
from exprbench.metrics.run.progress import EvalReporter
from exprbench.metrics.run.references import (check_per_class_counts, common_fields, keep_finished, now,
    resolve_protocols, run_all, run_protocol)
from exprbench.runs.config import RunConfig
from exprbench.runs.loader import checkpoint_source, load_source
from exprbench.metrics.run.run_checks import (check_fingerprint, resolve_eval_data_path, run_train_fingerprint,
    unfinished_warnings)
from exprbench.metrics.protocols.catalog import resolve_metric


def evaluate_run(
    run_dir: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    n_samples: int | None = None,
    device: str = "auto",
    data: str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    evaluator_weights: str | os.PathLike | None = None,
    checkpoint: str | int | None = "latest",
    reporter: EvalReporter | None = None,
    strict: bool = False,
    ci_draws: int | None = None,
    keep_samples: bool = False,
) -> dict:
    """Evaluate a checkpoint of a run and merge the results into ``run_dir/eval.json`` (atomically).

    Args:
        run_dir: a run directory (config.json + checkpoints/).
        metrics: protocol names (default: the default set, see ``exprbench metrics``); names with
            another count (``fid1k_train``) are accepted.
        n_samples: override every protocol's sample count; the recorded names carry it.
        device: ``auto``, ``cpu`` or ``cuda``.
        data: dataset path (default: the run's ``data.path``, else ``$EXPRBENCH_DATA``).
        inception_weights: torch-fidelity Inception-V3 weights (default: torch hub cache, if present).
        evaluator_weights: evaluator weights (default: the shipped ``metrics/weights/fer_evaluator.pt``).
        checkpoint: the step to evaluate, or ``latest`` (default); recorded as ``run.step`` and in each entry.
        reporter: progress hooks (:class:`~exprbench.metrics.run.progress.EvalReporter`; default: silent).
        strict: refuse (before any work) when the run's training data fingerprint (status.json
            ``data_fingerprint``) differs from the evaluation data's; otherwise a warning line, stored in
            eval.json ``warnings``.
        ci_draws: bootstrap draws of each entry's ``ci95`` (None: ``bootstrap.CI_DRAWS`` = 200; 0: no
            intervals); stored in each entry as ``ci_draws``. Values do not depend on it.
        keep_samples: keep the generated sets in ``run_dir/.generated/`` after the evaluation (see
            :mod:`.sample_store`), so a re-evaluation of this checkpoint reads them; they are kept until
            eval.json is written in any case, so a stopped evaluation resumes without drawing them again.

    Returns:
        The merged eval.json content: ``{"metrics": {name: entry}, "references": {name: entry},
        "evaluations": [{evaluated_at, step, commit, protocols, ...}], "protocol_version", "versions",
        "device", "run": {model, config, seed, step, checkpoint}, "source": {"kind": "run", ...},
        "data": {...}, "evaluator": {...}, "wall_s"}``; an entry is ``{"value": float | None, "std"?:
        float, "status": "ok" | "skipped" | "unavailable", "reason"?: str, "n_samples": int, "seed":
        int, "extractor": str, "extractor_sha256": str | None, "wall_s": float, "evaluated_at": ISO
        time, "step": int, "commit": str, "details"?: dict, "history"?: [earlier values]}``. Entries
        of protocols not evaluated this time are kept (see :func:`merge_eval`). The figure inputs
        (``figures/*.png`` and ``figures/index.json``, see :mod:`.figure_inputs`) are written too. FID/KID in squared
        feature units, accuracies and precision/recall as fractions in [0, 1].

    Raises:
        UserError (exit code 2 in the CLI): not a run directory, no checkpoint or no checkpoint at the
        asked step, unknown protocol, bad sample count, dataset not found or of another label set,
        missing evaluator weights, an explicit Inception weights path that does not exist, an
        existing eval.json that is not valid JSON, ``strict`` and other data than the run was trained on.
        EvaluationInterrupted (exit code 130): Ctrl-C; the protocols that had finished are merged into
        eval.json first (the message names them).

    A stopped evaluation resumes: each finished protocol is also kept in ``run_dir/.eval.partial.json``
    (:class:`~exprbench.metrics.run.evaljson.PartialEval`), and an evaluation of the same checkpoint, data and
    evaluator started again (e.g. after a killed job) computes only the protocols that file lacks.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    protos, dev, ckpt_path = _check_request(run_dir, metrics, n_samples, checkpoint, device, inception_weights)
    cfg, model, spec, step = load_source(run_dir, ckpt_path, dev)
    path = resolve_eval_data_path(data, cfg.data.path)
    ds = _load_run_data(path, cfg, spec, protos)
    train_fp = run_train_fingerprint(run_dir)
    warnings = check_fingerprint(run_dir, train_fp, ds.fingerprint, path, strict)
    warnings += unfinished_warnings(run_dir, step, cfg.train.steps if cfg.train.minutes is None else None)
    reporter = reporter or EvalReporter()
    store = SampleStore(run_dir / SAMPLES_FOLDER, {"checkpoint_sha256": file_sha256(ckpt_path), "model": cfg.model,
                                                   "sampling": model.sampling_info(), "batch": GENERATION_BATCH},
                        keep=keep_samples)
    ctx = _run_context(run_dir, model, ds, dev, evaluator_weights, inception_weights, reporter, ci_draws, store)
    stamp = _stamp(step, model)
    reporter.begin([p.name for p in protos], f"{run_dir} (checkpoint step {step})")
    for w in warnings:
        reporter.note(0, len(protos), "data", w)
    rel_ckpt = str(ckpt_path.relative_to(run_dir)) if ckpt_path.is_relative_to(run_dir) else str(ckpt_path)
    out = _RunEvalFile(run_dir, t0, dev, ctx, protos, cfg, step, rel_ckpt, path, ds, train_fp, warnings, stamp)
    partial = PartialEval(run_dir / PARTIAL_NAME, {"step": step, "checkpoint": rel_ckpt, "data": ds.fingerprint,
                                                   "evaluator_sha256": ctx.evaluator.sha256, "ci_draws": ctx.ci_draws})
    done, done_refs = partial.finished([p.name for p in protos])
    for name in done:
        reporter.note(0, len(protos), name, f"kept from the stopped evaluation of step {step} ({PARTIAL_NAME})")
    try:
        results, refs = run_all([p for p in protos if p.name not in done], ctx, stamp,
                                on_done=lambda r, f: partial.save({**done, **r}, {**done_refs, **f}))
    except EvaluationInterrupted as stop:  # Ctrl-C: the protocols that finished are kept (figures as they were)
        figures_before = (read_eval(run_dir / "eval.json") or {}).get("figures")
        stop.results, stop.refs = {**done, **stop.results}, {**done_refs, **stop.refs}
        keep_finished(stop, run_dir / "eval.json", lambda r, f: (out.write(r, f, figures_before), partial.remove()))
    order = [p.name for p in protos]
    results = {n: {**done, **results}[n] for n in order}
    refs = {n: {**done_refs, **refs}[n] for n in order}
    merged = out.write(results, refs, write_figure_inputs(ctx))
    partial.remove()
    ctx.sample_store.finish()
    reporter.end(merged)
    return merged


def _check_request(run_dir: Path, metrics, n_samples, checkpoint, device,
                   inception_weights) -> tuple[list, torch.device, Path]:
    """The protocols, the device and the file the checkpoint is read from, after refusing (before any work) a directory that is not a run, a corrupt
    eval.json, a bad checkpoint and an explicit Inception weights path that does not exist."""
    from exprbench.core.devices import resolve_device

    if not (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    protos = resolve_protocols(metrics, n_samples)
    read_eval(run_dir / "eval.json")  # a corrupt eval.json is reported before any work
    source = checkpoint_source(run_dir, checkpoint)  # a bad --checkpoint too (a committed run loads its weights)
    dev = resolve_device(device)
    if inception_weights is not None:
        from exprbench.metrics.families.fidelity_inputs import inception_weights_path

        inception_weights_path(inception_weights)  # explicit path must exist (bad input otherwise)
    return protos, dev, source


def _load_run_data(path: str, cfg: RunConfig, spec, protos: list) -> FaceDataset:
    """The evaluation data in the run's label set, refused when its classes differ from the run's or a
    per-class protocol asks for fewer samples than classes."""
    ds = load_dataset(path, cfg.data.label_set)
    if tuple(ds.class_names) != tuple(spec.class_names):
        raise UserError(f"the run was trained on classes {spec.class_names}, the data has {ds.class_names}")
    check_per_class_counts(protos, len(ds.class_names))
    return ds


def _run_context(run_dir: Path, model, ds: FaceDataset, dev: torch.device, evaluator_weights, inception_weights,
                 reporter: EvalReporter, ci_draws: int | None, store: SampleStore) -> EvalContext:
    """The protocols' context over the run's model, writing its figure inputs into ``run_dir``."""
    draws = {} if ci_draws is None else {"ci_draws": int(ci_draws)}
    return EvalContext(model, ds, dev, evaluator_weights, inception_weights, reporter=reporter, sample_store=store,
                       out_dir=run_dir, image_words="generated images", **draws)


def _stamp(step: int, model) -> dict:
    """What every entry of this evaluation records: time, step, commit, and the model's sampling settings."""
    from exprbench.core.devices import library_versions

    commit = library_versions()["git_commit"]
    stamp = {"evaluated_at": now(), "step": step, "commit": commit}
    sampling = model.sampling_info()  # e.g. a diffusion model's sampler steps and guidance weight, in every entry
    if sampling:
        stamp["sampling"] = sampling
    return stamp


@dataclass
class _RunEvalFile:
    """The fields :func:`evaluate_run` merges into ``run_dir/eval.json`` besides the results (see :meth:`write`)."""

    run_dir: Path
    t0: float
    dev: torch.device
    ctx: EvalContext
    protos: list
    cfg: RunConfig
    step: int
    rel_ckpt: str
    path: str
    ds: FaceDataset
    train_fp: str | None
    warnings: list
    stamp: dict

    def write(self, results: dict, refs: dict, figures) -> dict:
        """Merge ``results``, ``refs`` and ``figures`` into eval.json (atomically); returns the merged content."""
        wall = round(time.perf_counter() - self.t0, 2)
        cfg, ds, train_fp = self.cfg, self.ds, self.train_fp
        new = {
            "metrics": results,
            "references": refs,
            **common_fields(self.dev, self.ctx, self.protos),
            "run": {"model": cfg.model, "config": cfg.config_name, "seed": cfg.train.seed, "step": self.step,
                    "label_set": cfg.data.label_set, "checkpoint": self.rel_ckpt},
            "source": {"kind": "run", "checkpoint": self.rel_ckpt, "step": self.step},
            "data": {"path": str(self.path), "fingerprint": ds.fingerprint, "content_sha256": ds.content_sha256(),
                     "train_fingerprint": train_fp,
                     "fingerprint_match": None if train_fp is None else train_fp == ds.fingerprint},
            "warnings": self.warnings,
            "figures": figures,
            "evaluated_at": self.stamp["evaluated_at"],
            "evaluations": [{**self.stamp, "checkpoint": self.rel_ckpt, "protocols": list(results), "device": None,
                             "wall_s": wall}],
            "wall_s": wall,
        }
        new["evaluations"][0]["device"] = new["device"]
        return write_eval(self.run_dir, new)


def evaluate_model(model, data: FaceDataset, metrics: Sequence[str], device: str | torch.device = "cpu",
                   evaluator_weights=None, inception_weights=None) -> dict[str, dict]:
    """Evaluate an in-memory plugin on protocols, without a run directory and without real-data references.

    Used during training for curves of a metric over steps (``exprbench bench``'s ``curve_metric``).

    Args:
        model: a model plugin (sampling in eval mode; its training state is left as it was).
        data: the dataset the references come from (its ``train`` split; ``test`` for CAS/acc).
        metrics: protocol names, e.g. ``["fid2k_train"]``.
        device: torch device of the evaluator.

    Returns:
        ``{name: entry}`` with entries as in ``eval.json`` (see :func:`evaluate_run`).

    Raises:
        UserError: unknown protocol or missing evaluator weights.
    """
    dev = device if isinstance(device, torch.device) else torch.device(device)
    protos = [resolve_metric(m) for m in metrics]
    # curves need the values only: no bootstrap intervals, no FID extrapolation
    ctx = EvalContext(model, data, dev, evaluator_weights, inception_weights, ci_draws=0)
    try:
        return {p.name: run_protocol(p, ctx, real=False) for p in protos}
    finally:
        drop_generated_cache(ctx.gen_cache_names)
