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

The tolerances are parsed in :mod:`.tolerances`, the baseline schema is :mod:`.baseline`, the reports
are rendered by :mod:`.verdicts`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from exprbench.core.errors import UserError

from exprbench.benchmarks.report.columns import higher_is_better
from exprbench.benchmarks.report.results import aggregate, collect
from exprbench.benchmarks.gate.tolerances import Tolerances


def compare(results_dir: str | Path, baseline: dict, tolerances: Tolerances | None = None) -> list[dict]:
    """One row per (model/config, metric) of the baseline.

    Args:
        results_dir: a results directory with ``runs/``.
        baseline: a validated baseline (:func:`load_baseline`).
        tolerances: parsed options (default: 10%, no floor).

    Returns:
        Rows with ``model, metric, baseline, baseline_std, current, delta, allowed, tolerance, verdict``
        (``regressed`` worse than the baseline by more than the allowance, ``improved`` better by more than
        the same allowance, else ``ok``; ``missing``; models only in the results get one ``new`` row
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
                # one allowance both ways: a change is "improved" only beyond the margin that calls a regression
                row["verdict"] = "regressed" if worse > allowed else ("improved" if -worse > allowed else "ok")
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
