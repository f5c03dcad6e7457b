"""Tolerances of the regression gate: ``--tolerance`` and ``--tolerance-floor`` values.

``--tolerance VALUE`` (default ``10%``): relative, ``0.1`` or ``10%`` of ``|baseline mean|`` (a bare
number is a fraction and at most 1; write ``200%`` for more), or seed spread, ``2sd`` = 2 baseline
standard deviations over seeds. ``--tolerance-floor PCT``: the least allowance any metric gets, a
fraction of ``|baseline mean|``; the allowance is ``max(tolerance, floor)``. Both take
``METRIC=VALUE`` for one metric (repeatable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict

from exprbench.core.errors import UserError

DEFAULT_TOLERANCE = 0.10


def _pct(v: float) -> str:
    return f"{v * 100:g}%"


@dataclass(frozen=True)
class Tolerance:
    """A worsening allowance: ``relative`` x |mean|, or ``sd`` x baseline std (exactly one is set)."""

    relative: float | None = None
    sd: float | None = None

    def allowed(self, mean: float, std: float | None, floor: float | None = None) -> tuple[float | None, str]:
        """The allowance for one baseline entry and how it was made.

        Args:
            mean: baseline mean.
            std: baseline std over seeds (None with one seed).
            floor: least allowance as a fraction of ``|mean|`` (None: no floor).

        Returns:
            ``(allowance, description)``, e.g. ``(0.8, "2 sd")`` or ``(2.1, "10% floor (no seed spread)")``;
            the allowance is None for an ``sd`` tolerance when ``std`` is 0 or None and there is no floor.
        """
        spread = std is not None and std > 0
        if self.sd is not None:
            allowance, how = (self.sd * std, f"{self.sd:g} sd") if spread else (None, "")
        else:
            rel = DEFAULT_TOLERANCE if self.relative is None else self.relative
            allowance, how = rel * abs(mean), _pct(rel)
        if floor is not None and (allowance is None or floor * abs(mean) > allowance):
            note = " (no seed spread)" if self.sd is not None and not spread else ""
            allowance, how = floor * abs(mean), f"{_pct(floor)} floor{note}"
        return allowance, how

    def __str__(self) -> str:
        return f"{self.sd:g}sd" if self.sd is not None else _pct(DEFAULT_TOLERANCE if self.relative is None else self.relative)


_SYNTAX = "expected a fraction (0.1), a percentage (10%) or seed spreads (2sd), optionally after METRIC="


def parse_tolerance(text: str, flag: str = "--tolerance", relative_only: bool = False, spec: str | None = None) -> Tolerance:
    """``0.1``, ``10%`` or ``2sd`` -> :class:`Tolerance`.

    Args:
        text: the value (without ``METRIC=``).
        flag: option name for the error message.
        relative_only: refuse ``sd`` values (for ``--tolerance-floor``).
        spec: the whole option value for error messages (default ``text``).

    Raises:
        UserError: anything else; a negative or non-finite value; a bare fraction above 1 (``10`` is
            most likely meant as ``10%``).
    """
    t, shown = text.strip().lower(), text if spec is None else spec
    try:
        if t.endswith("sd"):
            v = float(t[:-2])
            tol = Tolerance(sd=v)
        elif t.endswith("%"):
            v = float(t[:-1]) / 100
            tol = Tolerance(relative=v)
        else:
            v = float(t)
            tol = Tolerance(relative=v)
    except ValueError:
        raise UserError(f"{flag} {shown!r}: {_SYNTAX}") from None
    if not math.isfinite(v) or v < 0:
        raise UserError(f"{flag} {shown!r}: must be a finite number >= 0")
    if tol.relative is not None and not t.endswith("%") and v > 1:
        raise UserError(f"{flag} {shown!r}: a bare number is a fraction of the baseline mean ({_pct(v)}); "
                        f"write {v:g}% for {v:g} percent or {_pct(v)} if that is meant")
    if relative_only and tol.sd is not None:
        raise UserError(f"{flag} {shown!r}: must be relative (0.1 or 10%), not seed spreads")
    return tol


@dataclass(frozen=True)
class Tolerances:
    """The parsed ``--tolerance`` and ``--tolerance-floor`` options.

    Attributes:
        default: tolerance of metrics without their own (default 10%).
        per_metric: ``{metric: Tolerance}``.
        floor: default least allowance, a fraction of |mean| (None: none).
        per_metric_floor: ``{metric: fraction}``.
    """

    default: Tolerance = Tolerance(relative=DEFAULT_TOLERANCE)
    per_metric: Dict[str, Tolerance] = field(default_factory=dict)
    floor: float | None = None
    per_metric_floor: Dict[str, float] = field(default_factory=dict)

    def for_metric(self, metric: str) -> tuple[Tolerance, float | None]:
        """``(tolerance, floor)`` that apply to ``metric``."""
        return self.per_metric.get(metric, self.default), self.per_metric_floor.get(metric, self.floor)

    def check_metrics(self, known: set[str]) -> None:
        """Refuse per-metric options naming a metric that is not in ``known`` (the baseline's).

        Raises:
            UserError: one line naming the option, the unknown name and the known metrics.
        """
        opts = [("--tolerance", m, t) for m, t in self.per_metric.items()]
        opts += [("--tolerance-floor", m, _pct(f)) for m, f in self.per_metric_floor.items()]
        for flag, name, value in opts:
            if name not in known:
                raise UserError(f"{flag} {name}={value}: unknown metric {name!r}; the baseline has: "
                                f"{', '.join(sorted(known)) or '(no metrics)'}")

    def describe(self) -> str:
        """One-line summary, e.g. ``2sd, floor 10%, fid1k_train=25%``."""
        parts = [str(self.default)] + ([f"floor {_pct(self.floor)}"] if self.floor is not None else [])
        parts += [f"{m}={t}" for m, t in sorted(self.per_metric.items())]
        parts += [f"{m} floor {_pct(f)}" for m, f in sorted(self.per_metric_floor.items())]
        return ", ".join(parts)


def _split(spec: str, flag: str) -> tuple[str | None, str]:
    if "=" not in spec:
        return None, spec
    name, value = (s.strip() for s in spec.split("=", 1))
    if not name:
        raise UserError(f"{flag} {spec!r}: empty metric name before '='")
    return name, value


def parse_tolerances(specs: list[str], floors: list[str] = ()) -> Tolerances:
    """``["2sd", "fid1k_train=25%"]``, ``["10%"]`` -> :class:`Tolerances`.

    Args:
        specs: ``--tolerance`` values, each ``VALUE`` or ``METRIC=VALUE``.
        floors: ``--tolerance-floor`` values, each ``PCT`` or ``METRIC=PCT`` (relative only).

    Raises:
        UserError: a malformed value, an empty metric name, or the same default/metric given twice.
    """
    out: dict = {"default": None, "per_metric": {}, "floor": None, "per_metric_floor": {}}
    for flag, values, dkey, pkey in (("--tolerance", specs, "default", "per_metric"),
                                     ("--tolerance-floor", floors, "floor", "per_metric_floor")):
        for s in values:
            name, value = _split(s, flag)
            tol = parse_tolerance(value, flag, relative_only=flag == "--tolerance-floor", spec=s)
            v = tol if flag == "--tolerance" else tol.relative
            if name is None:
                if out[dkey] is not None:
                    raise UserError(f"{flag} {s!r}: a default {flag} is given twice")
                out[dkey] = v
            else:
                if name in out[pkey]:
                    raise UserError(f"{flag} {s!r}: metric {name!r} is given twice")
                out[pkey][name] = v
    if out["default"] is None:
        out["default"] = Tolerance(relative=DEFAULT_TOLERANCE)
    return Tolerances(**out)
