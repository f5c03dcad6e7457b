"""``exprbench regress RESULTS_DIR --baseline FILE``: the quality-regression gate.

Compares each model/config's metrics (mean over seeds, as in the report) with a baseline written by
``exprbench report`` (``report/baseline.json``). A metric *regresses* when it is worse than the
baseline mean by more than its allowance. The allowance comes from two options:

* ``--tolerance VALUE`` (default ``10%``): relative, ``0.1`` or ``10%`` of ``|baseline mean|``
  (a bare number is a fraction and at most 1; write ``200%`` for more), or seed spread, ``2sd`` =
  2 baseline standard deviations over seeds;
* ``--tolerance-floor PCT`` (default none): the least allowance any metric gets, a fraction of
  ``|baseline mean|``. The allowance is ``max(tolerance, floor)``; so a metric whose baseline std is
  0 or missing (one seed) gets the floor under ``2sd``. An ``sd`` tolerance on a metric without
  seed spread and without a floor is refused (exit 2): there is no silent fallback.

Both take ``METRIC=VALUE`` for one metric (repeatable; the bare value is the default for the rest),
e.g. ``--tolerance 2sd --tolerance-floor 10% --tolerance fid1k_train=25%``. A metric name that is not
in the baseline, a malformed value and a value given twice are refused (exit 2).

Models or metrics present in the baseline but missing from the results are ``missing`` and fail the
gate unless ``--allow-missing``, which also hides them from the report (the report says how many).
Models only in the results are listed as ``new``. Exit code 1 on any regression or counted missing
entry, else 0; 2 on bad input (tolerances, a baseline that does not match :class:`BaselineFile`).

Reports (``--format``): ``text`` (a table and a pytest-style summary line), ``json`` (rows, counts,
verdict, exit code), ``junit`` (JUnit XML: one testcase per model/metric row, ``<failure>`` for
regressed and missing, ``<skipped>`` for new) and ``markdown`` (summary and table, for a PR comment).
"""

from __future__ import annotations

import io
import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.table import Table

from exprbench.errors import UserError

from .report import aggregate, collect, higher_is_better

DEFAULT_TOLERANCE = 0.10
FORMATS = ("text", "json", "junit", "markdown")
VERDICTS = ("regressed", "missing", "improved", "ok", "new")  # order of the summary line
FLAGGED = ("regressed", "missing")
COLUMNS = ("model", "metric", "baseline", "current", "delta", "allowed", "tolerance", "verdict")


# ---------------------------------------------------------------- tolerances

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


# ---------------------------------------------------------------- baseline schema

class MetricEntry(BaseModel):
    """One metric of one model in a baseline: mean (and std, seed count, direction) over seeds."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)
    mean: float
    std: Optional[float] = Field(None, ge=0)
    n: Optional[int] = Field(None, ge=1)
    higher_is_better: Optional[bool] = None


class BaselineFile(BaseModel):
    """The schema of ``baseline.json``: ``{"models": {"model/config": {metric: MetricEntry}}}``
    (other top-level keys, such as ``suite`` and ``floors``, are not used by the gate)."""

    model_config = ConfigDict(strict=True, extra="allow")
    models: Dict[str, Dict[str, MetricEntry]]


_KIND = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
         float: "a number", type(None): "null"}


def _problem(err: dict) -> str:
    """One pydantic error -> 'model 'cgan/default', metric 'fid': 'mean' must be a number (got a string "x")'."""
    loc, kind = list(err["loc"]), err["type"]
    got = err.get("input")
    got_txt = f"{_KIND.get(type(got), type(got).__name__)} {json.dumps(got)[:40]}" if not isinstance(got, dict) else "an object"
    where = []
    if loc and loc[0] == "models":
        if len(loc) > 1:
            where.append(f"model {loc[1]!r}")
        if len(loc) > 2:
            where.append(f"metric {loc[2]!r}")
        fld = ".".join(str(x) for x in loc[3:])
    else:
        fld = ".".join(str(x) for x in loc)
    if kind == "missing":
        what = f"{fld!r} is missing"
    elif kind in ("dict_type", "model_type") and len(loc) <= 3:
        what = {1: "'models' must be an object {\"model/config\": {metric: {...}}}",
                2: "must be an object {metric: {mean, std, n, higher_is_better}}",
                3: "must be an object {mean, std, n, higher_is_better}"}[max(len(loc), 1)] + f", got {got_txt}"
    else:
        what = f"{fld!r}: {err['msg'][0].lower() + err['msg'][1:]}, got {got_txt}"
    return f"{', '.join(where)}: {what}" if where else what


def validate_baseline(data, path: str | Path = "baseline") -> dict:
    """Check parsed baseline JSON against :class:`BaselineFile`; returns it unchanged.

    Raises:
        UserError: one line naming the file, the model/metric key and what is wrong (and how many more
            problems there are); also for a model key that is not ``model/config`` or no models at all.
    """
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a baseline: expected a JSON object with 'models', got "
                        f"{_KIND.get(type(data), type(data).__name__)}")
    if "models" not in data:
        raise UserError(f"{path}: not a baseline (no 'models' table; write one with `exprbench report`)")
    try:
        BaselineFile.model_validate(data)
    except ValidationError as e:
        errs = e.errors()
        more = f" (and {len(errs) - 1} more problem{'s' * (len(errs) > 2)})" if len(errs) > 1 else ""
        raise UserError(f"{path}: {_problem(errs[0])}{more}") from None
    if not data["models"]:
        raise UserError(f"{path}: 'models' is empty: the baseline gates nothing")
    bad = [k for k in data["models"] if "/" not in k.strip("/")]
    if bad:
        raise UserError(f"{path}: model {bad[0]!r}: key must be 'model/config' (e.g. 'cgan/default')")
    return data


def load_baseline(path: str | Path) -> dict:
    """Read and validate a baseline JSON (:class:`BaselineFile`).

    Raises:
        UserError: missing or unreadable file, malformed JSON, or a schema violation (see
            :func:`validate_baseline`).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"baseline not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: cannot read baseline ({getattr(e, 'strerror', None) or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{p}:{e.lineno}: malformed JSON ({e.msg})") from None
    return validate_baseline(data, p)


