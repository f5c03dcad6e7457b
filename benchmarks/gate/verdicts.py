"""The gate's verdict and its reports: ``text`` (a rich table and a pytest-style summary line),
``json``, ``junit`` (JUnit XML) and ``markdown`` (for a PR comment)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from exprbench.core.errors import UserError

FORMATS = ("text", "json", "junit", "markdown")
VERDICTS = ("regressed", "missing", "improved", "ok", "new")  # order of the summary line
FLAGGED = ("regressed", "missing")
COLUMNS = ("model", "metric", "baseline", "current", "delta", "allowed", "tolerance", "verdict")


def gate(rows: list[dict], allow_missing: bool = False) -> int:
    """Exit code of the gate: 1 when any row regressed (or is missing, unless allowed), else 0."""
    bad = {"regressed"} | (set() if allow_missing else {"missing"})
    return 1 if any(r["verdict"] in bad for r in rows) else 0


# ---------------------------------------------------------------- reports

@dataclass
class Verdict:
    """The gate's outcome, ready to render.

    Attributes:
        rows: the reported rows (missing rows removed under ``--allow-missing``).
        code: the gate's exit code (0 pass, 1 fail).
        hidden: how many missing rows ``--allow-missing`` hid.
        baseline: path of the baseline file.
        results_dir: the results directory compared.
        tolerance: :meth:`Tolerances.describe` of the options.
    """

    rows: list[dict]
    code: int
    hidden: int = 0
    baseline: str = ""
    results_dir: str = ""
    tolerance: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """``{verdict: rows}`` for every verdict that occurs, in summary order."""
        c = {v: sum(r["verdict"] == v for r in self.rows) for v in VERDICTS}
        return {v: n for v, n in c.items() if n}

    @property
    def headline(self) -> str:
        return "quality regression" if self.code else "no regression"

    @property
    def hidden_line(self) -> str:
        """``"3 missing rows hidden (--allow-missing)"``, or "" when none were."""
        return f"{self.hidden} missing row{'s' * (self.hidden != 1)} hidden (--allow-missing)" if self.hidden else ""

    def summary(self) -> str:
        """pytest-style: ``"quality regression: 3 regressed, 1 missing, 40 ok in 2 models"``."""
        models = len({r["model"] for r in self.rows})
        counts = ", ".join(f"{n} {v}" for v, n in self.counts.items()) or "no rows"
        return f"{self.headline}: {counts} in {models} model{'s' * (models != 1)}"


def verdict(rows: list[dict], allow_missing: bool = False, **meta) -> Verdict:
    """Gate ``rows`` (:func:`compare`) into a :class:`Verdict`; ``--allow-missing`` hides missing rows.
    ``meta``: ``baseline``, ``results_dir``, ``tolerance`` strings for the reports."""
    shown = [r for r in rows if not (allow_missing and r["verdict"] == "missing")]
    return Verdict(shown, gate(rows, allow_missing), len(rows) - len(shown), **meta)


def _num(v) -> str:
    return "" if v is None else f"{v:.4g}"


STYLE = {"regressed": "red", "missing": "yellow", "improved": "green", "ok": "", "new": "cyan"}


def text_table(v: Verdict) -> Table:
    """The rich table of the text report (verdicts coloured on a terminal)."""
    table = Table(*COLUMNS)
    for r in v.rows:
        s = STYLE[r["verdict"]]
        table.add_row(r["model"], r["metric"], _num(r["baseline"]), _num(r["current"]), _num(r["delta"]),
                      _num(r["allowed"]), r["tolerance"], f"[{s}]{r['verdict']}[/]" if s else r["verdict"])
    return table


def print_text(v: Verdict, console: Console, extra: list[str] = ()) -> None:
    """Print the text report: table, hidden-rows line, ``extra`` lines, then the summary line last."""
    console.print(text_table(v))
    for line in ([v.hidden_line] if v.hidden else []) + list(extra):
        console.print(line, highlight=False)
    colour = "red" if v.code else "green"
    console.print(f"[{colour}]{v.headline}[/]{v.summary()[len(v.headline):]}", highlight=False)


def to_text(v: Verdict) -> str:
    """The text report as plain text (no colour), 160 columns wide."""
    buf = io.StringIO()
    print_text(v, Console(file=buf, width=160, color_system=None, force_terminal=False, legacy_windows=False))
    return buf.getvalue()


def to_json(v: Verdict) -> str:
    """JSON report: ``{"verdict": "pass"|"fail", "exit_code", "summary", "counts", "hidden_missing",
    "baseline", "results_dir", "tolerance", "rows": [...]}`` (None -> null)."""
    return json.dumps({"verdict": "fail" if v.code else "pass", "exit_code": v.code, "summary": v.summary(),
                       "counts": v.counts, "hidden_missing": v.hidden, "baseline": v.baseline,
                       "results_dir": v.results_dir, "tolerance": v.tolerance, "rows": v.rows},
                      indent=2, allow_nan=False) + "\n"


def _message(r: dict) -> str:
    if r["verdict"] == "missing":
        return f"{r['metric']} of {r['model']} is missing ({r.get('note', 'not in the results')}); baseline {_num(r['baseline'])}"
    return (f"{r['metric']} of {r['model']} regressed: baseline {_num(r['baseline'])} -> current {_num(r['current'])} "
            f"(delta {r['delta']:+.4g}, allowed {_num(r['allowed'])}, tolerance {r['tolerance']})")


def to_junit(v: Verdict) -> str:
    """JUnit XML: one ``<testcase classname=MODEL name=METRIC>`` per row; ``<failure type=regressed|missing>``,
    ``<skipped>`` for new models; the summary as the suite's ``<system-out>``."""
    c = v.counts
    fails = c.get("regressed", 0) + c.get("missing", 0)
    attrs = {"name": "exprbench regress", "tests": str(len(v.rows)), "failures": str(fails), "errors": "0",
             "skipped": str(c.get("new", 0)), "time": "0"}
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for k, val in (("baseline", v.baseline), ("results_dir", v.results_dir), ("tolerance", v.tolerance),
                   ("hidden_missing", str(v.hidden))):
        ET.SubElement(props, "property", {"name": k, "value": val})
    for r in v.rows:
        case = ET.SubElement(suite, "testcase", {"classname": r["model"], "name": r["metric"], "time": "0"})
        if r["verdict"] in FLAGGED:
            ET.SubElement(case, "failure", {"type": r["verdict"], "message": _message(r)}).text = _message(r)
        elif r["verdict"] == "new":
            ET.SubElement(case, "skipped", {"message": "new model: not in the baseline, not gated"})
        else:
            ET.SubElement(case, "system-out").text = (f"{r['verdict']}: baseline {_num(r['baseline'])} -> current "
                                                      f"{_num(r['current'])}, allowed {_num(r['allowed'])}, tolerance {r['tolerance']}")
    lines = [v.hidden_line] if v.hidden else []
    ET.SubElement(suite, "system-out").text = "\n".join(lines + [v.summary()])
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _md(s: str) -> str:
    return str(s).replace("|", r"\|")


