"""The metric validity study (``exprbench metrics validate``): how each protocol of the leaderboard tables
``fidelity``, ``coverage`` and ``class_aware`` responds to controlled changes of real faces.

The real PrivateTest faces (with their labels; those that are pixel copies of a train face left out) are
scored as samples, through the path that scores images from any source (:class:`~exprbench.metrics.run.images_eval.ImagesContext`: the protocols' own
functions, no protocol math here), unchanged (strength 0) and changed by (:mod:`.degrade`):

* degradations of quality: blur, noise, JPEG, contrast, shift, 4 strengths each;
* mode dropping: 1, 2, 3 emotions replaced by faces of the others (the most frequent train emotions
  first; the labels stay those of the slots: the images a conditional model drew when asked for a
  dropped emotion), and collapse to k = 1000, 100, 10 distinct faces repeated (labels kept true);
* memorisation: 25, 50, 100% of the faces replaced by train faces of the same emotion;
* training progress (``progress``: a run's checkpoints, or several runs) and an untrained-looking vs a
  face-drawing run (``pair``), sampled through the run loaders.

Every protocol runs at the study's sample count (:data:`STUDY_N`; per-class protocols at the largest
class-balanced count of the scored faces); its judgement is :mod:`.validity_criteria`. CAS
trains a classifier per condition, so it runs only with ``cas=True`` and then for mode dropping,
progress and the pair only. Protocols whose extractor is unavailable (Inception without weights) are
skipped with the reason.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from exprbench.core.errors import UserError

from exprbench.metrics.validity.degrade import DEGRADATIONS, collapse, drop_emotions, memorise
from exprbench.metrics.protocols.names import CAS_NAME, EXTRACTOR_NAME
from exprbench.metrics.protocols.spec import METRICS, MetricSpec, resolve_metric
from exprbench.metrics.validity.criteria import CAS_CONDITIONS, judge, protocol_row

STUDY_N = 3000  # generated images of every sample-based protocol in the study
QUICK_N = 500
STUDY_SEED = 0  # seed of the set changes (mode dropping, collapse, memorisation)
STUDY_TABLES = ("fidelity", "coverage", "class_aware")
DROPPED = (1, 2, 3)  # emotions removed
COLLAPSE_K = (1000, 100, 10)  # distinct faces kept
MEMORISED = (0.25, 0.5, 1.0)  # fraction of train faces submitted


@dataclass
class StudyOptions:
    """What a study run does.

    Attributes:
        n: samples of every sample-based protocol; quick: strengths 0, 2, 4 only and no CAS.
        only: registered protocol names to study (empty: every protocol of :data:`STUDY_TABLES`).
        cas: run CAS (a classifier trained per condition) for mode dropping, progress and the pair.
        ci_draws: bootstrap draws of the intervals (0: none, the monotone tolerance is then 0).
        progress: run directories (one with several checkpoints, or several runs); pair: (untrained, faces).
        device, data, evaluator_weights, inception_weights: as ``exprbench evaluate``.
        check: called with the study's metadata (no timings yet) before any image is scored; it raises
            to stop the study (``exprbench metrics validate --update`` refuses other settings this way).
    """

    n: int = STUDY_N
    quick: bool = False
    only: Sequence[str] = ()
    cas: bool = False
    ci_draws: int = 0
    progress: Sequence[Path] = ()
    pair: tuple | None = None
    device: str = "cpu"
    data: str | None = None
    evaluator_weights: str | None = None
    inception_weights: str | None = None
    log: Callable[[str], None] = field(default=lambda s: None, repr=False)
    check: Callable[[dict], None] | None = field(default=None, repr=False)


def _has_model(run: Path) -> bool:
    from exprbench.runs.loader import checkpoint_steps
    from exprbench.runs.weights import FILENAME

    return bool(checkpoint_steps(run)) or (run / FILENAME).exists()


def checkpoint_points(progress: Sequence[Path], pair) -> tuple[list[tuple[Path, int | str]], list[Path]]:
    """The (run, checkpoint) points of ``progress`` and the runs of ``pair``, checked before any work.

    Raises:
        UserError: a path that is not a run directory, a run with no checkpoint, a single progress run
            with fewer than two checkpoints.
    """
    from exprbench.runs.loader import checkpoint_steps

    runs = [Path(p) for p in progress] + [Path(p) for p in (pair or ())]
    for r in runs:
        if not (r / "config.json").exists():
            raise UserError(f"{r}: not a run directory (no config.json)")
        if not _has_model(r):
            raise UserError(f"{r}: no checkpoint (checkpoints/step_*.pt) and no published weights")
    points: list[tuple[Path, int | str]] = []
    if len(progress) == 1:
        steps = checkpoint_steps(progress[0])
        if len(steps) < 2:
            raise UserError(f"--progress {progress[0]}: {len(steps)} checkpoint(s) in checkpoints/; give a run with "
                            "several step_*.pt, or several run directories")
        points = [(Path(progress[0]), s) for s in steps]
    else:
        points = [(Path(p), "latest") for p in progress]
    return points, [Path(p) for p in (pair or ())]


def study_protocols(only: Sequence[str], n: int, per_class_n: int, evaluator_weights, inception_weights,
                    cas: bool) -> tuple[list[MetricSpec], list[dict]]:
    """The protocols of the study at its counts, and those skipped (``{"protocol", "space", "reason"}``).

    Raises:
        RegistryError: an unknown name in ``only``; UserError: a name outside the study's tables.
    """
    from exprbench.metrics.families.fidelity_inputs import EXTRACTORS, ExtractorUnavailable, extractor_info

    names = [n_ for n_ in METRICS.in_order() if METRICS.get(n_).table in STUDY_TABLES]
    if only:
        picked = []
        for o in only:
            s = resolve_metric(o)
            base = next((m for m in names if METRICS.get(m).family == s.family and METRICS.get(m).extractor == s.extractor
                         and METRICS.get(m).name_pattern == s.name_pattern), None)
            if base is None:
                raise UserError(f"--only {o}: not a protocol of the tables {', '.join(STUDY_TABLES)} "
                                f"(studied: {', '.join(names)})")
            picked.append(base)
        names = [m for m in names if m in picked]
    specs, skipped = [], []
    for name in names:
        s = METRICS.get(name)
        why = None
        if not s.scores_images:
            why = "needs a model capability beyond sampling"
        elif s.extractor == CAS_NAME and not cas:
            why = "CAS trains a classifier per condition (about 2 min each on CPU): pass --cas"
        elif s.extractor in EXTRACTORS:
            try:
                extractor_info(s.extractor, evaluator_weights, inception_weights)
            except ExtractorUnavailable as e:
                why = f"feature space unavailable: {e}"
        if why:
            skipped.append({"protocol": name, "space": s.extractor, "reason": why})
            continue
        specs.append(s if s.extractor == CAS_NAME else s.with_n(per_class_n if s.per_class else n))
    return specs, skipped


def base_name(spec: MetricSpec) -> str:
    """The registered name of a protocol evaluated at another count."""
    for name in METRICS.names():
        p = METRICS.get(name)
        if p.name_pattern == spec.name_pattern and p.family == spec.family and p.extractor == spec.extractor:
            return name
    return spec.name


def _record(spec: MetricSpec, e: dict, condition: str, strength: int, param, **extra) -> dict:
    d = e.get("details") or {}
    rec = {"protocol": base_name(spec), "evaluated": spec.name, "family": spec.family, "space": spec.extractor,
           "direction": spec.direction, "condition": condition, "strength": strength, "param": param,
           "value": e.get("value"), "ci95": e.get("ci95"), "status": e.get("status"), "reason": e.get("reason"),
           "n": e.get("n_samples"), "seed": spec.seed,
           "wall_s": e.get("wall_s"), "cpu_s": e.get("cpu_s"), **extra}
    for key in spec.derived:
        rec[key] = d.get(key)
        rec[f"{key}_ci95"] = d.get(f"{key}_ci95")
    return rec


class _Scorer:
    """Scores image sets (or a model) with the study's protocols, sharing the data and extractors."""

    def __init__(self, specs, ds, dev, opts: StudyOptions) -> None:
        self.specs, self.ds, self.dev, self.opts = specs, ds, dev, opts

    def _specs(self, condition: str, cas: str = "with"):
        return [s for s in self.specs if (s.extractor != CAS_NAME and cas != "only")
                or (s.extractor == CAS_NAME and condition in CAS_CONDITIONS and cas != "without")]

    def _run(self, ctx, condition: str, cas: str = "with") -> dict:
        from exprbench.metrics.families.fidelity_inputs import drop_generated_cache
        from exprbench.metrics.run.references import run_protocol

        ctx.ci_draws = self.opts.ci_draws
        out = {}
        try:
            for s in self._specs(condition, cas):
                c = time.process_time()
                e = run_protocol(s, ctx, real=False)
                e["cpu_s"] = round(time.process_time() - c, 2)
                out[s.name] = (s, e)
            return out
        finally:
            drop_generated_cache(ctx.gen_cache_names)

    def images(self, images, labels, what: str, condition: str, cas: str = "with") -> dict:
        """Scores of the images by the protocols of ``condition``; ``cas``: "with", "without" or "only" CAS."""
        from exprbench.metrics.run.images_eval import ImagesContext
        from exprbench.metrics.run.images_source import ImageSet

        iset = ImageSet(images, labels, {"path": what, "n": int(images.shape[0])})
        ctx = ImagesContext(iset, what, self.ds, self.dev, self.opts.evaluator_weights, self.opts.inception_weights)
        return self._run(ctx, condition, cas)

    def model(self, model, condition: str) -> dict:
        from exprbench.metrics.run.context import EvalContext

        ctx = EvalContext(model, self.ds, self.dev, self.opts.evaluator_weights, self.opts.inception_weights)
        return self._run(ctx, condition)


