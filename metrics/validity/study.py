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

The conditions are scored, in this order, by :mod:`.study_conditions`.

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
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from exprbench.core.errors import UserError

from exprbench.metrics.validity.degrade import DEGRADATIONS
from exprbench.metrics.protocols.names import CAS_NAME, EXTRACTOR_NAME
from exprbench.metrics.protocols.spec import MetricSpec
from exprbench.metrics.protocols.catalog import all_metrics
from exprbench.metrics.protocols.catalog import resolve_metric
from exprbench.metrics.validity.criteria import CAS_CONDITIONS, judge, protocol_row
from exprbench.metrics.validity.study_conditions import (STUDY_SEED, Records, Scorer, StudySets, base_name,
    rank_runs, score_cas_base, score_collapse, score_degradations, score_dropped_emotions, score_memorisation,
    score_runs)

if TYPE_CHECKING:
    from exprbench.data import FaceDataset

STUDY_N = 3000  # generated images of every sample-based protocol in the study
QUICK_N = 500
STUDY_TABLES = ("fidelity", "coverage", "class_aware")


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

    names = [n_ for n_ in all_metrics() if resolve_metric(n_).show.table in STUDY_TABLES]
    if only:
        picked = []
        for o in only:
            s = resolve_metric(o)
            base = next((m for m in names if resolve_metric(m).family == s.family and resolve_metric(m).extractor == s.extractor
                         and resolve_metric(m).name_pattern == s.name_pattern), None)
            if base is None:
                raise UserError(f"--only {o}: not a protocol of the tables {', '.join(STUDY_TABLES)} "
                                f"(studied: {', '.join(names)})")
            picked.append(base)
        names = [m for m in names if m in picked]
    specs, skipped = [], []
    for name in names:
        s = resolve_metric(name)
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
    t0, c0 = time.perf_counter(), time.process_time()
    if opts.n < 2:
        raise UserError(f"--n must be at least 2, got {opts.n}")
    points, pair = checkpoint_points(opts.progress, opts.pair)
    st = _prepare_study(opts)
    strengths = (0, 2, 4) if opts.quick else (0, 1, 2, 3, 4)
    meta = _study_meta(opts, st, strengths, points, pair)
    if opts.check is not None:
        opts.check(meta)
    records = _score_conditions(opts, st, strengths, points, pair)
    protos = [protocol_row(base_name(s), s.family, s.extractor, s.direction) for s in st.specs]

    crit, verdicts = judge(records, protos, bool(points), len(pair) == 2)
    meta["wall_s"], meta["cpu_s"] = round(time.perf_counter() - t0, 1), round(time.process_time() - c0, 1)
    return {"study": meta, "skipped": st.skipped, "records": records, "criteria": crit, "verdicts": verdicts}


@dataclass
class _Study:
    """What the study scores, prepared before any image is: the data and device, the faces it changes, the
    per-class count, the protocols (and those skipped) and the note on CAS's real set."""

    path: str
    ds: FaceDataset
    dev: torch.device
    n_test: int
    sets: StudySets
    per: int
    per_class_n: int
    specs: list[MetricSpec]
    skipped: list[dict]
    cas_note: str | None


