"""Scoring images from any source (a folder of PNGs, an .npz/.npy) with the protocols that apply.

The images take the place of a model's samples: :class:`ImagesContext` "generates" n images by picking
n of them; protocols that need a model, labels the images lack, or more images than given are skipped
with the reason (from their declarations: ``needs``, ``per_class``, ``min_samples``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import torch

from exprbench.data import FaceDataset
from exprbench.core.errors import EvaluationInterrupted, UserError

from exprbench.metrics.run.context import EvalContext
from exprbench.metrics.run.evaljson import read_eval, write_eval
from exprbench.metrics.run.progress import EvalReporter
from exprbench.metrics.run.references import check_per_class_counts, common_fields, keep_finished, now, resolve_protocols, run_all
from exprbench.metrics.run.run_checks import resolve_eval_data_path
from exprbench.metrics.protocols.spec import MetricSpec
from exprbench.metrics.protocols.catalog import default_metrics, resolve_metric


class _ImageSource:
    """Stands in for a model when scoring given images: a name and the capabilities images have."""

    def __init__(self, name: str, labeled: bool) -> None:
        self.name = name
        self.capabilities = frozenset({"sample", "conditional"} if labeled else {"sample"})


#: why a protocol that needs an emotion per image is skipped or refused for unlabelled images
NEEDS_LABELS = "needs labels: pass --labels FILE (a class index or emotion name per image)"


class ImagesContext(EvalContext):
    """The protocols' context over given images: "generating" n images picks n of them."""

    def __init__(self, images_set, name: str, data: FaceDataset, device, evaluator_weights, inception_weights,
                 reporter=None, **config) -> None:
        super().__init__(_ImageSource(name, images_set.labels is not None), data, device, evaluator_weights,
                         inception_weights, reporter=reporter, image_words="given images", **config)
        self.source = images_set
        self.n_given = int(images_set.images.shape[0])
        labs = images_set.labels
        self.per_class_given = (torch.bincount(labs, minlength=self.k).tolist() if labs is not None else None)
        self.subsets: dict[str, str] = {}  # protocol name -> which of the given images it used
        self._how: dict = {}

    def skip_reason(self, p: MetricSpec) -> str | None:
        """Why ``p`` cannot score the given images: it needs a model or labels, more images than given (per
        class for per-class protocols), or does not apply to the data; None if it can."""
        missing = sorted(p.needs - set(self.model.capabilities))
        where = self.source.info["path"]
        if missing == ["conditional"]:
            return NEEDS_LABELS
        if missing:
            return f"needs a model ({', '.join(missing)}), not images (scoring {where})"
        if not p.scores_images:
            return f"needs a model, not images (scoring {where})"
        return self.data_reason(p) or self.count_reason(p)

    def count_reason(self, p: MetricSpec) -> str | None:
        """Why the given images are too few for ``p`` (per class for per-class protocols), or None."""
        if p.per_class:
            if self.per_class_given is None:
                return NEEDS_LABELS
            need = p.n_samples // self.k
            if need < p.min_samples:
                return (f"{p.family} needs at least {p.min_samples} images per emotion, {p.name} asks for {need}")
            short = [(self.data.class_names[k], c) for k, c in enumerate(self.per_class_given) if c < need]
            if short:
                name, c = short[0]
                return (f"needs {need:,} image{'s' if need != 1 else ''} per emotion, {name!r} has {c:,} "
                        f"({', '.join(f'{n} {c}' for n, c in zip(self.data.class_names, self.per_class_given))})")
            return None
        least = p.min_samples
        if p.n_samples > self.n_given:
            alt = p.with_n(self.n_given).name if self.n_given >= least else None
            return (f"needs {p.n_samples:,} images, {self.n_given:,} given"
                    + (f" (ask for {alt} or --n-samples {self.n_given})" if alt else ""))
        if p.n_samples < least:
            return f"needs at least {least} images, {p.name} asks for {p.n_samples}"
        return None

    def generate(self, n: int, seed: int, per_class: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` of the given images: all of them in order when there are exactly ``n`` (per class: n // K
        of each class), else a random subset drawn with ``seed``; with their labels (None if unlabeled)."""
        key = (n, seed, per_class)
        if key in self._gen:
            self.subsets[self.at[2]] = self._how[key]
            return self._gen[key]
        images, labels = self.source.images, self.source.labels
        g = torch.Generator().manual_seed(seed)
        if per_class:
            per = n // self.k
            idx = []
            for k in range(self.k):
                pool = torch.nonzero(labels == k).flatten()
                idx.append(pool if len(pool) == per else pool[torch.randperm(len(pool), generator=g)[:per]])
            idx = torch.cat(idx)
            how = (f"{per:,} per emotion: all" if all(c == per for c in self.per_class_given)
                   else f"{per:,} per emotion, random (seed {seed}) among {self.per_class_given}")
        elif n == self.n_given:
            idx, how = torch.arange(n), f"all {n:,} images"
        else:
            idx, how = torch.randperm(self.n_given, generator=g)[:n], f"random {n:,} of {self.n_given:,} (seed {seed})"
        self.subsets[self.at[2]] = self._how[key] = how
        out = (images[idx], torch.arange(self.k).repeat_interleave(n // self.k) if per_class else
               (labels[idx] if labels is not None else None))
        self._gen[key] = out
        return out


def default_image_protocols(image_set, k: int) -> list[MetricSpec]:
    """The default protocols for given images: the default set, with the sample-based ones renamed to
    the count available when fewer images are given than they take (60 images: ``fid60_train``;
    labeled, at least 8 per emotion: ``acc_gen56``). Protocols that need a model stay (and are skipped)."""
    n = int(image_set.images.shape[0])
    per = min(torch.bincount(image_set.labels, minlength=k).tolist()) if image_set.labels is not None else 0
    out = []
    for p in (resolve_metric(m) for m in default_metrics()):
        if p.scores_images and not p.per_class and p.n_samples > n >= p.min_samples:
            p = p.with_n(n)
        elif p.scores_images and p.per_class and image_set.labels is not None and per * k < p.n_samples \
                and per >= p.min_samples:
            p = p.with_n(per * k)
        out.append(p)
    return out


def images_out_dir(images: str | os.PathLike, out: str | os.PathLike | None, name: str | None = None) -> Path:
    """``out``, else ``results/runs/<name>``, else ``results/runs/images-<folder or file stem>`` (under
    ``results/runs``, where ``exprbench report`` looks)."""
    if out is not None:
        return Path(out)
    if name:
        if Path(name).name != name or name in (".", ".."):
            raise UserError(f"--name {name!r}: a name, not a path (use --out for a directory)")
        return Path("results") / "runs" / name
    return Path("results") / "runs" / f"images-{Path(images).expanduser().resolve().stem}"


def _check_out_dir(out: Path, source: dict) -> dict | None:
    """Refuse an ``--out`` that is a training run or holds scores of other images; returns its source.json."""
    from exprbench.core.io import read_json

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    if (out / "config.json").exists() or (out / "checkpoints").exists():
        raise UserError(f"--out {out}: a training run directory; scores of images go to a directory of their own")
    old = read_json(out / "source.json") if (out / "source.json").exists() else None
    if (out / "source.json").exists() and not isinstance(old, dict):
        raise UserError(f"{out / 'source.json'}: not valid JSON; move it away or use another --out")
    if old:
        if (old.get("images") or {}).get("sha256") != source["images"]["sha256"]:
            raise UserError(f"--out {out}: holds scores of other images ({(old.get('images') or {}).get('path')}); "
                            "use another --out")
        ol, nl = old.get("labels"), source.get("labels")
        if ol and nl and ol.get("sha256") != nl.get("sha256"):
            raise UserError(f"--out {out}: holds scores of these images with other labels ({ol.get('path')}); "
                            "use another --out")
    base = out
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {base} is not a writable directory")
    return old


def evaluate_images(
    images: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    name: str | None = None,
    metrics: Sequence[str] | None = None,
    n_samples: int | None = None,
    device: str = "auto",
    data: str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    evaluator_weights: str | os.PathLike | None = None,
    label_set: str = "fer7",
    reporter: EvalReporter | None = None,
    command: str | None = None,
) -> dict:
    """Score generated images from any source with the protocols that apply; write ``out/eval.json``.

    The images (see :mod:`exprbench.metrics.run.images_source`: a folder of PNGs, an .npz/.npy) take the
    place of a model's samples: fidelity protocols (fid/kid/pr) always, class-aware ones (ifid,
    acc_gen, cas) when labels are given; protocols that need a model (encoders, translation,
    editing, likelihood) or more images than given are skipped with the reason. Without ``metrics``
    and ``n_samples`` the sample-based protocols are renamed to the count given when fewer images
    than they take are given (see :func:`default_image_protocols`). ``out`` becomes a run directory
    of its own: ``eval.json`` (as :func:`evaluate_run`'s, merged the same way, ``source.kind =
    "images"``) and ``source.json`` (where the images came from); no config.json, no checkpoints.

    Args:
        images: a folder or an .npz / .npy file of uint8 48 x 48 images.
        labels: a labels file (.npy/.txt/.csv) overriding the source's own labels.
        out: output directory (default ``results/runs/<name>``, else ``results/runs/images-<stem>``).
        name: the name shown for these images in tables (default: the folder or file stem).
        metrics, n_samples, device, data, inception_weights, evaluator_weights: as :func:`evaluate_run`.
        label_set: the label set the labels index (``fer7`` or ``fer6``).
        reporter: progress hooks (default: silent).
        command: the command line, recorded in source.json.

    Returns:
        The merged eval.json content.

    Raises:
        UserError (exit code 2 in the CLI): bad images or labels (file and value named), an ``out``
            that is a training run or holds other images, and the errors of :func:`evaluate_run`.
    """
    t0 = time.perf_counter()
    explicit = metrics is not None and len(metrics) > 0
    protos = _asked_protocols(label_set, metrics, n_samples, explicit)
    out_dir = images_out_dir(images, out, name)
    read_eval(out_dir / "eval.json")
    reporter = reporter or EvalReporter()
    iset, source, old_source = _read_images(images, labels, label_set, name, out_dir, reporter)
    name = source["name"]
    protos = _checked_protocols(protos, iset, label_set)
    ctx, dev, path, ds = _images_context(iset, name, label_set, device, data, evaluator_weights, inception_weights,
                                        reporter, out_dir)
    if explicit:  # a protocol asked for by name that these images cannot feed is bad input, not a skip
        _refuse_too_few(ctx, protos)
    stamp = _stamp()
    _begin_images(reporter, protos, iset)
    if old_source and old_source.get("labels") and not source["labels"]:
        source["labels"] = old_source["labels"]  # scored with labels before: those entries stay
    base = _images_fields(dev, ctx, protos, name, label_set, source, path, ds, stamp)
    source_file = _source_file(source, old_source, stamp, command)
    try:
        results, refs = run_all(protos, ctx, stamp)
    except EvaluationInterrupted as stop:  # Ctrl-C: the protocols that finished are kept
        keep_finished(stop, out_dir / "eval.json",
                      lambda r, f: _merge(out_dir, base, source_file, stamp, t0, ctx.subsets, r, f))
    merged = _merge(out_dir, base, source_file, stamp, t0, ctx.subsets, results, refs)
    reporter.end(merged)
    return merged


def _asked_protocols(label_set: str, metrics: Sequence[str] | None, n_samples: int | None,
                     explicit: bool) -> list[MetricSpec] | None:
    """The protocols asked for by name or count (None: the defaults for the images, once read); refuses an
    unknown label set first."""
    from exprbench.data import LABEL_SETS

    if label_set not in LABEL_SETS:
        raise UserError(f"unknown label set {label_set!r} (known: {', '.join(LABEL_SETS)})")
    if explicit or n_samples is not None:
        return resolve_protocols(metrics, n_samples)
    return None


def _checked_protocols(protos: list[MetricSpec] | None, iset, label_set: str) -> list[MetricSpec]:
    """The protocols asked for, else the defaults for the images; refuses a per-class one asking for fewer
    samples than classes."""
    from exprbench.data import LABEL_SETS

    if protos is None:
        protos = default_image_protocols(iset, len(LABEL_SETS[label_set]))
    check_per_class_counts(protos, len(LABEL_SETS[label_set]))
    return protos


def _read_images(images, labels, label_set: str, name: str | None, out_dir: Path,
                 reporter: EvalReporter) -> tuple:
    """``(image set, source, old source.json)``: the images and labels read, ``out_dir`` checked against them,
    and the name shown for them (``name``, else the one stored, else ``images-<stem>``) in ``source``."""
    from exprbench.data import LABEL_SETS

    from exprbench.metrics.run.images_source import load_image_set

    iset = load_image_set(images, LABEL_SETS[label_set], labels, progress=reporter.bar)
    source = {"kind": "images", "name": name, "images": iset.info, "labels": iset.labels_info}
    old_source = _check_out_dir(out_dir, source)
    source["name"] = name or (old_source or {}).get("name") or f"images-{Path(iset.info['path']).stem}"
    return iset, source, old_source


def _images_context(iset, name: str, label_set: str, device: str, data, evaluator_weights, inception_weights,
                    reporter: EvalReporter, out_dir: Path) -> tuple:
    """``(context, device, data path, dataset)``: the protocols' context over the images, writing into
    ``out_dir``, after checking an explicit Inception weights path exists."""
    from exprbench.data import load_dataset
    from exprbench.core.devices import resolve_device

    dev = resolve_device(device)
    if inception_weights is not None:
        from exprbench.metrics.families.fidelity_inputs import inception_weights_path

        inception_weights_path(inception_weights)
    path = resolve_eval_data_path(data, None)
    ds = load_dataset(path, label_set)
    ctx = ImagesContext(iset, name, ds, dev, evaluator_weights, inception_weights, reporter=reporter, out_dir=out_dir)
    return ctx, dev, path, ds


def _refuse_too_few(ctx: ImagesContext, protos: list[MetricSpec]) -> None:
    """Refuse a protocol asked for by name that needs only more images than given (UserError)."""
    for p in protos:
        why = ctx.skip_reason(p)
        if why and why == ctx.count_reason(p):  # it needs only more images (not a model, not labels)
            raise UserError(f"{p.name}: {why}")


def _stamp() -> dict:
    """What every entry of this evaluation records: the time and the commit of the exprbench code (no step)."""
    from exprbench.core.devices import library_versions

    commit = library_versions()["git_commit"]
    return {"evaluated_at": now(), "step": None, "commit": commit}


def _begin_images(reporter: EvalReporter, protos: list[MetricSpec], iset) -> None:
    """The reporter's first line: the protocols, and how many images (and labels, lossy files) from where."""
    n_lab = f", {iset.labels_info['n']:,} labels" if iset.labels_info else ", no labels"
    if iset.info.get("lossy_files"):
        n_lab += f" ({iset.info['lossy_files']:,} lossy-compressed files: this may affect the metrics)"
    reporter.begin([p.name for p in protos], f"{iset.info['n']:,} images from {iset.info['path']}{n_lab}")


def _images_fields(dev, ctx: ImagesContext, protos: list[MetricSpec], name: str, label_set: str, source: dict,
                   path: str, ds: FaceDataset, stamp: dict) -> dict:
    """The eval.json fields of scored images besides the results: a run of their own with no config or step."""
    return {**common_fields(dev, ctx, protos),
            "run": {"model": name, "config": "images", "seed": None, "step": None, "label_set": label_set},
            "source": source,
            "data": {"path": str(path), "fingerprint": ds.fingerprint, "content_sha256": ds.content_sha256(),
                     "train_fingerprint": None},
            "evaluated_at": stamp["evaluated_at"]}


def _source_file(source: dict, old_source: dict | None, stamp: dict, command: str | None) -> dict:
    """``source.json``: where the images came from, when first and last scored, by which version and command."""
    from exprbench.core import __version__

    return {**source, "created_at": (old_source or {}).get("created_at") or stamp["evaluated_at"],
            "updated_at": stamp["evaluated_at"], "exprbench_version": __version__,
            "command": command, "note": "scores of images from outside exprbench: no config.json, no checkpoints"}


def _merge(out_dir: Path, base: dict, source_file: dict, stamp: dict, t0: float, subsets: dict,
           results: dict, refs: dict) -> dict:
    """Merge the results of :func:`evaluate_images` (``base``: its other eval.json fields; ``subsets``: which
    images each protocol used) into ``out_dir/eval.json`` and write ``source.json``; returns the merged content."""
    for pname, how in subsets.items():
        if pname in results:
            results[pname]["images_used"] = how
    wall = round(time.perf_counter() - t0, 2)
    new = {**base, "metrics": results, "references": refs, "wall_s": wall,
           "evaluations": [{**stamp, "protocols": list(results), "wall_s": wall, "device": base["device"]}]}
    return write_eval(out_dir, new, {"source.json": source_file})
