"""metrics/run/run_checks.py unfinished_warnings: evaluating a partly trained run says so."""

from __future__ import annotations

import json

from exprbench.metrics.run.run_checks import unfinished_warnings


def test_a_completed_run_at_its_budget_gets_no_warning_and_others_do(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"status": "completed", "step": 3000}))
    assert unfinished_warnings(tmp_path, 3000, 3000) == []
    assert "checkpoint step 1,500 of 3,000" in unfinished_warnings(tmp_path, 1500, 3000)[0]
    (tmp_path / "status.json").write_text(json.dumps({"status": "interrupted", "step": 800}))
    assert "status 'interrupted'" in unfinished_warnings(tmp_path, 800, 3000)[0]
    (tmp_path / "status.json").write_text(json.dumps({"status": "completed"}))
    assert unfinished_warnings(tmp_path, 40, None) == []  # a --minutes budget: no step target


def test_a_step_asked_of_a_published_run_names_what_it_keeps(tmp_path):
    import pytest

    from exprbench.core.errors import UserError
    from exprbench.runs.loader import select_checkpoint

    (tmp_path / "weights.safetensors").write_bytes(b"")
    (tmp_path / "status.json").write_text(json.dumps({"status": "completed", "step": 3000}))
    with pytest.raises(UserError, match=r"published run: it keeps only its final weights \(weights.safetensors, step 3000\)"):
        select_checkpoint(tmp_path, 1234)
