"""The conditions of the metric validity study (:mod:`.study`) and their scoring, in the study's order: the
unchanged faces and the degradations at their strengths, mode dropping (:data:`DROPPED` emotions replaced)
and collapse (to :data:`COLLAPSE_K` distinct faces), memorisation (:data:`MEMORISED` fractions of train faces),
then the runs' checkpoints (``progress``) and the pair. Each scored set gives one record per protocol, with
a progress line of its wall and CPU time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from exprbench.core.errors import UserError

from exprbench.metrics.protocols.names import CAS_NAME
from exprbench.metrics.protocols.spec import MetricSpec
from exprbench.metrics.protocols.catalog import all_metrics, resolve_metric
from exprbench.metrics.validity.criteria import CAS_CONDITIONS
from exprbench.metrics.validity.degrade import DEGRADATIONS, collapse, drop_emotions, memorise

if TYPE_CHECKING:
    from exprbench.data import FaceDataset
    from exprbench.metrics.validity.study import StudyOptions

STUDY_SEED = 0  # seed of the set changes (mode dropping, collapse, memorisation)
DROPPED = (1, 2, 3)  # emotions removed
COLLAPSE_K = (1000, 100, 10)  # distinct faces kept
MEMORISED = (0.25, 0.5, 1.0)  # fraction of train faces submitted


def base_name(spec: MetricSpec) -> str:
    """The registered name of a protocol evaluated at another count."""
    for name in sorted(all_metrics()):
        p = resolve_metric(name)
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
    for key in spec.show.derived:
        rec[key] = d.get(key)
        rec[f"{key}_ci95"] = d.get(f"{key}_ci95")
    return rec


class Scorer:
    """Scores image sets (or a model) with the study's protocols, sharing the data and extractors."""

    def __init__(self, specs, ds, dev, opts: StudyOptions) -> None:
        self.specs, self.ds, self.dev, self.opts = specs, ds, dev, opts

    def _specs(self, condition: str, cas: str = "with"):
        return [s for s in self.specs if (s.extractor != CAS_NAME and cas != "only")
                or (s.extractor == CAS_NAME and condition in CAS_CONDITIONS and cas != "without")]

    def _run(self, ctx, condition: str, cas: str = "with") -> dict:
        from exprbench.metrics.families.fidelity_inputs import drop_generated_cache
        from exprbench.metrics.run.references import run_protocol

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
        ctx = ImagesContext(iset, what, self.ds, self.dev, self.opts.evaluator_weights, self.opts.inception_weights,
                            ci_draws=self.opts.ci_draws)
        return self._run(ctx, condition, cas)

    def model(self, model, condition: str) -> dict:
        from exprbench.metrics.run.context import EvalContext

        ctx = EvalContext(model, self.ds, self.dev, self.opts.evaluator_weights, self.opts.inception_weights,
                          ci_draws=self.opts.ci_draws)
        return self._run(ctx, condition)


class Records:
    """The study's records, added scored set by scored set; ``timed`` logs each set's wall and CPU time."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.records: list[dict] = []

    def add(self, res: dict, condition: str, strength: int, param, **extra) -> None:
        """One record per protocol of ``res`` (``{name: (spec, entry)}``) at this condition and strength."""
        self.records.extend(_record(s, e, condition, strength, param, **extra) for s, e in res.values())

    def timed(self, what: str, fn):
        """``fn()``, with a log line of its wall and CPU time."""
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        self.log(f"{what}: {time.perf_counter() - t:.1f} s ({time.process_time() - c:.1f} s CPU)")
        return out


@dataclass
class StudySets:
    """The faces the study changes: the scored PrivateTest faces and labels, the train split (the memorised
    faces), the emotions in drop order, and CAS's real train set (None without CAS)."""

    imgs: torch.Tensor
    labs: torch.Tensor
    train: FaceDataset
    class_names: Sequence[str]
    order: list[int]
    cas_imgs: torch.Tensor | None = None
    cas_labs: torch.Tensor | None = None


def score_degradations(rec: Records, scorer: Scorer, sets: StudySets, strengths: Sequence[int]) -> dict:
    """Score the unchanged faces (strength 0 of every degradation; returned) and each degradation's strengths."""
    imgs, labs = sets.imgs, sets.labs
    base = rec.timed("real PrivateTest faces (strength 0)", lambda: scorer.images(imgs, labs, "privatetest", "base"))
    for name, d in DEGRADATIONS.items():
        rec.add(base, name, 0, d.levels[0])
        for st in strengths[1:]:
            rec.add(rec.timed(f"{name} {d.levels[st]}", lambda: scorer.images(d.apply(imgs, st), labs, f"{name}-{st}", name)),
                    name, st, d.levels[st])
    return base


