"""exprbench.runs.layout: the run-directory files, status values, and that it imports no model or dataset."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exprbench.runs import layout as rundir
from exprbench.core.errors import CheckpointError, UserError


def test_status_values_are_declared(tmp_path):
    for s in rundir.RUN_STATUSES:
        rundir.write_status(tmp_path, s, step=3)
        assert rundir.read_status(tmp_path) == {"status": s, "step": 3}
    assert "failed" in rundir.RUN_STATUSES  # training that raised (a full disk): status.json says so
    with pytest.raises(ValueError, match="'done' is not one of running, completed, interrupted, diverged, failed"):
        rundir.write_status(tmp_path, "done")  # the runner's record.json says done, status.json never


def test_status_is_written_in_place_on_a_full_disk(tmp_path, monkeypatch):
    """No temporary file fits on a full disk: status.json, small and already there, is overwritten in place."""
    from exprbench.benchmarks.faults.tamper import full_fdopen

    rundir.write_status(tmp_path, "running", step=3)
    monkeypatch.setattr("os.fdopen", full_fdopen(["status.json"]))
    rundir.write_status(tmp_path, "failed", step=3, error="OSError: No space left on device")
    assert rundir.read_status(tmp_path)["status"] == "failed"
    assert not list(tmp_path.glob(".*.tmp"))


def test_config_roundtrip_and_errors(tmp_path):
    with pytest.raises(UserError, match="is not a run directory"):
        rundir.read_config(tmp_path)
    rundir.write_config(tmp_path, {"model": "gan"})
    assert rundir.is_run_dir(tmp_path) and rundir.read_config(tmp_path) == {"model": "gan"}
    (tmp_path / "config.json").write_text("{\n  oops")
    with pytest.raises(UserError, match=r"config.json:2: malformed JSON"):
        rundir.read_config(tmp_path)


def test_checkpoints_roundtrip_keep_and_damage(tmp_path):
    import torch

    for step in (1, 2, 3):
        rundir.save_checkpoint({"step": step, "w": torch.ones(2) * step}, tmp_path, step, keep=2)
    assert [p.name for p in rundir.list_checkpoints(tmp_path)] == ["step_000002.pt", "step_000003.pt"]
    assert rundir.load_checkpoint(rundir.checkpoint_path(tmp_path, 3))["w"].tolist() == [3.0, 3.0]
    p = rundir.checkpoint_path(tmp_path, 3)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="step_000003.pt .*the previous checkpoint step_000002.pt is kept"):
        rundir.load_checkpoint(p)


def test_rundir_imports_no_model_dataset_or_torch():
    code = ("import sys, exprbench.runs.layout; bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'models') "
            "or m.startswith(('exprbench.models', 'exprbench.data', 'exprbench.runs.config', 'exprbench.metrics'))]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_runs_placeholder_roots_sibling_runs_at_the_run_parent(tmp_path):
    from exprbench.runs.layout import collapse_runs, expand_runs

    runs = tmp_path / "suite" / "runs"
    cfg = {"model_cfg": {"base_run": str(runs / "gan-default-s0"), "ch": 8, "tags": [str(runs / "a")]},
           "data": {"path": "/data/fer2013.zip"}}
    moved = collapse_runs(cfg, runs)
    assert moved["model_cfg"] == {"base_run": "{runs}/gan-default-s0", "ch": 8, "tags": ["{runs}/a"]}
    assert moved["data"] == cfg["data"]  # paths outside the runs folder stay as they are
    back = expand_runs(moved, tmp_path / "elsewhere" / "runs" / "interfacegan-default-s0")
    assert back["model_cfg"]["base_run"] == str((tmp_path / "elsewhere" / "runs").resolve() / "gan-default-s0")
    assert expand_runs(cfg, runs / "x") == cfg  # nothing to expand