def _prepare_study(opts: StudyOptions) -> _Study:
    """Load the data, pick the scored faces and the protocols at the study's counts, and CAS's real set."""
    path, ds, dev, test, train, imgs, labs = _load_faces(opts)
    k = len(ds.class_names)
    per = int(torch.bincount(labs, minlength=k).min())
    per_class_n = min(per, opts.n // k) * k
    specs, skipped = _study_specs(opts, per_class_n)
    cas_imgs, cas_labs, cas_note = _cas_set(specs, ds, train)
    sets = StudySets(imgs, labs, train, ds.class_names, _drop_order(ds), cas_imgs, cas_labs)
    return _Study(path, ds, dev, len(test), sets, per, per_class_n, specs, skipped, cas_note)


def _load_faces(opts: StudyOptions) -> tuple:
    """``(data path, dataset, device, test split, train split, faces, labels)``: the scored faces are the
    PrivateTest faces that are not pixel copies of a train face."""
    from exprbench.data import load_dataset
    from exprbench.core.devices import resolve_device

    from exprbench.metrics.families.memorisation import duplicate_mask
    from exprbench.metrics.run.run_checks import resolve_eval_data_path

    path = resolve_eval_data_path(opts.data, None)
    ds = load_dataset(path, "fer7")
    dev = resolve_device(opts.device)
    test, train = ds.split("test"), ds.split("train")
    unseen = ~duplicate_mask(test.images, train.images)  # test faces that are pixel copies of train faces are left out
    return path, ds, dev, test, train, test.images[unseen], test.labels[unseen]


def _study_specs(opts: StudyOptions, per_class_n: int) -> tuple[list[MetricSpec], list[dict]]:
    """The protocols studied and those skipped (each logged); refuses a study with none left."""
    specs, skipped = study_protocols(opts.only, opts.n, per_class_n, opts.evaluator_weights, opts.inception_weights,
                                     opts.cas and not opts.quick)
    if not specs:
        raise UserError("no protocol left to study: " + "; ".join(f"{s['protocol']}: {s['reason']}" for s in skipped))
    for s in skipped:
        opts.log(f"skip {s['protocol']} ({s['space']}): {s['reason']}")
    return specs, skipped


def _cas_set(specs: list[MetricSpec], ds: FaceDataset, train: FaceDataset) -> tuple:
    """``(images, labels, note)`` of CAS's real train set, the set of its real-data baseline, when CAS is
    studied (it tests on PrivateTest); ``(None, None, None)`` otherwise."""
    cas_spec = next((s for s in specs if s.extractor == CAS_NAME), None)
    if cas_spec is None:
        return None, None, None
    from exprbench.metrics.families.cas import CAS, balanced_real_subset

    k = len(ds.class_names)
    cas_per = cas_spec.n_samples // k
    cas_imgs, cas_labs = balanced_real_subset(train, cas_per, CAS.seed + 1)
    short = [ds.class_names[c] for c, m in enumerate(torch.bincount(train.labels, minlength=k).tolist())
             if m < cas_per]
    cas_note = (f"{cas_per * k:,} real train faces, {cas_per:,} per emotion (seed {CAS.seed + 1}"
                + (f"; {', '.join(short)} drawn with replacement" if short else "")
                + "): the set of CAS's real-data baseline; each classifier is tested on all PrivateTest faces")
    return cas_imgs, cas_labs, cas_note


def _study_meta(opts: StudyOptions, st: _Study, strengths: Sequence[int], points, pair) -> dict:
    """The study's metadata before any image is scored (no timings yet): settings, data, hardware, versions,
    the weights' sha256 and the runs."""
    from exprbench.core.devices import device_name, library_versions

    from exprbench.metrics.validity.criteria import CI_TOLERANCE

    ds, k, n_scored = st.ds, len(st.ds.class_names), len(st.sets.labs)
    evaluator_sha, spaces_sha = _weights_sha256(st.specs, opts)
    versions = library_versions()
    return {
        "n": opts.n, "per_class_n": st.per_class_n, "per_class_note": (
            f"per-class protocols at {st.per_class_n // k} per emotion: the smallest emotion of the scored faces has {st.per}"),
        "seed": STUDY_SEED, "quick": opts.quick, "cas": any(s.extractor == CAS_NAME for s in st.specs),
        "cas_conditions": list(CAS_CONDITIONS), "cas_scored": st.cas_note, "ci_draws": opts.ci_draws, "ci_tolerance": CI_TOLERANCE,
        "strengths": {n_: [d.levels[s] for s in strengths] for n_, d in DEGRADATIONS.items()},
        "what": {n_: d.what for n_, d in DEGRADATIONS.items()},
        "drop_order": [ds.class_names[c] for c in st.sets.order],
        "drop_labels": "the slots keep their emotion label (a conditional model asked for a dropped emotion drew "
                       "a face of another one); collapse and memorisation keep true labels",
        "commit": versions.get("git_commit"), "versions": versions,
        "data": {"path": str(st.path), "fingerprint": ds.fingerprint, "scored": f"the {n_scored:,} PrivateTest faces that are not pixel copies "
                 f"of a train face (of {st.n_test:,})", "n_scored": n_scored, "n_test": st.n_test},
        "hardware": {"device": device_name(st.dev), "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "progress": [f"{r}@{c}" for r, c in points], "pair": {"untrained": str(pair[0]), "faces": str(pair[1])}
        if len(pair) == 2 else None,
        "evaluator_sha256": evaluator_sha, "extractors_sha256": spaces_sha,
    }


def _score_conditions(opts: StudyOptions, st: _Study, strengths: Sequence[int], points, pair) -> list[dict]:
    """Score every condition in the study's order (:mod:`.study_conditions`); returns the records."""
    scorer = Scorer(st.specs, st.ds, st.dev, opts)
    sub = (1, 3) if opts.quick else (1, 2, 3)  # indices into DROPPED / COLLAPSE_K / MEMORISED (1-based)
    rec = Records(opts.log)
    base = score_degradations(rec, scorer, st.sets, strengths)
    mode_base = score_cas_base(rec, scorer, st.sets, base)
    score_dropped_emotions(rec, scorer, st.sets, sub, mode_base)
    score_collapse(rec, scorer, st.sets, sub, mode_base)
    score_memorisation(rec, scorer, st.sets, sub, base)
    score_runs(rec, scorer, points, pair)
    rank_runs(rec.records, points, pair)
    return rec.records
