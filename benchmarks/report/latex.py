"""The leaderboard tables as LaTeX for a two-column paper: one float per table (``table*`` when it would not fit one
column at 80% scale), the tabular scaled to the line width only where it is wider, a short caption above and the
notes (reference row, feature space, bold rule, flags) under it in small type."""

from __future__ import annotations

import pandas as pd

from exprbench.benchmarks.report.results import REFERENCE_LABEL
from exprbench.benchmarks.report.tables import Table

COST_NUMERIC = ("seeds", "train minutes", "img/s", "images (k)", "epochs", "GFLOP/img", "PFLOP")  # right-aligned

def _tex_escape(s) -> str:
    s = str(s)
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("{", r"\{"), ("}", r"\}"), ("$", r"\$"),
                 ("±", r"$\pm$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"), ("–", "--"), ("·", r"$\cdot$"),
                 ("√n", r"$\sqrt{n}$")):
        s = s.replace(a, b)
    return s.replace(r"\textbackslash\{\}", r"\textbackslash{}")


def _tex_header(h: str) -> str:
    """``FID ↓ (fid10k_train)`` -> two lines (name and direction over the protocol in small type), so
    that a table fits a paper column; other headers escaped as they are."""
    name, sep, proto = h.partition(" (")
    if not sep or not proto.endswith(")"):
        return _tex_escape(h)
    return (r"\begin{tabular}[b]{@{}c@{}}" + _tex_escape(name) + r"\\ {\scriptsize " + _tex_escape(proto[:-1])
            + r"}\end{tabular}")


def _label(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-:" else "-" for ch in text)


def _text_pt(s: str, size: float = 1.0, bold: bool = False) -> float:
    """The width in pt that ``s`` (a display cell, not escaped) takes in Computer Modern at 10pt, roughly:
    5pt a digit or lower-case letter (5.75 bold), 7.2 upper case, 3.3 a space, 7.8 ``±``."""
    w = 0.0
    for ch in s:
        w += 3.3 if ch == " " else 7.8 if ch == "±" else 7.2 if ch.isupper() else 5.75 if bold else 5.0
    return w * size


def natural_width_pt(table: Table) -> float:
    """The estimated natural width (pt, 10pt type) of the table's LaTeX ``tabular``: per column its widest
    cell or header line (a header's protocol line in ``\\scriptsize``, 0.7) plus 12pt of column separation."""
    rows = table.tex_rows or table.rows
    total = 0.0
    for j, h in enumerate(table.headers):
        name, sep, proto = h.partition(" (")
        head = max(_text_pt(name), _text_pt(proto[:-1], 0.7)) if sep and proto.endswith(")") else _text_pt(h)
        cells = [_text_pt(str(r[j]), bold=bool(table.bold[i][j]) if i < len(table.bold) else False)
                 for i, r in enumerate(rows)]
        total += max([head, *cells]) + 12.0
    return total


def is_wide(table: Table) -> bool:
    """Whether the table spans both columns of a two-column page (``table*``): more than :data:`WIDE` columns,
    or a natural width (:func:`natural_width_pt`) that a column (:data:`COLUMN_PT`) would have to shrink below
    :data:`MIN_SCALE`."""
    return len(table.headers) > WIDE or natural_width_pt(table) * MIN_SCALE > COLUMN_PT


def to_latex(table: Table, suite: str = "") -> str:
    """A booktabs ``table`` environment (pandas ``Styler.to_latex``) with caption and label
    (``tab:<suite>-<name>``); best values in ``\\textbf``, a rule under the reference row, the notes under
    the table in ``\\footnotesize``.

    A table that would not fit one column of a two-column page (:func:`is_wide`) is a ``table*`` (both
    columns). Every ``tabular`` sits in ``\\resizebox`` that scales it down to ``\\linewidth`` only where it is
    wider, so nothing overflows. Needs ``\\usepackage{booktabs,graphicx}``; the text is ASCII (±, ↑, ↓, ·, √
    as math, ``_ % & # { } $ \\`` escaped)."""
    if not table.rows:
        return ""
    df = pd.DataFrame(table.tex_rows or table.rows, columns=pd.Index(range(len(table.headers))))
    styler = df.style.hide(axis="index").format(_tex_escape)
    labels = [_tex_header(h) for h in table.headers]
    styler = styler.format_index(lambda i: labels[i], axis=1)
    flags = pd.DataFrame(table.bold, index=df.index, columns=df.columns)
    styler = styler.apply(lambda d: flags.map(lambda b: "textbf:--rwrap;" if b else ""), axis=None)
    numeric = [i for i, c in enumerate(table.columns) if c is not None]
    fmt = "".join("r" if i in numeric or h in COST_NUMERIC else "l"
                  for i, h in enumerate(table.headers))
    wide = is_wide(table)
    env = "table*" if wide else "table"
    tex = styler.to_latex(environment=env, position="htbp",
                          position_float="centering", hrules=True, column_format=fmt,
                          caption=_tex_escape(_caption(table, suite)),
                          label=f"tab:{_label(suite + '-' if suite else '')}{_label(table.name)}")
    lines = tex.splitlines()
    if table.has_reference and len(table.rows) > 1:  # a rule between the reference row and the models
        i = lines.index(r"\midrule") + 1
        lines.insert(i + 1, r"\midrule")
    # the column's (table) or the page's (table*) width, scaled down only where the table is wider still
    lines.insert(lines.index(next(x for x in lines if x.startswith(r"\begin{tabular}"))),
                 r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%")
    lines.insert(lines.index(r"\end{tabular}") + 1, "}")
    notes = [f"{_tex_escape(n)}" for n in _notes(table)]
    if notes:
        lines.insert(lines.index(f"\\end{{{env}}}"),
                     "\\par\\smallskip{\\footnotesize\\raggedright " + " ".join(notes) + "\\par}")
    return "\n".join(lines) + "\n"


WIDE = 8  # columns above which a table spans both columns of a two-column page (table*, scaled to \textwidth)
COLUMN_PT = 229.5  # \columnwidth of a two-column 10pt article (letter paper), in pt
MIN_SCALE = 0.8  # the smallest scale a table is shrunk to in one column; narrower ones go table*
TEX_PACKAGES = ("booktabs", "graphicx")  # what leaderboard.tex and tables/*.tex need in the preamble
TEX_HEADER = (f"% needs \\usepackage{{{','.join(TEX_PACKAGES)}}}; written for a two-column article: a table wider "
              "than a column is a table*, and every table is scaled down to the line width only where it is wider\n")
FEATURE_NOTE = ("FID, KID, precision/recall, density/coverage and memorisation are computed in the FER "
                "evaluator's feature spaces (fer-evaluator, fer-multilayer), not Inception-V3's: not comparable "
                "with published Inception FIDs.")


def _caption(table: Table, suite: str) -> str:
    """One short sentence: the table, its suite, what its cells are (the rules go under the table)."""
    where = f" (suite {suite})" if suite else ""
    what = "mean ± std over seeds (sample std; error bars in figures are the same)" if table.name != "cost" \
        else "mean over seeds"
    return f"{table.title}{where}: {what}; ↓ lower is better, ↑ higher."


def _notes(table: Table) -> list[str]:
    """What goes under a LaTeX table: the reference row, the feature space, the bold rule and flags, once."""
    out = [f"First row: {REFERENCE_LABEL}."] if table.has_reference else []
    if table.name in ("fidelity", "coverage"):
        out.append(FEATURE_NOTE)
    return out + list(table.notes) if table.name != "cost" else out
