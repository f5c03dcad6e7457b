"""Bold only when the difference is real: the best row's interval must not overlap the runner-up's (one seed: its
bootstrap ci95; several: the wider of the mean ci95 bounds and the t interval over seeds); no interval, no bold."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy.stats import t as student_t

from exprbench.benchmarks.report.results import aggregate, row_interval
from exprbench.benchmarks.report.latex import to_latex
from exprbench.benchmarks.report.tables import BOLD_RULE, leaderboard_tables, notes_markdown

FID = "fid70_train"  # lower is better


def _runs(rows) -> pd.DataFrame:
    """A runs frame: ``rows`` = [(model, seed, fid, ci95 or None)]."""
    out = []
    for model, seed, fid, ci in rows:
        r = {"run": f"{model}-s{seed}", "model": model, "config": "default", "seed": seed, "status": "done",
             "source": "bench", "device": "cpu", "device_name": "cpu", "train_seconds": 1.0, "img_per_s": 1.0,
             "classes": 7, FID: fid}
        if ci is not None:
            r[f"{FID}|ci_lo"], r[f"{FID}|ci_hi"] = ci
        out.append(r)
    return pd.DataFrame(out)


def _bold(rows) -> tuple[dict, object]:
    t = next(t for t in leaderboard_tables(aggregate(_runs(rows)), {FID: 0.05, f"{FID}|n": 70}) if t.name == "fidelity")
    col = t.columns.index(FID)
    return {r[0]: b[col] for r, b in zip(t.rows[1:], t.bold[1:])}, t


def test_overlapping_intervals_no_bold():
    bold, t = _bold([("a", 0, 1.0, (0.9, 1.1)), ("b", 0, 1.05, (1.0, 1.2))])
    assert not any(bold.values())
    assert BOLD_RULE in notes_markdown(t).lower() or "does not overlap the runner-up" in notes_markdown(t)


def test_disjoint_intervals_bold_the_best():
    bold, t = _bold([("a", 0, 1.0, (0.9, 1.1)), ("b", 0, 1.5, (1.3, 1.7)), ("c", 0, 2.0, (1.8, 2.2))])
    assert bold == {"a": True, "b": False, "c": False}
    assert r"\textbf{" in to_latex(t, "s") and "does not overlap the runner-up" in to_latex(t, "s")


def test_no_interval_no_bold_and_a_note():
    bold, t = _bold([("a", 0, 1.0, None), ("b", 0, 5.0, None)])
    assert not any(bold.values())
    assert any("want of an interval" in n and FID in n for n in t.notes)


def test_reference_row_carries_its_count():
    _, t = _bold([("a", 0, 1.0, (0.9, 1.1)), ("b", 0, 1.5, (1.3, 1.7))])
    assert t.rows[0][0] == "real data (reference, N=70)"


def test_one_seed_vs_several():
    """One seed: its ci95; several: the wider of the mean bounds and the t interval."""
    one = pd.Series([1.0])
    assert row_interval(one, pd.Series([0.9]), pd.Series([1.2])) == (0.9, 1.2)
    assert all(math.isnan(v) for v in row_interval(one, None, None))
    vals = pd.Series([1.0, 1.2, 1.1])
    half = student_t.ppf(0.975, 2) * vals.std(ddof=1) / math.sqrt(3)
    narrow = row_interval(vals, pd.Series([1.05, 1.15, 1.08]), pd.Series([1.06, 1.16, 1.09]))
    assert narrow == pytest.approx((1.1 - half, 1.1 + half))  # seeds spread more than each ci95: the t interval
    wide = row_interval(vals, pd.Series([0.0, 0.1, 0.2]), pd.Series([2.0, 2.1, 2.2]))
    assert wide == pytest.approx((0.1, 2.1))  # wide bootstrap intervals: their mean bounds
    assert row_interval(vals, None, None) == pytest.approx((1.1 - half, 1.1 + half))  # no ci95: t alone
    # in a table: model a (3 seeds, spread) against b (1 seed, tight, far away)
    rows = [("a", s, v, (v - 0.01, v + 0.01)) for s, v in enumerate([1.0, 1.2, 1.1])] + [("b", 0, 3.0, (2.9, 3.1))]
    bold, _ = _bold(rows)
    assert bold == {"a": True, "b": False}
    rows[-1] = ("b", 0, 1.1 + half * 1.5, (1.1 + half * 0.9, 1.1 + half * 2))  # b's interval reaches into a's t interval
    bold, _ = _bold(rows)
    assert not any(bold.values())
