"""The protocol catalogue: every declared metric protocol, and the lookups the rest of the suite uses.

Importing this module registers the built-in declarations (:mod:`.builtin`, then :mod:`.evidence`: that order
is the order of the tables) into :data:`~.spec.METRICS`; third-party protocols arrive through the
``exprbench.metrics`` entry points on the first lookup. Readers ask here (``resolve_metric``, ``all_metrics``,
``default_metrics``, directions and tables of columns), never the registry object itself, so a lookup always
sees the built-ins. This module imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import replace

from exprbench.core.errors import RegistryError

from exprbench.metrics.protocols import builtin, evidence  # noqa: F401  (importing them registers the built-ins)
from exprbench.metrics.protocols.spec import METRICS, MetricSpec, parse_count


def _pattern_match(pattern: str, name: str):
    rx = "^" + re.escape(pattern).replace(re.escape("{n}"), r"(\d+k?)") + "$"
    return re.match(rx, name)


def resolve_metric(name: str) -> MetricSpec:
    """The protocol of a name: a registered one, or a registered pattern with another count.

    ``fid1k_train`` resolves to ``fid10k_train`` with 1,000 samples.

    Raises:
        RegistryError: unknown name (lists the known ones).
    """
    if name in METRICS:
        return METRICS.get(name)
    for reg in METRICS.names():
        p = METRICS.get(reg)
        m = _pattern_match(p.name_pattern, name) if p.name_pattern else None
        if m:
            n = parse_count(m.group(1))
            if n < 1:
                break
            return replace(p, name=name, n_samples=n) if n != p.n_samples else p
    known = ", ".join(METRICS.names())
    raise RegistryError(f"unknown metric protocol {name!r} (known: {known}; counts may vary, e.g. fid1k_train)")


def _split(column: str) -> tuple[MetricSpec, str | None]:
    base, _, key = column.partition(":")
    return resolve_metric(base), (key or None)


def higher_is_better(column: str) -> bool:
    """Direction of ``<protocol>`` or of a derived column ``<protocol>:<key>``.

    Raises:
        RegistryError: unknown protocol, or a key that is not one of its derived columns.
    """
    spec, key = _split(column)
    if key is None:
        return spec.direction == "higher"
    if key not in spec.show.derived:
        raise RegistryError(f"{column}: {spec.name} has no derived column {key!r} "
                            f"(derived: {', '.join(spec.show.derived) or 'none'})")
    return spec.show.derived[key] == "higher"


def table_of(column: str) -> str:
    """The leaderboard table of ``<protocol>`` or ``<protocol>:<key>``.

    Raises:
        RegistryError: unknown protocol.
    """
    return _split(column)[0].show.table


def derived_columns(name: str) -> dict[str, str]:
    """``{detail key: direction}`` promoted to columns ``<name>:<key>``, in declaration order."""
    return dict(resolve_metric(name).show.derived)


def default_metrics() -> list[str]:
    """Names of the protocols ``exprbench evaluate`` runs by default, in order of declaration."""
    return [n for n in METRICS.in_order() if METRICS.get(n).default]


def all_metrics() -> list[str]:
    """Every registered protocol name, in order of declaration (plugins loaded lazily after)."""
    return METRICS.in_order()
