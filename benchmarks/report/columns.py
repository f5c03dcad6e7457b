"""What the report and the regression gate know about metric columns: the one place in benchmarks/.

A metric column is ``<protocol>`` (the protocol's value, e.g. ``fid10k_train``) or
``<protocol>:<key>`` (a detail of its ``eval.json`` entry promoted to a column, e.g.
``pr10k_train:recall``). The public names mirror ``metrics.spec`` (``higher_is_better``,
``table_of``, ``LEADERBOARD_TABLES``, ``derived_columns``, ``resolve_metric``) and are read from the
metric declarations there (direction, table, derived columns, column order, header, chance line,
which figure input a metric's evaluation writes): :func:`resolve_metric` returns them per family as a
:class:`ColumnSpec`. Nothing about a particular metric is written here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from exprbench.metrics.protocols.presentation import LEADERBOARD_TABLES as _DECLARED

# (table name, title), in the order the report prints them (the metric declarations' tables); "other"
# collects unknown columns
LEADERBOARD_TABLES: list[tuple[str, str]] = [*_DECLARED, ("other", "Other protocols")]
OTHER_TABLE = "other"
_TABLE_INDEX = {name: i for i, (name, _) in enumerate(LEADERBOARD_TABLES)}


@dataclass(frozen=True)
class ColumnSpec:
    """What the report knows about one metric family.

    Attributes:
        family: the family name (``fid``, ``pr``, ...; a protocol of no known family: its name).
        table: the leaderboard it belongs to (a name of :data:`LEADERBOARD_TABLES`).
        higher: higher is better for the value itself.
        derived: detail keys promoted to columns -> ``"higher"`` or ``"lower"`` (is better).
        order: the family's columns in table order (None = the value itself, else a derived key).
        display: header names of the value (``None``) and of derived keys (default: the key in capitals).
        accuracy: the value is a label accuracy in [0, 1] (bar charts get a chance line at 1/K).
        figure: the figure input its evaluation writes into the run (``samples``, ``translations``,
            ``edits``, ``closest_pairs``), or None.
        ranks_samples: the value picks the representative seed of a sample sheet (the median run).
        confusion: its details hold ``confusion_matrix`` and ``class_names`` for a confusion figure.
        sweep: its details hold an edit-strength ``sweep`` (success vs strength figure).
        kind_key: a boolean detail key reported in a text column (``(detail key, column, header,
            true text, false text)``), or None.
        flag_above: cells to mark (see :class:`exprbench.metrics.protocols.presentation.Presentation`), with their note.
    """

    family: str
    table: str = OTHER_TABLE
    higher: bool = True
    derived: dict[str, str] = field(default_factory=dict)
    order: tuple[str | None, ...] = (None,)
    display: dict[str | None, str] = field(default_factory=dict)
    accuracy: bool = False
    figure: str | None = None
    ranks_samples: bool = False
    confusion: bool = False
    sweep: bool = False
    kind_key: tuple[str, str, str, str, str] | None = None
    flag_above: dict = field(default_factory=dict)
    flag_note: str = ""


def _specs() -> dict[str, ColumnSpec]:
    """One :class:`ColumnSpec` per metric family, from the metric declarations (``metrics.spec``), in
    declaration order (the order of families within a table)."""
    from exprbench.metrics.protocols.catalog import all_metrics, resolve_metric as _resolve

    out: dict[str, ColumnSpec] = {}
    for name in all_metrics():
        m = _resolve(name)
        show = m.show
        if m.family in out:  # a family's later declarations (another feature space) add their figure input
            if out[m.family].figure is None and show.figure is not None:
                out[m.family] = replace(out[m.family], figure=show.figure)
            continue
        display = {None: show.display} if show.display else {}
        out[m.family] = ColumnSpec(m.family, show.table, higher=m.direction == "higher", derived=dict(show.derived),
                                   order=show.columns, display=display, accuracy=show.accuracy, figure=show.figure,
                                   ranks_samples=show.ranks_samples, confusion=show.confusion, sweep=show.sweep,
                                   kind_key=show.kind_key, flag_above=dict(show.flag_above), flag_note=show.flag_note)
    return out


def _all() -> dict[str, ColumnSpec]:
    """:func:`_specs` now: metrics registered at run time (plugins, tests) are seen as soon as they are."""
    return _specs()


def _family(protocol: str) -> str:
    """The family of a protocol name (``fid1k_train`` -> ``fid``); the name itself if unknown."""
    from exprbench.core.errors import RegistryError
    from exprbench.metrics.protocols.catalog import resolve_metric as _resolve

    try:
        return _resolve(protocol).family
    except RegistryError:  # protocols of plugins not installed here: keep the name
        return protocol


def _declared_place(protocol: str) -> int:
    """The place of ``protocol``'s declaration in the registry (a variant such as ``fid2k_train_ml`` sorts as
    the declaration it comes from: the one of the same ``name_pattern``); unknown protocols after all declared ones."""
    from exprbench.core.errors import RegistryError
    from exprbench.metrics.protocols.catalog import all_metrics, resolve_metric as _resolve

    patterns = [_resolve(n).name_pattern for n in all_metrics()]
    try:
        return patterns.index(_resolve(protocol).name_pattern)
    except (RegistryError, ValueError):
        return len(patterns)


def resolve_metric(name: str) -> ColumnSpec:
    """The :class:`ColumnSpec` of a protocol (or of the protocol of a ``<protocol>:<key>`` column);
    a protocol of no known family gets one in the ``other`` table, higher is better."""
    fam = _family(name.split(":", 1)[0])
    return _all().get(fam) or ColumnSpec(fam)


def derived_columns(name: str) -> dict[str, str]:
    """Detail keys of protocol ``name`` promoted to columns ``<name>:<key>`` -> ``"higher"``/``"lower"``."""
    return dict(resolve_metric(name).derived)


def higher_is_better(column: str) -> bool:
    """Direction of a column ``<protocol>`` or ``<protocol>:<derived key>`` (unknown keys: higher)."""
    base, _, key = column.partition(":")
    spec = resolve_metric(base)
    return spec.derived.get(key, "higher") == "higher" if key else spec.higher


def table_of(column: str) -> str:
    """The leaderboard a metric column belongs to (``fidelity``, ..., ``editing``; ``other`` if unknown)."""
    base, _, key = column.partition(":")
    spec = resolve_metric(base)
    return spec.table if (key or None) in spec.order else OTHER_TABLE


def column_order(column: str) -> tuple:
    """Sort key of a column: its table, its family's place in the table, its place in the family, then the
    protocol's place in the registry (so within a family the protocol declared first, e.g. the realism
    space's ``fid10k_train_ml``, comes first)."""
    base, _, key = column.partition(":")
    spec = resolve_metric(base)
    table = table_of(column)
    if table == OTHER_TABLE:
        return (_TABLE_INDEX[OTHER_TABLE], 0, 0, 0, column)
    families = list(_all())
    place = families.index(spec.family) if spec.family in families else 0
    return (_TABLE_INDEX[table], place, spec.order.index(key or None), _declared_place(base), column)


