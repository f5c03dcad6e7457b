"""``exprbench sweep RUN_DIR --set model.guidance=0,0.5,1,2,4``: the same protocols on one checkpoint at several
values of a sampling setting, e.g. the fidelity/conditioning trade-off of classifier-free guidance (Ho &
Salimans 2022, "Classifier-Free Diffusion Guidance", Fig. 4: FID against Inception score over w).

A sampling setting is a config field the plugin lists in ``sampling_settings`` (it changes how a trained model
samples, not what it learned), so no value needs a training of its own. The result goes to
``RUN_DIR/sweeps/<setting>.json``::

    {"setting": "model.guidance", "metrics": [...], "run": {model, config, seed, step, checkpoint},
     "key": {...}, "points": [{"value": w, "sampling": {...}, "metrics": {name: entry}, "evaluated_at"}],
     "references": {name: entry}, "evaluator": {...}, "versions": {...}, "device": "..."}

with eval.json's entries (value, bootstrap ``ci95``, details such as precision and recall). The file is written
after each value, and a sweep started again on the same checkpoint, data, evaluator and protocols computes only
the values it lacks (a diffusion model's values take minutes to hours each on a CPU).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from exprbench.core.errors import ConfigError, UserError
from exprbench.core.io import file_sha256, read_json, write_json
from exprbench.data import load_dataset
from exprbench.runs.config import set_key
from exprbench.runs.loader import checkpoint_source, load_source

from exprbench.metrics.run.context import EvalContext
from exprbench.metrics.run.eval_config import GENERATION_BATCH
from exprbench.metrics.run.progress import EvalReporter
from exprbench.metrics.run.references import common_fields, now, resolve_protocols, run_all
from exprbench.metrics.run.run_checks import resolve_eval_data_path
from exprbench.metrics.run.sample_store import FOLDER as SAMPLES_FOLDER, SampleStore

#: what a sweep measures by default: label accuracy (100 per emotion), realism FID and precision/recall (2,000 images)
DEFAULT_SWEEP_METRICS = ("acc_gen700", "fid2k_train_ml", "pr2k_train_ml")
FOLDER = "sweeps"


def parse_setting(text: str) -> tuple[str, list]:
    """``model.guidance=0,0.5,1`` -> ``("guidance", [0.0, 0.5, 1.0])`` (values as numbers where they parse).

    Raises:
        UserError: not ``model.FIELD=V1,V2,...`` with at least one value, or a value repeated.
    """
    from exprbench.runs.config import parse_value

    key, eq, raw = text.partition("=")
    section, _, field = key.strip().partition(".")
    values = [parse_value(v.strip()) for v in raw.split(",") if v.strip()]
    if not eq or section != "model" or not field or not values:
        raise UserError(f"--set {text!r}: expected model.FIELD=V1,V2,... (e.g. model.guidance=0,0.5,1,2,4)")
    if len(set(map(str, values))) != len(values):
        raise UserError(f"--set {text!r}: a value is given twice")
    return field, values


def sweep_run(run_dir: str | os.PathLike, setting: str, values: Sequence, metrics: Sequence[str] = DEFAULT_SWEEP_METRICS,
              device: str = "auto", data: str | os.PathLike | None = None, evaluator_weights=None,
              checkpoint: str | int | None = "latest", reporter: EvalReporter | None = None) -> dict:
    """Evaluate ``metrics`` on one checkpoint at each value of the sampling setting ``model.<setting>``.

    Args:
        run_dir: a run directory; setting: a field of the plugin's ``sampling_settings`` (e.g. ``guidance``).
        values: the values, in order (each validated as ``--set model.<setting>=value`` would be).
        metrics: protocol names that score generated images (default :data:`DEFAULT_SWEEP_METRICS`).
        device, data, evaluator_weights, checkpoint, reporter: as for
            :func:`~exprbench.metrics.run.evaluate.evaluate_run`.

    Returns:
        The content of ``run_dir/sweeps/<setting>.json`` (see the module docstring).

    Raises:
        UserError (exit code 2): not a run, a setting the model does not list, a bad value (with the field's
        range), or a protocol that does not score generated images.
    """
    from exprbench.core.devices import resolve_device

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    protos = resolve_protocols(list(metrics), None)
    bad = [p.name for p in protos if not p.scores_images]
    if bad:
        raise UserError(f"sweep: {bad[0]} does not score generated images (a sweep varies how the model samples)")
    source, dev = checkpoint_source(run_dir, checkpoint), resolve_device(device)
    cfg, model, spec, step = load_source(run_dir, source, dev)
    if setting not in type(model).sampling_settings:
        raise UserError(f"sweep: model.{setting} is not a sampling setting of {cfg.model!r} (its sampling settings: "
                        f"{', '.join(type(model).sampling_settings) or 'none'})")
    values = [_checked(model.cfg, setting, v) for v in values]
    ds = load_dataset(resolve_eval_data_path(data, cfg.data.path), cfg.data.label_set)
    reporter = reporter or EvalReporter()
    ctx = EvalContext(model, ds, dev, evaluator_weights, None, reporter=reporter)
    ckpt_sha = file_sha256(source)
    key = {"step": step, "checkpoint_sha256": ckpt_sha, "data": ds.fingerprint, "evaluator_sha256": ctx.evaluator.sha256,
           "metrics": [p.name for p in protos]}
    path = run_dir / FOLDER / f"{setting}.json"
    doc = _resumed(path, key) or {"setting": f"model.{setting}", "metrics": key["metrics"], "key": key, "points": [],
                                  "references": {}}
    doc["run"] = {"model": cfg.model, "config": cfg.config_name, "seed": cfg.train.seed, "step": step,
                  "checkpoint": str(source.relative_to(run_dir)) if source.is_relative_to(run_dir) else str(source)}
    done = {repr(p["value"]) for p in doc["points"]}
    for v in values:
        if repr(v) in done:
            reporter.note(0, 0, f"{setting}={v}", f"kept from an earlier sweep ({path})")
            continue
        set_key(model.cfg, setting, v, prefix="model.")
        store = SampleStore(run_dir / SAMPLES_FOLDER, {"checkpoint_sha256": ckpt_sha, "model": cfg.model,
                                                       "sampling": model.sampling_info(), "batch": GENERATION_BATCH})
        ctx = EvalContext(model, ds, dev, evaluator_weights, None, reporter=reporter, sample_store=store)
        reporter.begin([p.name for p in protos], f"{run_dir} (step {step}), model.{setting}={v}")
        results, refs = run_all(protos, ctx, {"evaluated_at": now(), "step": step})
        doc["points"].append({"value": v, "sampling": model.sampling_info(), "metrics": results,
                              "evaluated_at": now()})
        doc["references"].update(refs)
        doc.update(common_fields(dev, ctx, protos))
        write_json(path, doc)
        ctx.sample_store.finish()
    order = {repr(v): i for i, v in enumerate(values)}
    doc["points"].sort(key=lambda p: order.get(repr(p["value"]), len(order)))
    write_json(path, doc)
    return doc


def _checked(cfg, setting: str, value):
    """``value`` coerced and range-checked as ``--set model.<setting>=value`` (on a copy of the config)."""
    import copy

    probe = copy.deepcopy(cfg)
    try:
        set_key(probe, setting, value, prefix="model.")
    except ConfigError as e:
        raise UserError(f"sweep: {e}") from None
    return getattr(probe, setting)


def _resumed(path: Path, key: dict) -> dict | None:
    """An earlier sweep file of the same checkpoint, data, evaluator and protocols, or None."""
    old = read_json(path) if path.is_file() else None
    return old if isinstance(old, dict) and old.get("key") == key and isinstance(old.get("points"), list) else None