def to_markdown(v: Verdict) -> str:
    """Markdown for a PR comment: the summary in bold first, then the table (regressed/missing in bold)."""
    icon = "❌" if v.code else "✅"
    out = [f"{icon} **{v.headline}**{v.summary()[len(v.headline):]}", ""]
    if v.hidden:
        out += [f"_{v.hidden_line}_", ""]
    out += ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 4 + ["---"] * 2) + "|"]
    for r in v.rows:
        verdict_cell = f"**{r['verdict']}**" if r["verdict"] in FLAGGED else r["verdict"]
        out.append("| " + " | ".join(_md(x) for x in (r["model"], r["metric"], _num(r["baseline"]), _num(r["current"]),
                                                     "" if r["delta"] is None else f"{r['delta']:+.4g}",
                                                     _num(r["allowed"]), r["tolerance"], verdict_cell)) + " |")
    out += ["", f"<sub>baseline `{v.baseline}`, tolerance {v.tolerance}</sub>"]
    return "\n".join(out) + "\n"


RENDER = {"text": to_text, "json": to_json, "junit": to_junit, "markdown": to_markdown}


def check_format(fmt: str) -> str:
    """Validate ``--format``. Raises UserError naming the value and the choices."""
    f = fmt.strip().lower()
    if f not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return f