def header_name(column: str) -> str:
    """The column's name in a table header (``FID``, ``PRECISION``, ``F``, ``COVERAGE``)."""
    base, _, key = column.partition(":")
    spec = resolve_metric(base)
    k = key or None
    return spec.display.get(k, (key or spec.family).upper())


def aliases(column: str) -> set[str]:
    """Names that select ``column`` in ``--metrics``: the column, its protocol, its derived key, or
    (for the value itself) its family and displayed name in lower case."""
    base, _, key = column.partition(":")
    spec = resolve_metric(base)
    if key:
        return {column, base, key}
    return {column, base, spec.family, spec.display.get(None, "").lower()} - {""}


def is_accuracy(column: str) -> bool:
    """The column is a label accuracy in [0, 1] (a chance line at 1/K belongs on its chart)."""
    return ":" not in column and resolve_metric(column).accuracy


def kind_columns() -> list[tuple[str, str, str, str, str]]:
    """The text columns filled from boolean details: ``(detail key, column, header, true, false)``."""
    return [s.kind_key for s in _all().values() if s.kind_key]


__all__ = ["LEADERBOARD_TABLES", "ColumnSpec", "aliases", "column_order", "derived_columns", "header_name",
           "higher_is_better", "is_accuracy", "kind_columns", "resolve_metric", "table_of"]