# ---------------------------------------------------------------- comparison

def compare(results_dir: str | Path, baseline: dict, tolerances: Tolerances | None = None) -> list[dict]:
    """One row per (model/config, metric) of the baseline.

    Args:
        results_dir: a results directory with ``runs/``.
        baseline: a validated baseline (:func:`load_baseline`).
        tolerances: parsed options (default: 10%, no floor).

    Returns:
        Rows with ``model, metric, baseline, baseline_std, current, delta, allowed, tolerance, verdict``
        (``ok``, ``improved``, ``regressed``, ``missing``; models only in the results get one ``new`` row
        with metric ``*``) and a ``note`` for missing rows.

    Raises:
        UserError: a per-metric option names a metric not in the baseline, or an ``sd`` tolerance meets a
            metric without seed spread and no ``--tolerance-floor`` applies (names the first, counts the
            rest; rows missing from the results need no allowance and are not refused).
    """
    tolerances = tolerances or Tolerances()
    tolerances.check_metrics({m for metrics in baseline["models"].values() for m in metrics})
    runs, _, _ = collect(results_dir)
    agg = aggregate(runs)
    current = {f"{r['model']}/{r['config']}": r for _, r in agg.iterrows()}
    rows, no_spread = [], []
    for key, metrics in sorted(baseline["models"].items()):
        for metric, b in sorted(metrics.items()):
            tol, floor = tolerances.for_metric(metric)
            allowed, how = tol.allowed(b["mean"], b.get("std"), floor)
            row = {"model": key, "metric": metric, "baseline": float(b["mean"]), "baseline_std": b.get("std"),
                   "current": None, "delta": None, "allowed": allowed, "tolerance": how, "verdict": "missing"}
            cur = current.get(key)
            col = f"{metric}|mean"
            if cur is not None and col in cur and not math.isnan(cur[col]):
                if allowed is None:  # an sd tolerance, no seed spread, no floor: refused below
                    no_spread.append((key, metric, tol, b))
                    continue
                hib = b.get("higher_is_better")
                hib = higher_is_better(metric) if hib is None else hib
                worse = (b["mean"] - cur[col]) if hib else (cur[col] - b["mean"])
                row.update(current=float(cur[col]), delta=float(cur[col] - b["mean"]))
                row["verdict"] = "regressed" if worse > allowed else ("improved" if worse < 0 else "ok")
            else:
                row["note"] = "metric not in the results" if cur is not None else "no completed run of this model"
            rows.append(row)
    if no_spread:
        key, metric, tol, b = no_spread[0]
        more = f" (and {len(no_spread) - 1} more)" if len(no_spread) > 1 else ""
        why = "std 0" if b.get("std") == 0 else f"std null, n {b.get('n')}"
        hint = "" if b.get("std") == 0 else ", or make the baseline with >= 2 seeds"
        raise UserError(f"--tolerance {tol}: {key} {metric}{more} has no seed spread in the baseline ({why}); "
                        f"add a relative fallback, e.g. --tolerance-floor 10%{hint}")
    for key in sorted(set(current) - set(baseline["models"])):
        rows.append({"model": key, "metric": "*", "baseline": None, "baseline_std": None, "current": None,
                     "delta": None, "allowed": None, "tolerance": "", "verdict": "new",
                     "note": "model not in the baseline"})
    return rows


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


def check_output(output: Path, baseline: Path) -> None:
    """Refuse an ``--output`` that cannot be written (a directory, a read-only folder) or that is the
    baseline itself, before any work. Raises UserError naming the path."""
    if output.is_dir():
        raise UserError(f"--output {output}: is a directory (give a file name)")
    if output.exists() and baseline.exists() and output.resolve() == baseline.resolve():
        raise UserError(f"--output {output}: is the baseline file; write the report elsewhere")
    parent = next((p for p in [output.parent, *output.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--output {output}: cannot write into {parent} (permission denied or not a directory)")