def _drop_order(ds) -> list[int]:
    counts = torch.bincount(ds.split("train").labels, minlength=len(ds.class_names))
    return torch.argsort(counts, descending=True, stable=True).tolist()


def _weights_sha256(specs, opts: StudyOptions) -> tuple[str | None, dict[str, str]]:
    """sha256 of the evaluator weights (None when absent) and of each studied feature space's weights."""
    from exprbench.metrics.extractors.evaluator_net import EvaluatorError
    from exprbench.metrics.families.fidelity_inputs import EXTRACTORS, extractor_info

    try:
        evaluator = extractor_info(EXTRACTOR_NAME, opts.evaluator_weights)[1]
    except EvaluatorError:
        evaluator = None
    spaces = {s.extractor: extractor_info(s.extractor, opts.evaluator_weights, opts.inception_weights)[1]
              for s in specs if s.extractor in EXTRACTORS}
    return evaluator, spaces


def run_study(opts: StudyOptions) -> dict:
    """Run the study; returns ``{"study": meta, "skipped": [...], "records": [...], "criteria": rows}``.

    Raises:
        UserError (exit 2 in the CLI): bad runs (see :func:`checkpoint_points`), an unknown or non-study
            ``only`` protocol, a bad sample count, data not found, missing evaluator weights.
    """
    from exprbench.data import load_dataset
    from exprbench.core.devices import device_name, library_versions, resolve_device

    from exprbench.runs.loader import checkpoint_source, load_trained

    from exprbench.metrics.run.run_checks import resolve_eval_data_path
    from exprbench.metrics.validity.criteria import CI_TOLERANCE

    t0, c0 = time.perf_counter(), time.process_time()
    if opts.n < 2:
        raise UserError(f"--n must be at least 2, got {opts.n}")
    points, pair = checkpoint_points(opts.progress, opts.pair)
    path = resolve_eval_data_path(opts.data, None)
    ds = load_dataset(path, "fer7")
    dev = resolve_device(opts.device)
    from exprbench.metrics.families.memorisation import duplicate_mask

    test, train = ds.split("test"), ds.split("train")
    unseen = ~duplicate_mask(test.images, train.images)  # test faces that are pixel copies of train faces are left out
    imgs, labs = test.images[unseen], test.labels[unseen]
    k = len(ds.class_names)
    per = int(torch.bincount(labs, minlength=k).min())
    per_class_n = min(per, opts.n // k) * k
    specs, skipped = study_protocols(opts.only, opts.n, per_class_n, opts.evaluator_weights, opts.inception_weights,
                                     opts.cas and not opts.quick)
    if not specs:
        raise UserError("no protocol left to study: " + "; ".join(f"{s['protocol']}: {s['reason']}" for s in skipped))
    for s in skipped:
        opts.log(f"skip {s['protocol']} ({s['space']}): {s['reason']}")
    cas_spec = next((s for s in specs if s.extractor == CAS_NAME), None)
    cas_note = None
    if cas_spec is not None:  # CAS tests on PrivateTest: it is trained on its real baseline's train faces
        from exprbench.metrics.families.cas import CAS, balanced_real_subset

        cas_per = cas_spec.n_samples // k
        cas_imgs, cas_labs = balanced_real_subset(train, cas_per, CAS.seed + 1)
        short = [ds.class_names[c] for c, m in enumerate(torch.bincount(train.labels, minlength=k).tolist())
                 if m < cas_per]
        cas_note = (f"{cas_per * k:,} real train faces, {cas_per:,} per emotion (seed {CAS.seed + 1}"
                    + (f"; {', '.join(short)} drawn with replacement" if short else "")
                    + "): the set of CAS's real-data baseline; each classifier is tested on all PrivateTest faces")
    strengths = (0, 2, 4) if opts.quick else (0, 1, 2, 3, 4)
    order = _drop_order(ds)
    evaluator_sha, spaces_sha = _weights_sha256(specs, opts)
    versions = library_versions()
    meta = {
        "n": opts.n, "per_class_n": per_class_n, "per_class_note": (
            f"per-class protocols at {per_class_n // k} per emotion: the smallest emotion of the scored faces has {per}"),
        "seed": STUDY_SEED, "quick": opts.quick, "cas": any(s.extractor == CAS_NAME for s in specs),
        "cas_conditions": list(CAS_CONDITIONS), "cas_scored": cas_note, "ci_draws": opts.ci_draws, "ci_tolerance": CI_TOLERANCE,
        "strengths": {n_: [d.levels[s] for s in strengths] for n_, d in DEGRADATIONS.items()},
        "what": {n_: d.what for n_, d in DEGRADATIONS.items()},
        "drop_order": [ds.class_names[c] for c in order],
        "drop_labels": "the slots keep their emotion label (a conditional model asked for a dropped emotion drew "
                       "a face of another one); collapse and memorisation keep true labels",
        "commit": versions.get("git_commit"), "versions": versions,
        "data": {"path": str(path), "fingerprint": ds.fingerprint, "scored": f"the {len(labs):,} PrivateTest faces that are not pixel copies "
                 f"of a train face (of {len(test):,})", "n_scored": len(labs), "n_test": len(test)},
        "hardware": {"device": device_name(dev), "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "progress": [f"{r}@{c}" for r, c in points], "pair": {"untrained": str(pair[0]), "faces": str(pair[1])}
        if len(pair) == 2 else None,
        "evaluator_sha256": evaluator_sha, "extractors_sha256": spaces_sha,
    }
    if opts.check is not None:
        opts.check(meta)
    scorer = _Scorer(specs, ds, dev, opts)
    sub = (1, 3) if opts.quick else (1, 2, 3)  # indices into DROPPED / COLLAPSE_K / MEMORISED (1-based)
    records: list[dict] = []

    def add(res: dict, condition: str, strength: int, param, **extra) -> None:
        records.extend(_record(s, e, condition, strength, param, **extra) for s, e in res.values())

    def timed(what: str, fn):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        opts.log(f"{what}: {time.perf_counter() - t:.1f} s ({time.process_time() - c:.1f} s CPU)")
        return out

    base = timed("real PrivateTest faces (strength 0)", lambda: scorer.images(imgs, labs, "privatetest", "base"))
    for name, d in DEGRADATIONS.items():
        add(base, name, 0, d.levels[0])
        for st in strengths[1:]:
            add(timed(f"{name} {d.levels[st]}", lambda: scorer.images(d.apply(imgs, st), labs, f"{name}-{st}", name)),
                name, st, d.levels[st])
    cas_base = timed("CAS: real train faces (strength 0)", lambda: scorer.images(
        cas_imgs, cas_labs, "train-balanced", "drop_emotions", cas="only")) if cas_spec is not None else {}
    mode_base = {**base, **cas_base}
    add(mode_base, "drop_emotions", 0, "")
    for i in sub:
        m = DROPPED[i - 1]
        gone = [ds.class_names[c] for c in order[:m]]
        x = drop_emotions(imgs, labs, order[:m], STUDY_SEED)
        add(timed(f"drop {', '.join(gone)}", lambda: scorer.images(x, labs, f"drop-{m}", "drop_emotions", "without")),
            "drop_emotions", i, ",".join(gone))
        if cas_spec is not None:
            xc = drop_emotions(cas_imgs, cas_labs, order[:m], STUDY_SEED)
            add(timed(f"CAS: drop {', '.join(gone)}", lambda: scorer.images(
                xc, cas_labs, f"cas-drop-{m}", "drop_emotions", "only")), "drop_emotions", i, ",".join(gone))
    add(mode_base, "collapse", 0, "all")
    for i in sub:
        kk = COLLAPSE_K[i - 1]
        x, y = collapse(imgs, labs, kk, STUDY_SEED)
        add(timed(f"collapse to {kk} faces", lambda: scorer.images(x, y, f"collapse-{kk}", "collapse", "without")),
            "collapse", i, kk)
        if cas_spec is not None:
            xc, yc = collapse(cas_imgs, cas_labs, kk, STUDY_SEED)
            add(timed(f"CAS: collapse to {kk} faces", lambda: scorer.images(
                xc, yc, f"cas-collapse-{kk}", "collapse", "only")), "collapse", i, kk)
    add(base, "memorisation", 0, 0.0)
    for i in sub:
        f = MEMORISED[i - 1]
        x = memorise(imgs, labs, train.images, train.labels, f, STUDY_SEED)
        add(timed(f"memorised {f:.0%}", lambda: scorer.images(x, labs, f"mem-{f}", "memorisation")),
            "memorisation", i, f)
    for cond, pts in (("progress", points), ("pair", [(r, "latest") for r in pair])):
        for j, (run, ck) in enumerate(pts):
            cfg, model, mspec, step = load_trained(run, dev, ck)
            ckpt = checkpoint_source(run, ck)
            if tuple(mspec.class_names) != tuple(ds.class_names):
                raise UserError(f"{run}: trained on classes {mspec.class_names}, the study data has {ds.class_names}")
            res = timed(f"{cond} {run} step {step}", lambda: scorer.model(model, cond))
            add(res, cond, j, step, run=str(run), checkpoint=str(ckpt))
    if len(pair) == 2:  # strength 0: the face-drawing run, 1: the untrained-looking one
        for r in records:
            if r["condition"] == "pair":
                r["strength"] = 0 if r["run"] == str(pair[1]) else 1
    if len(points) > 1:
        by_step = sorted({(r["param"], r["run"]) for r in records if r["condition"] == "progress"})
        for r in records:
            if r["condition"] == "progress":
                r["strength"] = by_step.index((r["param"], r["run"]))
    protos = [protocol_row(base_name(s), s.family, s.extractor, s.direction) for s in specs]

    crit, verdicts = judge(records, protos, bool(points), len(pair) == 2)
    meta["wall_s"], meta["cpu_s"] = round(time.perf_counter() - t0, 1), round(time.process_time() - c0, 1)
    return {"study": meta, "skipped": skipped, "records": records, "criteria": crit, "verdicts": verdicts}
