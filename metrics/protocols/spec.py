"""Metric declarations: a protocol is one registered declaration whose name is its definition (StyleGAN3-style).

:func:`register_metric` declares what a protocol *is* in one place: the capabilities it needs, its sample
count and seed, the feature extractor, the real split it is compared with, how its real-data reference is
computed (or why there is none), which direction is better, the datasets it applies to and the module of
its family's two functions, ``compute_<family>(spec, ctx)`` and ``reference_<family>(spec, ctx)`` (imported
when it first runs, so declaring and listing import no torch); how it is *shown* (its leaderboard table,
derived columns, details line, figures) is its ``show``, a
:class:`~exprbench.metrics.protocols.presentation.Presentation`. Names follow StyleGAN3's ``fid50k_full``:
``fid10k_train`` is FID of 10,000 generated images against the full train split. A name with another count
resolves on the fly (``fid1k_train``), and overriding the count (``--n-samples``) renames the protocol
(``ifid_train`` -> ``ifid2k_train``), so numbers of different protocols never share a name. Registration
validates the declaration (torch-fidelity ``registry.py`` style) and raises
:class:`~exprbench.core.errors.RegistryError`.

Third-party packages register protocols through the ``exprbench.metrics`` entry-point group (a module
that calls :func:`register_metric`). This module imports no torch.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from exprbench.core.errors import RegistryError
from exprbench.core.registry import Registry
from exprbench.core.capabilities import CAPABILITIES

from exprbench.metrics.protocols.names import DIRECTIONS, EXTRACTOR_NAME
from exprbench.metrics.protocols.presentation import Presentation, validate_presentation

if TYPE_CHECKING:
    from exprbench.metrics.run.context import EvalContext

PROTOCOL_VERSION = "exprbench-metrics/1"
class MetricRegistry(Registry):
    """The registry of :class:`MetricSpec`: what :func:`register_metric` declares (the built-ins are loaded by
    :mod:`.catalog`, which imports their modules), then the ``exprbench.metrics`` entry points."""

    def __init__(self) -> None:
        super().__init__("metric protocol", entry_point_group="exprbench.metrics")

    def in_order(self) -> list[str]:
        """Registered names in order of registration (built-ins first), lazy entry-point names after."""
        self._scan()
        return list(self._items) + [n for n in self.names() if n not in self._items]

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register throw-away protocols)."""
        self._items.pop(name, None)


METRICS = MetricRegistry()

REFERENCE_LABEL = "real data (reference)"
_NAME_RX = re.compile(r"^[a-z][a-z0-9_]*$")
_MODULE_RX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: the entry fields a family function returns: ``value`` (float or None), ``n_samples`` and optionally ``status``,
#: ``reason``, ``std``, ``ci95``, ``extractor_sha256``, ``n_protocol``, ``details`` (a dict); run_protocol adds the rest
Entry = dict


