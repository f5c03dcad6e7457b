"""The fault campaign (python -m exprbench.benchmarks.faults.campaign): a fast subset of its cases runs here
(two subprocesses, no trained run); the whole campaign takes a few minutes and runs by hand or in CI."""

from __future__ import annotations

import pytest

from exprbench.benchmarks.faults import campaign
from exprbench.benchmarks.faults.cases import CASES, Spec

FAST = ["regress-baseline-200000-deep", "regress-baseline-dev-zero"]


@pytest.mark.faults
def test_a_fast_subset_of_the_campaign_passes(capsys):
    assert campaign.main(["--only", ",".join(FAST)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "tried 2, passed 2", out
    assert all(any(line.startswith(f"pass {name} ") for line in out) for name in FAST), out


def test_every_finding_has_cases_and_the_judge_catches_tracebacks():
    findings = {f.split()[0] for f, _, _ in CASES.values()}
    assert {"1", "5", "6", "7", "33"} <= findings and len(CASES) >= 20
    spec = Spec(["x"], 2, ("no space",))
    _, problems = campaign._judge(spec, 2, "Traceback (most recent call last):\nerror: boom")
    assert "a traceback on stderr" in problems and "no 'no space' in the last stderr line" in problems
    assert campaign._judge(spec, 1, "error: f: no space left")[1] == ["exit code 1, expected 2"]
    assert campaign._judge(spec, 2, "progress\nerror: f: no space left")[1] == []
