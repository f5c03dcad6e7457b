"""``exprbench regress RESULTS_DIR --baseline FILE``: the quality-regression gate.

Compares each model/config's metrics (mean over seeds, as in the report) with a baseline written by
``exprbench report`` (``report/baseline.json``). A metric *regresses* when it is worse than the
baseline mean by more than its tolerance:

* relative: ``--tolerance 0.1`` or ``10%`` allows a worsening of 10% of ``|baseline mean|``;
* seed spread: ``--tolerance 2sd`` allows 2 baseline standard deviations over seeds (a baseline with
  one seed has no spread: the relative default applies, and the table says so);
* per metric: ``--tolerance fid1k_train=25%`` (repeatable; the bare value is the default for the rest).

Models or metrics present in the baseline but missing from the results are reported as ``missing``
and fail the gate unless ``--allow-missing``. Exit code 1 on any regression or missing entry, else 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from exprbench.errors import UserError

from .report import aggregate, collect, higher_is_better

DEFAULT_TOLERANCE = 0.10


@dataclass(frozen=True)
class Tolerance:
    """A worsening allowance: ``relative`` x |mean|, or ``sd`` x baseline std."""

    relative: float | None = None
    sd: float | None = None

    def allowed(self, mean: float, std: float | None) -> tuple[float, str]:
        if self.sd is not None:
            if std is not None and std > 0:
                return self.sd * std, f"{self.sd:g} sd"
            return DEFAULT_TOLERANCE * abs(mean), f"{DEFAULT_TOLERANCE:.0%} (no seed spread)"
        rel = DEFAULT_TOLERANCE if self.relative is None else self.relative
        return rel * abs(mean), f"{rel:.0%}"


def parse_tolerance(text: str) -> Tolerance:
    """``0.1``, ``10%`` or ``2sd`` -> :class:`Tolerance`.

    Raises:
        UserError: anything else, or a negative value.
    """
    t = text.strip().lower()
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
        raise UserError(f"--tolerance {text!r}: expected a fraction (0.1), a percentage (10%) or seed spreads (2sd)") from None
    if v < 0:
        raise UserError(f"--tolerance {text!r}: must not be negative")
    return tol


def parse_tolerances(specs: list[str]) -> tuple[Tolerance, dict[str, Tolerance]]:
    """``["2sd", "fid1k_train=25%"]`` -> (default, per-metric)."""
    default, per = Tolerance(relative=DEFAULT_TOLERANCE), {}
    for s in specs:
        if "=" in s:
            k, v = s.split("=", 1)
            per[k.strip()] = parse_tolerance(v)
        else:
            default = parse_tolerance(s)
    return default, per


def load_baseline(path: str | Path) -> dict:
    """Read a baseline JSON (``{"models": {"model/config": {metric: {mean, std, n, higher_is_better}}}}``).

    Raises:
        UserError: missing file, malformed JSON or missing ``models``.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"baseline not found: {p}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p}:{e.lineno}: malformed JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise UserError(f"{p}: not a baseline (no 'models' table; write one with `exprbench report`)")
    return data


def compare(results_dir: str | Path, baseline: dict, default: Tolerance, per_metric: dict[str, Tolerance]) -> list[dict]:
    """One row per (model/config, metric) of the baseline: values, allowance and verdict
    (``ok``, ``improved``, ``regressed``, ``missing``). Models only in the results are listed as ``new``."""
    runs, _, _ = collect(results_dir)
    agg = aggregate(runs)
    current = {f"{r['model']}/{r['config']}": r for _, r in agg.iterrows()}
    rows = []
    for key, metrics in sorted(baseline["models"].items()):
        for metric, b in sorted(metrics.items()):
            tol = per_metric.get(metric, default)
            allowed, how = tol.allowed(b["mean"], b.get("std"))
            row = {"model": key, "metric": metric, "baseline": b["mean"], "current": None, "delta": None,
                   "allowed": allowed, "tolerance": how, "verdict": "missing"}
            cur = current.get(key)
            col = f"{metric}|mean"
            if cur is not None and col in cur and not math.isnan(cur[col]):
                hib = b.get("higher_is_better", higher_is_better(metric))
                worse = (b["mean"] - cur[col]) if hib else (cur[col] - b["mean"])
                row.update(current=float(cur[col]), delta=float(cur[col] - b["mean"]))
                row["verdict"] = "regressed" if worse > allowed else ("improved" if worse < 0 else "ok")
            rows.append(row)
    for key in sorted(set(current) - set(baseline["models"])):
        rows.append({"model": key, "metric": "*", "baseline": None, "current": None, "delta": None,
                     "allowed": None, "tolerance": "", "verdict": "new"})
    return rows


def gate(rows: list[dict], allow_missing: bool = False) -> int:
    """Exit code of the gate: 1 when any row regressed (or is missing, unless allowed), else 0."""
    bad = {"regressed"} | (set() if allow_missing else {"missing"})
    return 1 if any(r["verdict"] in bad for r in rows) else 0
