"""Running protocols: the model's value, then the real-data reference (computed once per content hash and
cached as JSON), each read from the protocol's declaration (:class:`~exprbench.metrics.protocols.spec.MetricSpec`).

A protocol's value is its family's ``compute_<family>(spec, ctx)``; its reference is the family's
``reference_<family>(spec, ctx)`` when the declaration gives ``reference`` (how it is computed); otherwise
the entry is ``unavailable`` with the declared ``no_reference`` reason. A protocol skipped for the model computes nothing (no reference either).
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from exprbench.core.errors import EvaluationInterrupted, UserError
from exprbench.core.io import cached_json, content_key

from exprbench.metrics.families.cas import cas_sha
from exprbench.metrics.families.fidelity_inputs import (EXTRACTORS, PREPROCESS_VERSION, ExtractorUnavailable, drop_generated_cache, extractor_info,
                              fidelity_cache_root)
from exprbench.metrics.protocols.names import CAS_NAME, PR_REFERENCE_SIZE
from exprbench.metrics.protocols.spec import PROTOCOL_VERSION, MetricSpec
from exprbench.metrics.protocols.catalog import default_metrics, resolve_metric
from exprbench.metrics.run.context import EvalContext

REFERENCE_SCHEMA = 3  # 3: class-balanced accuracies, the protocol's own sample count, keyed by the decoded content
REFERENCE_CACHE = "floors"  # folder of the reference cache under the fidelity cache (name kept: caches stay valid)


def entry(spec, status: str, value=None, **extra) -> dict:
    """A bare eval.json entry of ``spec`` with ``status`` (``ok``, ``skipped``, ``unavailable``)."""
    e = {"value": value, "status": status, "n_samples": spec.n_samples, "seed": spec.seed, "extractor": spec.extractor,
         "extractor_sha256": None, "wall_s": 0.0}
    e.update(extra)
    return e


def run_protocol(spec: MetricSpec, ctx: EvalContext, real: bool) -> dict:
    """The eval.json entry of ``spec``: the model's value (``real=False``: its family's ``compute``) or its
    real-data reference (``real=True``: its family's ``reference``), with status, count, seed and wall time.

    Raises:
        RegistryError: the declared module lacks the family's function.
    """
    t0 = time.perf_counter()
    reason = ctx.data_reason(spec) if real else ctx.skip_reason(spec)
    if reason:
        return entry(spec, "skipped", reason=reason)
    family_fn = spec.reference_fn() if real else spec.compute_fn()
    if family_fn is None:
        return entry(spec, "unavailable", reason=f"no real-data reference: {spec.no_reference}")
    try:
        res = family_fn(spec, ctx)
    except ExtractorUnavailable as e:
        return entry(spec, "unavailable", reason=str(e))
    e = entry(spec, res.pop("status", "ok"))
    e.update(res)
    e["wall_s"] = round(time.perf_counter() - t0, 3)
    return e


def reference_key(spec, ctx) -> str:
    """Content hash of everything a real-data reference depends on (never the model)."""
    if spec.extractor == CAS_NAME:
        sha = cas_sha()
    elif spec.extractor in EXTRACTORS:
        _, sha = extractor_info(spec.extractor, ctx.evaluator_weights, ctx.inception_weights)
    else:  # e.g. model-encoder: the reference is the evaluator's
        sha = ctx.evaluator.sha256
    parts = {"protocol_version": PROTOCOL_VERSION, "floor_schema": REFERENCE_SCHEMA, "protocol": spec.key_fields(),
             "data": ctx.data.content_sha256(), "preprocess": PREPROCESS_VERSION, "label_set": ctx.data.label_set,
             "evaluator": ctx.evaluator.sha256, "extractor_sha256": sha}
    return content_key(parts)


def reference(spec, ctx) -> dict:
    """The real-data reference of ``spec``, computed once per content hash and cached as JSON.

    References do not depend on the model, so every run of a suite shares them; the cache file's name is
    a hash of the protocol definition, the decoded data's content hash and preprocessing version, label set,
    evaluator and extractor weights (:func:`reference_key`).
    """
    if spec.reference is None:  # nothing to compute, nothing to cache
        return run_protocol(spec, ctx, real=True)
    try:
        path = fidelity_cache_root() / REFERENCE_CACHE / f"{spec.name}-{reference_key(spec, ctx)}.json"
    except ExtractorUnavailable:  # e.g. no Inception weights: the protocol reports itself unavailable
        return run_protocol(spec, ctx, real=True)

    def compute() -> dict:
        ctx.note("real-data value (real images in place of generated), one-time, then cached")
        return run_protocol(spec, ctx, real=True)

    return cached_json(path, compute, keep=lambda e: e["status"] == "ok")


def reference_not_run(spec) -> dict:
    """The reference entry of a skipped protocol: nothing is computed for it."""
    if spec.reference is None:
        return entry(spec, "unavailable", reason=f"no real-data reference: {spec.no_reference}")
    return entry(spec, "skipped", reason="not computed: the protocol is skipped here")


def what_line(spec, ctx) -> str:
    """One phrase for the start line of ``spec``: what it computes on how many images (its ``what``)."""
    per = spec.n_samples // ctx.k
    if spec.show.what:
        return spec.show.what.format(n=spec.n_samples, per=per, per_total=per * ctx.k, src=ctx.image_words, seed=spec.seed,
                                extractor=spec.extractor,
                                pr_ref=f"{min(PR_REFERENCE_SIZE, len(ctx.train)):,} train images")
    head = spec.summary.split(":")[0] if spec.summary else spec.family
    return f"{head} ({spec.n_samples:,} images, seed {spec.seed})"


def references_note(specs: Sequence) -> str:
    """How each protocol's real-data reference is computed, from the declarations (eval.json ``references_note``)."""
    parts = [f"{s.name}: {s.reference if s.reference is not None else 'none (' + s.no_reference + ')'}" for s in specs]
    return "real data in place of generated; " + "; ".join(parts) + "; protocols skipped here: not computed"


def run_all(specs: Sequence, ctx, stamp: dict, on_done=None) -> tuple[dict, dict]:
    """Run ``specs`` (model value, then real-data reference) with the reporter's lines; entries get ``stamp``.

    ``on_done(results, refs)``, when given, is called after each protocol with everything finished so far
    (:func:`exprbench.metrics.run.evaluate.evaluate_run` keeps them in a partial file, for a resumed evaluation).

    Returns ``(metrics, references)``: ``{name: entry}`` each. A protocol that is skipped here computes
    nothing: neither its feature references nor its real-data reference.

    Raises:
        EvaluationInterrupted: Ctrl-C; it carries the protocols that had finished (``results``, ``refs``) and
            the one it stopped in (``at``), for the caller to write.
    """
    rep = ctx.reporter
    results, refs = {}, {}
    total = len(specs)
    torch.manual_seed(0)
    spec = None
    try:
        for i, spec in enumerate(specs, 1):
            ctx.at = (i, total, spec.name)
            t0 = time.perf_counter()
            if ctx.skip_reason(spec) is None:
                rep.protocol_start(i, total, spec.name, what_line(spec, ctx))
            e = run_protocol(spec, ctx, real=False)
            ref = reference_not_run(spec) if e["status"] == "skipped" else reference(spec, ctx)
            e.update(stamp)
            results[spec.name], refs[spec.name] = e, ref
            rep.protocol_end(i, total, spec.name, e, ref, time.perf_counter() - t0)
            if on_done is not None:
                on_done(results, refs)
    except KeyboardInterrupt:
        raise EvaluationInterrupted("interrupted", results, refs, spec.name if spec is not None else "") from None
    finally:
        ctx.at = (0, 0, "")
        drop_generated_cache(ctx.gen_cache_names)
    return results, refs


def keep_finished(stop: EvaluationInterrupted, eval_file, write) -> None:
    """After Ctrl-C in :func:`run_all`: write the protocols that had finished (``write(results, refs)`` merges
    them into ``eval_file``), then raise the one-line :class:`EvaluationInterrupted` saying what was kept.

    Raises:
        EvaluationInterrupted: always (CLI exit code 130).
    """
    where = f" during {stop.at}" if stop.at else ""
    if not stop.results:
        raise EvaluationInterrupted(f"interrupted{where}: no protocol had finished; {eval_file} unchanged") from None
    write(stop.results, stop.refs)
    raise EvaluationInterrupted(f"interrupted{where}: the {len(stop.results)} finished protocol(s) "
                                f"({', '.join(stop.results)}) were written to {eval_file}; "
                                "evaluate again for the rest") from None


def resolve_protocols(metrics: Sequence[str] | None, n_samples: int | None) -> list:
    """The declarations of ``metrics`` (default: the default set), renamed to ``n_samples`` when given, once each.

    Raises:
        UserError: ``n_samples`` < 1; RegistryError: an unknown name.
    """
    if n_samples is not None and int(n_samples) < 1:
        raise UserError(f"--n-samples must be positive, got {n_samples}")
    specs = [resolve_metric(m) for m in (metrics or default_metrics())]
    if n_samples is not None:
        specs = [s.with_n(int(n_samples)) for s in specs]
    seen: dict = {}
    for s in specs:
        seen.setdefault(s.name, s)
    return list(seen.values())


def check_per_class_counts(specs: Sequence, k: int) -> None:
    """Refuse a per-class protocol asked for fewer samples than classes.

    Raises:
        UserError: names the protocol, the class count and the sample count.
    """
    for s in specs:
        if s.per_class and s.n_samples < k:
            raise UserError(f"{s.name}: needs at least one sample per class ({k}), got {s.n_samples}")


def common_fields(dev: torch.device, ctx, specs: Sequence) -> dict:
    """The eval.json fields every evaluation writes: references note, protocol version, versions, device, evaluator."""
    import torch_fidelity

    from exprbench.core.devices import device_name, library_versions

    return {
        "references_note": references_note(specs),
        "protocol_version": PROTOCOL_VERSION,
        "versions": {**library_versions(), "torch_fidelity": getattr(torch_fidelity, "__version__", "unknown")},
        "device": device_name(dev),
        "evaluator": {"sha256": ctx.evaluator.sha256, "test_accuracy": ctx.evaluator.card.get("test_accuracy")},
    }


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
