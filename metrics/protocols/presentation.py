"""How a metric protocol is shown: its leaderboard table, the detail keys promoted to columns, the line
printed under the table, headers, figures and flagged cells (:class:`Presentation`, the ``show`` of a
:class:`~exprbench.metrics.protocols.spec.MetricSpec`). What a protocol *is* (its needs, count, seed, feature
space, reference) stays in the spec; the report, the regression gate and the console read this part.
This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from exprbench.core.errors import RegistryError

from exprbench.metrics.protocols.names import DIRECTIONS

def fmt(v, digits=4) -> str:
    """A number in ``digits`` significant digits (``-`` for None)."""
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return f"{v:.{digits}g}" if abs(v) >= 1 or abs(v) < 1e-2 else f"{v:.{digits}f}"


# the leaderboard tables, in order: (table name, title)
LEADERBOARD_TABLES: list[tuple[str, str]] = [
    ("fidelity", "Fidelity to the training faces"),
    ("coverage", "Coverage and memorisation"),
    ("likelihood", "Likelihood (bits/dim of the test faces)"),
    ("class_aware", "Class-aware generation"),
    ("encoder", "Encoder"),
    ("translation", "Translation of test faces"),
    ("editing", "Editing at the model's reference strength"),
]
TABLES = tuple(t for t, _ in LEADERBOARD_TABLES)
FLAG_MARK = "*"  # the mark of a flagged leaderboard cell (ASCII: it reads the same in markdown and LaTeX)
FIGURES = (None, "samples", "translations", "edits", "closest_pairs")  # figure inputs evaluate writes


def no_details(entry: dict, reference: dict) -> str:
    """The details printer of a protocol that prints none: always ``""``."""
    return ""


@dataclass(frozen=True)
class Presentation:
    """How one protocol is shown in tables, figures and the console.

    Attributes:
        table: the leaderboard table (one of :data:`LEADERBOARD_TABLES`).
        derived: detail keys promoted to leaderboard columns ``<name>:<key>``, key -> direction.
        details: ``details(entry, reference_entry) -> str``, the line printed under the table ("" for none).
        what: the start line's phrase, a template over ``n, per, per_total, src, seed, extractor, pr_ref``.
        display: column header of the value in tables (default: the family in capitals).
        accuracy: the value is a label accuracy in [0, 1] (charts draw chance at 1/K).
        column_order: the order of the value (None) and derived keys in tables (default: value, then
            derived in declaration order).
        figure: the figure input its evaluation writes into the run (``samples``, ``translations``,
            ``edits``, ``closest_pairs``), or None.
        ranks_samples: the value picks the representative seed of a sample sheet (the median run).
        confusion: its details hold ``confusion_matrix`` and ``class_names`` (a confusion figure).
        sweep: its details hold an edit-strength ``sweep`` (success vs strength figure).
        kind_key: a boolean detail reported as a text column: ``(detail key, column, header, true
            text, false text)``, or None.
        flag_above: leaderboard cells to mark: value (None) or derived key -> a threshold, or ``"reference"``
            (the real-data reference of that column); a mean above it gets :data:`FLAG_MARK` and ``flag_note``
            (one sentence: what the mark means) under the table.
    """

    table: str
    derived: Mapping[str, str] = field(default_factory=dict, compare=False)
    details: Callable[[dict, dict], str] = field(default=no_details, compare=False, repr=False)
    what: str = ""
    display: str = ""
    accuracy: bool = False
    column_order: tuple = ()
    figure: str | None = None
    ranks_samples: bool = False
    confusion: bool = False
    sweep: bool = False
    kind_key: tuple | None = None
    flag_above: Mapping = field(default_factory=dict, compare=False)
    flag_note: str = field(default="", compare=False)

    @property
    def columns(self) -> tuple:
        """The value (None) and derived keys in table order."""
        return self.column_order or (None, *self.derived)


def validate_presentation(show: Presentation, where: str) -> None:
    """Check ``show`` (``where`` names the protocol in messages).

    Raises:
        RegistryError: not a :class:`Presentation`; an unknown table or figure; a derived column without a
            direction; a column order that does not list the value and every derived key once; a flag on an
            unknown column, with a bad threshold or without its note; a details printer that is not callable.
    """
    if not isinstance(show, Presentation):
        raise RegistryError(f"{where}: show must be a Presentation(table=...), got {type(show).__name__}")
    if show.table not in TABLES:
        raise RegistryError(f"{where}: table {show.table!r} is not one of {', '.join(TABLES)}")
    for key, d in show.derived.items():
        if d not in DIRECTIONS:
            raise RegistryError(f"{where}: derived column {key!r} has direction {d!r}, not one of {', '.join(DIRECTIONS)}")
    if show.column_order and set(show.column_order) != {None, *show.derived}:
        raise RegistryError(f"{where}: column_order {show.column_order!r} must list None and every derived key once")
    bad_flags = [k for k, t in show.flag_above.items() if (k is not None and k not in show.derived)
                 or not (t == "reference" or isinstance(t, (int, float)))]
    if bad_flags:
        raise RegistryError(f"{where}: flag_above key {bad_flags[0]!r} is not the value (None) or a derived column "
                            "with a number or 'reference' as its threshold")
    if show.flag_above and not show.flag_note:
        raise RegistryError(f"{where}: flag_above needs flag_note, one sentence saying what a marked cell means")
    if show.figure not in FIGURES:
        raise RegistryError(f"{where}: figure {show.figure!r} is not one of {', '.join(map(str, FIGURES))}")
    if not callable(show.details):
        raise RegistryError(f"{where}: details must be a callable")
