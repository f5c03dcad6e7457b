"""benchmarks/runner.py: grid runs, skipping, failed-run recording, and kill-at-any-point resumption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from exprbench.benchmarks.point import run_state
from exprbench.benchmarks.runner import run_suite
from exprbench.benchmarks.suite import load_suite
from exprbench.runs.layout import list_checkpoints, load_checkpoint

from ..bench_helpers import model_block, need_evaluator, write_suite
from ..conftest import REPO, write_csv


def _records(out: Path) -> dict:
    return {p.name: json.loads((p / "record.json").read_text()) for p in sorted((out / "runs").iterdir())}


def test_runs_grid_records_and_skips(tmp_path):
    need_evaluator()
    data = write_csv(tmp_path / "fer2013.csv", per_class=10)
    suite = load_suite(write_suite(tmp_path / "s.toml"))
    recs = run_suite(suite, tmp_path / "out", data_path=str(data), progress=False)
    assert [r["status"] for r in recs] == ["done", "done"]
    rec = _records(tmp_path / "out")["cgan-default-s0"]
    assert rec["train_wall_s"] > 0 and rec["eval_wall_s"] > 0 and rec["img_per_s"] > 0
    assert rec["peak_rss_mib"] > 0 and rec["versions"]["torch"] and "git_commit" in rec["versions"]
    ev = json.loads((tmp_path / "out" / "runs" / "cgan-default-s0" / "eval.json").read_text())
    assert ev["metrics"]["acc_gen70"]["status"] == "ok"
    curve = [json.loads(x) for x in (tmp_path / "out" / "runs" / "cgan-default-s0" / "curve.jsonl").read_text().splitlines()]
    assert [c["step"] for c in curve] == [3, 6] and all("fid70_train" in c for c in curve)
    # a second start skips both (nothing is retrained or re-evaluated)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").rglob("*") if p.is_file()}
    run_suite(suite, tmp_path / "out", data_path=str(data), progress=False)
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").rglob("*") if p.is_file()}
    assert before == after


def test_skipped_metric_is_not_evaluated_for_that_model_only(tmp_path):
    need_evaluator()
    data = write_csv(tmp_path / "fer2013.csv", per_class=10)
    cgan = model_block("cgan").replace('configs = ["default"]', 'configs = ["default"]\nskip_metrics = ["acc_gen70"]')
    suite = load_suite(write_suite(tmp_path / "s.toml", models=("gan",), extra_models=cgan, curve=""))
    assert [r["status"] for r in run_suite(suite, tmp_path / "out", data_path=str(data), progress=False)] == ["done"] * 2
    ev = {n: json.loads((tmp_path / "out" / "runs" / n / "eval.json").read_text())["metrics"]
          for n in ("gan-default-s0", "cgan-default-s0")}
    assert set(ev["cgan-default-s0"]) == {"fid70_train"}
    assert set(ev["gan-default-s0"]) == {"fid70_train", "acc_gen70"}  # recorded (skipped: unconditional) for the other


def test_failed_run_recorded_and_suite_goes_on(tmp_path):
    need_evaluator()
    data = write_csv(tmp_path / "fer2013.csv", per_class=10)
    # a batch larger than the 70 training images passes validation but fails when the run starts
    bad = model_block("acgan", ', "train.batch_size" = 500')
    suite = load_suite(write_suite(tmp_path / "s.toml", models=("gan",), extra_models=bad))
    recs = run_suite(suite, tmp_path / "out", only=["gan", "acgan"], data_path=str(data), progress=False)
    assert [r["status"] for r in recs] == ["done", "failed"]
    assert "larger than the split" in recs[1]["error"]
    assert run_state(tmp_path / "out" / "runs" / "acgan-default-s0") == "failed"


def test_seed_and_model_selection(tmp_path):
    from exprbench.benchmarks.suite import SuiteError

    p = write_suite(tmp_path / "s.toml")
    p.write_text(p.read_text().replace("seeds = [0]", "seeds = [0, 1]"))
    suite = load_suite(p)
    import pytest

    with pytest.raises(SuiteError, match="--seed 7 is not in suite"):
        run_suite(suite, tmp_path / "out", seeds=[7], data_path="x")
    with pytest.raises(SuiteError, match="--only 'vae' is not in suite"):
        run_suite(suite, tmp_path / "out", only=["vae"], data_path="x")


def _bench(suite: Path, out: Path, data: Path) -> list[str]:
    return [sys.executable, "-m", "exprbench", "bench", str(suite), "--out", str(out), "--data", str(data)]


def _kill_when(cmd, env, ready) -> None:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while proc.poll() is None and time.time() < deadline and not ready():
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_kill_at_several_points_then_resume(tmp_path):
    """Kill the runner mid-training, between runs, and after a training ends; the resumed suite ends
    with each run done once and the same weights as an uninterrupted suite."""
    need_evaluator()
    data = write_csv(tmp_path / "fer2013.csv", per_class=10)
    suite = write_suite(tmp_path / "s.toml")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(_bench(suite, tmp_path / "clean", data), env=env, check=True, capture_output=True)

    out = tmp_path / "killed"
    runs = out / "runs"
    points = [
        lambda: any(p.name >= "step_000002.pt" for p in list_checkpoints(runs / "gan-default-s0")),
        lambda: (runs / "gan-default-s0" / "record.json").exists(),
        lambda: '"completed"' in ((runs / "cgan-default-s0" / "status.json").read_text()
                                  if (runs / "cgan-default-s0" / "status.json").exists() else ""),
    ]
    for ready in points:
        _kill_when(_bench(suite, out, data), env, ready)
    subprocess.run(_bench(suite, out, data), env=env, check=True, capture_output=True)

    for name in ("gan-default-s0", "cgan-default-s0"):
        rec = json.loads((runs / name / "record.json").read_text())
        assert rec["status"] == "done" and rec["steps"] == 6
        steps = [json.loads(x)["step"] for x in (runs / name / "train.jsonl").read_text().splitlines()]
        assert steps == [2, 4, 6], f"{name}: log lost or duplicated records: {steps}"
        curve = [json.loads(x)["step"] for x in (runs / name / "curve.jsonl").read_text().splitlines()]
        assert curve == [3, 6]
        a = load_checkpoint(list_checkpoints(tmp_path / "clean" / "runs" / name)[-1])["model"]["nets"]
        b = load_checkpoint(list_checkpoints(runs / name)[-1])["model"]["nets"]
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name}: weights differ from the uninterrupted suite"


def test_run_of_another_config_is_refused(tmp_path, capsys):
    """A suite that now asks for model.ch=16 does not reuse (or overwrite) a ch=8 run in the same --out."""
    from exprbench.benchmarks.identity import IdentityError
    from exprbench.cli import main

    import pytest

    need_evaluator()
    data = write_csv(tmp_path / "fer2013.csv", per_class=10)
    p = write_suite(tmp_path / "s.toml", models=("gan",), metrics='["fid70_train"]', curve="")
    out = tmp_path / "out"
    (rec,) = run_suite(load_suite(p), out, data_path=str(data), progress=False)
    run = out / "runs" / "gan-default-s0"
    ident = json.loads((run / "identity.json").read_text())
    assert rec["status"] == "done" and rec["config_sha256"] == ident["config_sha256"] and ident["config"]["model.ch"] == 8
    p.write_text(p.read_text().replace('"model.ch" = 8', '"model.ch" = 16'))
    before = {q: q.stat().st_mtime_ns for q in out.rglob("*") if q.is_file()}
    with pytest.raises(IdentityError, match=r"model.ch=8 but suite 'tiny' now asks for model.ch=16"):
        run_suite(load_suite(p), out, data_path=str(data), progress=False)
    (run / "identity.json").unlink()  # a directory from before identity.json: config.json decides
    before.pop(run / "identity.json")
    assert main(["bench", str(p), "--out", str(out), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.ch=8" in err and len(err.splitlines()) == 1
    assert before == {q: q.stat().st_mtime_ns for q in out.rglob("*") if q.is_file()}  # nothing touched
    # the same config on another device is the same grid point: skipped as done
    p.write_text(p.read_text().replace('"model.ch" = 16', '"model.ch" = 8').replace('device = "cpu"', 'device = "auto"'))
    (again,) = run_suite(load_suite(p), out, data_path=str(data), progress=False)
    assert again == rec
