"""The smoke suite end to end on the real FER2013 zip: bench -> report -> regress against the committed
baseline (results/smoke/baseline.json). This is the CI gate of the suite itself."""

from __future__ import annotations

import json
import os

import pytest
import torch

from exprbench.cli import main

from .bench_helpers import need_evaluator
from .conftest import REPO

BASELINE = REPO / "results" / "smoke" / "baseline.json"
# The README's CI recipe: `exprbench regress /tmp/smoke --baseline ci/baseline.json <these options>`.
# Allowance max(2 baseline seed std, 10% of |mean|): the smoke models are barely trained (30 steps),
# so the baseline's seed spread (3 seeds) sets what counts as noise; the floor covers std 0 or missing.
REGRESS_OPTIONS = ["--tolerance", "2sd", "--tolerance-floor", "10%"]
# CI runs one of the baseline's three seeds (`exprbench bench smoke --seed 0 ...`).
BENCH_OPTIONS = ["--seed", "0"]


@pytest.fixture
def all_cores():
    """The smoke suite is the one heavy test: in a serial run let it use every core (the others run
    single-threaded); under pytest-xdist (``make test``) the other workers have the other cores."""
    before = torch.get_num_threads()
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


def test_smoke_suite_bench_report_regress(real_zip, tmp_path, capsys, all_cores):
    need_evaluator()
    out = tmp_path / "smoke"
    assert main(["bench", "smoke", *BENCH_OPTIONS, "--out", str(out), "--data", str(real_zip)]) == 0, capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/record.json"))]
    assert records and all(r["status"] == "done" for r in records)
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "leaderboard.md").exists() and (out / "report" / "figures" / "comparison.png").exists()
    # Exactly the README's CI recipe (tests/test_regress.py checks the README shows these options).
    code = main(["regress", str(out), "--baseline", str(BASELINE), *REGRESS_OPTIONS])
    assert code == 0, capsys.readouterr().out