def format_count(n: int) -> str:
    """10000 -> ``10k``, 1000 -> ``1k``, 2500 -> ``2500``, 700 -> ``700``."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def parse_count(text: str) -> int:
    """``10k`` -> 10000, ``2500`` -> 2500."""
    return int(text[:-1]) * 1000 if text.endswith("k") else int(text)


@dataclass(frozen=True)
class MetricSpec:
    """One evaluation protocol, as declared with :func:`register_metric`.

    Attributes:
        name: the protocol name as recorded in eval.json (carries the count, see ``name_pattern``).
        family: the metric kind shared by every count of the protocol (``fid``, ``kid``, ``pr``, ...).
        needs: model capabilities required; skipped with a reason otherwise.
        n_samples: generated images in total (per-class protocols use ``n_samples // K`` per class); for
            protocols over real test images, the test images fed to the model.
        seed: seed of the generation (latents and labels) or of the test subset, fixed per protocol.
        extractor: ``fer-evaluator``, ``inception-v3-compat``, ``cas-classifier``, ``model-encoder``, ...
        compared_with: the real split (or set) the value is compared with: ``train``, ``test``, ``generated``.
        reference: how the real-data reference is computed, one line; None when there is none.
        no_reference: why there is no reference (required when ``reference`` is None).
        direction: ``lower`` or ``higher`` is better.
        computed_in: the module of its family's functions, imported on first use: ``compute_<family>(spec, ctx)
            -> Entry`` (the model's value) and, when ``reference`` is set, ``reference_<family>(spec, ctx) -> Entry``
            (the real-data reference).
        datasets: label-set kinds it applies to (``("*",)``: any; e.g. ``("fer7", "fer6")``).
        uses: the networks it reads besides the model (their cards say which images and classes they take).
        per_class: needs at least one sample per class (class-balanced or per-target protocols).
        min_samples: the least images it can score (per class when ``per_class``), e.g. 2 for a covariance.
        show: how it is shown (:class:`~exprbench.metrics.protocols.presentation.Presentation`: table,
            derived columns, details line, headers, figures, flagged cells).
        reads_latents: it holds the model's latents fixed while it changes c (or the reverse), so it needs the
            model itself and cannot score given images.
        default: part of the default set of ``exprbench evaluate``.
        summary: one line for ``exprbench metrics``.
        name_pattern: the name with ``{n}`` for the count (renaming on a count override).
    """

    name: str
    family: str
    needs: frozenset
    n_samples: int
    seed: int
    direction: str
    computed_in: str
    show: Presentation
    extractor: str = EXTRACTOR_NAME
    compared_with: str = "train"
    reference: str | None = None
    no_reference: str = ""
    datasets: tuple = ("*",)
    per_class: bool = False
    min_samples: int = 1
    uses: tuple = (EXTRACTOR_NAME,)
    reads_latents: bool = False
    default: bool = True
    summary: str = ""
    name_pattern: str = ""

    def compute_fn(self) -> Callable[[MetricSpec, "EvalContext"], Entry]:
        """``compute_<family>`` of :attr:`computed_in` (imports the module).

        Raises:
            RegistryError: the module has no such function.
        """
        return self._family_fn("compute")

    def reference_fn(self) -> Callable[[MetricSpec, "EvalContext"], Entry] | None:
        """``reference_<family>`` of :attr:`computed_in`, or None when the protocol has no real-data reference.

        Raises:
            RegistryError: ``reference`` is declared but the module has no such function.
        """
        return None if self.reference is None else self._family_fn("reference")

    def _family_fn(self, role: str) -> Callable:
        fn = getattr(importlib.import_module(self.computed_in), f"{role}_{self.family}", None)
        if not callable(fn):
            raise RegistryError(f"metric {self.name!r}: {self.computed_in} has no {role}_{self.family}(spec, ctx)")
        return fn

    def with_n(self, n: int) -> "MetricSpec":
        """The same protocol with ``n`` samples, renamed so the name carries the count.

        Raises:
            RegistryError: ``n`` < 1.
        """
        if n < 1:
            raise RegistryError(f"{self.name}: the sample count must be positive, got {n}")
        if n == self.n_samples:
            return self
        return replace(self, name=self.name_pattern.format(n=format_count(n)), n_samples=int(n))

    def applies_to(self, label_set: str) -> bool:
        """Whether the protocol is declared for data of ``label_set``."""
        return "*" in self.datasets or label_set in self.datasets

    @property
    def scores_images(self) -> bool:
        """True when it needs generated images only (so it can score images from any source)."""
        return self.needs <= {"sample", "conditional"} and "sample" in self.needs and not self.reads_latents

    def key_fields(self) -> dict:
        """The fields that define the protocol's numbers, for content hashes (the reference cache)."""
        return {"name": self.name, "family": self.family, "needs": sorted(self.needs), "n_samples": self.n_samples,
                "seed": self.seed, "extractor": self.extractor, "reference": self.compared_with,
                "default": self.default, "summary": self.summary, "name_pattern": self.name_pattern}


def _validate(spec: MetricSpec) -> None:
    where = f"metric {spec.name!r}"
    if not _NAME_RX.match(spec.name):
        raise RegistryError(f"{where}: a name is lower-case letters, digits and '_' (e.g. fid10k_train)")
    if spec.direction not in DIRECTIONS:
        raise RegistryError(f"{where}: direction {spec.direction!r} is not one of {', '.join(DIRECTIONS)}")
    unknown = sorted(set(spec.needs) - set(CAPABILITIES))
    if unknown:
        raise RegistryError(f"{where}: needs unknown capabilities {', '.join(unknown)} (known: {', '.join(CAPABILITIES)})")
    if spec.reference is None and not spec.no_reference:
        raise RegistryError(f"{where}: reference=None needs no_reference='one line: why there is none'")
    if spec.reference is not None and spec.no_reference:
        raise RegistryError(f"{where}: give reference or no_reference, not both")
    if not isinstance(spec.n_samples, int) or spec.n_samples < 1:
        raise RegistryError(f"{where}: n_samples must be a positive int, got {spec.n_samples!r}")
    if spec.min_samples < 1:
        raise RegistryError(f"{where}: min_samples must be positive, got {spec.min_samples!r}")
    if not spec.name_pattern:  # else --n-samples would store it under an empty name
        raise RegistryError(f"{where}: name_pattern is required (the name with {{n}} for the sample count, "
                            "e.g. 'fid{n}_train'): --n-samples renames every protocol it evaluates")
    if "{n}" not in spec.name_pattern:
        raise RegistryError(f"{where}: name_pattern {spec.name_pattern!r} has no {{n}}")
    if not _NAME_RX.match(spec.name_pattern.replace("{n}", "1k")):
        raise RegistryError(f"{where}: name_pattern {spec.name_pattern!r} does not give a valid name")
    validate_presentation(spec.show, where)
    if not isinstance(spec.computed_in, str) or not _MODULE_RX.match(spec.computed_in):
        raise RegistryError(f"{where}: computed_in must name a module (e.g. 'exprbench.metrics.families.fidelity_metrics'), "
                            f"got {spec.computed_in!r}")


def register_metric(*, name: str, needs, n_samples: int, seed: int, direction: str, computed_in: str,
                    show: Presentation, family: str | None = None, **decl) -> MetricSpec:
    """Register the protocol ``name``: one declaration of what it is and how it is shown.

    Its numbers come from ``compute_<family>(spec, ctx)`` (and, when ``reference`` is given,
    ``reference_<family>(spec, ctx)``) in the module ``computed_in``, imported when it first runs.

    Args:
        name: the protocol name (lower-case letters, digits, ``_``; it carries the count, e.g. ``fid10k_train``).
        needs: capabilities (an iterable of names); n_samples, seed: as :class:`MetricSpec`.
        direction: ``lower`` or ``higher``; computed_in: a module path; show: a :class:`Presentation`.
        family: the metric kind (default: the name with its count and split removed, e.g. ``fid``).
        **decl: the other :class:`MetricSpec` fields (name_pattern, reference / no_reference, extractor, ...).

    Returns:
        The registered :class:`MetricSpec`.

    Raises:
        RegistryError: a bad declaration (name, direction, capability, missing reference reason, module,
            presentation, an unknown field) or a name registered twice.
    """
    fam = family or re.sub(r"\d+k?", "", name.split("_")[0])
    known = {f.name for f in MetricSpec.__dataclass_fields__.values()}
    bad = sorted(set(decl) - known)
    if bad:
        raise RegistryError(f"metric {name!r}: unknown declaration field(s) {', '.join(bad)}")
    spec = MetricSpec(name=name, family=fam, needs=frozenset(needs), n_samples=n_samples, seed=seed,
                      direction=direction, computed_in=computed_in, show=show, **decl)
    _validate(spec)
    if METRICS.is_loaded(name):
        raise RegistryError(f"metric protocol {name!r} is registered twice")
    METRICS.register(name)(spec)
    return spec


def unregister_metric(name: str) -> None:
    """Remove a registered protocol (tests that register throw-away metrics)."""
    METRICS.unregister(name)