def score_cas_base(rec: Records, scorer: Scorer, sets: StudySets, base: dict) -> dict:
    """Strength 0 of mode dropping and collapse: the unchanged faces' scores, with CAS's on its real train set."""
    cas_base = rec.timed("CAS: real train faces (strength 0)", lambda: scorer.images(
        sets.cas_imgs, sets.cas_labs, "train-balanced", "drop_emotions", cas="only")) if sets.cas_imgs is not None else {}
    return {**base, **cas_base}


def score_dropped_emotions(rec: Records, scorer: Scorer, sets: StudySets, sub: Sequence[int], mode_base: dict) -> None:
    """Score the faces with the first :data:`DROPPED` emotions of the drop order replaced (CAS: its train set)."""
    imgs, labs, order = sets.imgs, sets.labs, sets.order
    rec.add(mode_base, "drop_emotions", 0, "")
    for i in sub:
        m = DROPPED[i - 1]
        gone = [sets.class_names[c] for c in order[:m]]
        x = drop_emotions(imgs, labs, order[:m], STUDY_SEED)
        rec.add(rec.timed(f"drop {', '.join(gone)}", lambda: scorer.images(x, labs, f"drop-{m}", "drop_emotions", "without")),
                "drop_emotions", i, ",".join(gone))
        if sets.cas_imgs is not None:
            xc = drop_emotions(sets.cas_imgs, sets.cas_labs, order[:m], STUDY_SEED)
            rec.add(rec.timed(f"CAS: drop {', '.join(gone)}", lambda: scorer.images(
                xc, sets.cas_labs, f"cas-drop-{m}", "drop_emotions", "only")), "drop_emotions", i, ",".join(gone))


def score_collapse(rec: Records, scorer: Scorer, sets: StudySets, sub: Sequence[int], mode_base: dict) -> None:
    """Score the faces collapsed to :data:`COLLAPSE_K` distinct faces repeated (CAS: its train set)."""
    rec.add(mode_base, "collapse", 0, "all")
    for i in sub:
        kk = COLLAPSE_K[i - 1]
        x, y = collapse(sets.imgs, sets.labs, kk, STUDY_SEED)
        rec.add(rec.timed(f"collapse to {kk} faces", lambda: scorer.images(x, y, f"collapse-{kk}", "collapse", "without")),
                "collapse", i, kk)
        if sets.cas_imgs is not None:
            xc, yc = collapse(sets.cas_imgs, sets.cas_labs, kk, STUDY_SEED)
            rec.add(rec.timed(f"CAS: collapse to {kk} faces", lambda: scorer.images(
                xc, yc, f"cas-collapse-{kk}", "collapse", "only")), "collapse", i, kk)


def score_memorisation(rec: Records, scorer: Scorer, sets: StudySets, sub: Sequence[int], base: dict) -> None:
    """Score the faces with :data:`MEMORISED` fractions replaced by train faces of the same emotion."""
    rec.add(base, "memorisation", 0, 0.0)
    for i in sub:
        f = MEMORISED[i - 1]
        x = memorise(sets.imgs, sets.labs, sets.train.images, sets.train.labels, f, STUDY_SEED)
        rec.add(rec.timed(f"memorised {f:.0%}", lambda: scorer.images(x, sets.labs, f"mem-{f}", "memorisation")),
                "memorisation", i, f)


def score_runs(rec: Records, scorer: Scorer, points: Sequence[tuple[Path, int | str]], pair: Sequence[Path]) -> None:
    """Score the models of the progress points and of the pair (their latest checkpoints), through the run loader.

    Raises:
        UserError: a run trained on other classes than the study's data.
    """
    from exprbench.runs.loader import checkpoint_source, load_source

    for cond, pts in (("progress", points), ("pair", [(r, "latest") for r in pair])):
        for j, (run, ck) in enumerate(pts):
            ckpt = checkpoint_source(run, ck)  # the file loaded is the one recorded
            cfg, model, mspec, step = load_source(run, ckpt, scorer.dev)
            if tuple(mspec.class_names) != tuple(scorer.ds.class_names):
                raise UserError(f"{run}: trained on classes {mspec.class_names}, the study data has {scorer.ds.class_names}")
            res = rec.timed(f"{cond} {run} step {step}", lambda: scorer.model(model, cond))
            rec.add(res, cond, j, step, run=str(run), checkpoint=str(ckpt))


def rank_runs(records: list[dict], points: Sequence, pair: Sequence[Path]) -> None:
    """Set the strengths of the run records: the pair's face-drawing run 0 and untrained-looking one 1; the
    progress points their rank by (step, run)."""
    if len(pair) == 2:  # strength 0: the face-drawing run, 1: the untrained-looking one
        for r in records:
            if r["condition"] == "pair":
                r["strength"] = 0 if r["run"] == str(pair[1]) else 1
    if len(points) > 1:
        by_step = sorted({(r["param"], r["run"]) for r in records if r["condition"] == "progress"})
        for r in records:
            if r["condition"] == "progress":
                r["strength"] = by_step.index((r["param"], r["run"]))
