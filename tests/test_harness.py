"""exprbench.harness: run directory, logs, checkpoints, kill-and-resume equality, corruption, NaN guard, budgets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from exprbench.config import resolve_config
from exprbench.errors import CheckpointError, ConfigError, TrainingDiverged, UserError
from exprbench.harness import EpochSampler, Trainer, list_checkpoints, load_checkpoint, load_trained

from .conftest import REPO, write_csv

TINY = ["model.ch=8", "train.batch_size=8", "train.log_every=2", "train.sample_every=0",
        "train.samples_per_class=2"]


def cfg_for(model="gan", steps=6, extra=()):
    return resolve_config(model, "default", [*TINY, f"train.steps={steps}", *extra])


def test_run_directory_contents(tmp_path, tiny_dataset):
    result = Trainer(cfg_for("cgan", 4, ["train.ckpt_every=2"]), tmp_path / "run", dataset=tiny_dataset,
                     progress=False).run()
    run = tmp_path / "run"
    assert result["status"] == "completed" and result["step"] == 4
    assert json.loads((run / "config.json").read_text())["model"] == "cgan"
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "completed" and status["img_per_s"] > 0
    assert status["data_fingerprint"] == tiny_dataset.fingerprint
    records = [json.loads(x) for x in (run / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert {"loss_d", "loss_g", "img_s", "epoch"} <= set(records[0])
    assert (run / "samples" / "step_000004.png").exists()
    assert [p.name for p in list_checkpoints(run)] == ["step_000002.pt", "step_000004.pt"]
    assert any((run / "tb").iterdir())
    cfg, model, spec, step = load_trained(run)
    assert step == 4 and spec.class_names == tiny_dataset.class_names and model.ema is not None


def test_existing_run_dir_needs_resume(tmp_path, tiny_dataset):
    Trainer(cfg_for(steps=2), tmp_path / "r", dataset=tiny_dataset, progress=False).run()
    with pytest.raises(UserError, match="exists: pass --resume"):
        Trainer(cfg_for(steps=2), tmp_path / "r", dataset=tiny_dataset, progress=False).run()


def test_resume_refuses_a_different_config(tmp_path, tiny_dataset):
    Trainer(cfg_for(steps=2), tmp_path / "r", dataset=tiny_dataset, progress=False).run()
    other = cfg_for(steps=4, extra=["model.z_dim=64"])
    with pytest.raises(ConfigError, match="model.z_dim=128 but this run asks for 64"):
        Trainer(other, tmp_path / "r", resume=True, dataset=tiny_dataset, progress=False).run()


def test_resume_extends_budget_and_trims_log(tmp_path, tiny_dataset):
    Trainer(cfg_for(steps=4), tmp_path / "r", dataset=tiny_dataset, progress=False).run()
    Trainer(cfg_for(steps=8), tmp_path / "r", resume=True, dataset=tiny_dataset, progress=False).run()
    steps = [json.loads(x)["step"] for x in (tmp_path / "r" / "train.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8]


def _train_cmd(data: Path, out: Path, steps: int, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "exprbench", "train", "gan", "--data", str(data), "--out", str(out),
           "--steps", str(steps), "--seed", "3"]
    for s in [*TINY, "train.ckpt_every=3", "train.keep_ckpts=3"]:
        cmd += ["--set", s]
    return cmd + (["--resume"] if resume else [])


def test_sigkill_and_resume_gives_identical_weights(tmp_path):
    data = write_csv(tmp_path / "fer2013.csv", per_class=6)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    steps = 30
    subprocess.run(_train_cmd(data, tmp_path / "straight", steps), check=True, env=env, capture_output=True)

    proc = subprocess.Popen(_train_cmd(data, tmp_path / "killed", steps), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        ck = list_checkpoints(tmp_path / "killed")
        if ck and ck[-1].name >= "step_000009.pt":
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = list_checkpoints(tmp_path / "killed")[-1]
    assert killed_at.name < f"step_{steps:06d}.pt"

    subprocess.run(_train_cmd(data, tmp_path / "killed", steps, resume=True), check=True, env=env,
                   capture_output=True)
    a = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1])
    b = load_checkpoint(list_checkpoints(tmp_path / "killed")[-1])
    assert a["step"] == b["step"] == steps
    for part in ("nets", "ema"):
        sa, sb = a["model"][part], b["model"][part]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{part}.{k} differs after kill and resume"


def test_corrupt_checkpoint_refused_previous_kept(tmp_path, tiny_dataset):
    run = tmp_path / "r"
    Trainer(cfg_for(steps=6, extra=["train.ckpt_every=3"]), run, dataset=tiny_dataset, progress=False).run()
    prev, last = list_checkpoints(run)
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"step_000006.pt is corrupt .*step_000003.pt is kept"):
        Trainer(cfg_for(steps=9, extra=["train.ckpt_every=3"]), run, resume=True, dataset=tiny_dataset,
                progress=False).run()
    assert prev.exists() and load_checkpoint(prev)["step"] == 3


def test_bitflip_detected_by_sha256(tmp_path, tiny_dataset):
    run = tmp_path / "r"
    Trainer(cfg_for(steps=2), run, dataset=tiny_dataset, progress=False).run()
    (ck,) = list_checkpoints(run)
    raw = bytearray(ck.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    ck.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(ck)


def test_nan_loss_stops_and_marks_diverged(tmp_path, tiny_dataset, monkeypatch):
    from exprbench.models.gan import GAN

    real_step = GAN.training_step

    def flaky(self, batch, step):
        logs = real_step(self, batch, step)
        return {**logs, "loss_d": float("nan")} if step == 4 else logs

    monkeypatch.setattr(GAN, "training_step", flaky)
    run = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match="loss_d=nan at step 4"):
        Trainer(cfg_for(steps=10, extra=["train.ckpt_every=2"]), run, dataset=tiny_dataset, progress=False).run()
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "diverged" and status["step"] == 4
    assert [p.name for p in list_checkpoints(run)] == ["step_000002.pt", "step_000004.pt"]


def test_minutes_budget(tmp_path, tiny_dataset):
    cfg = cfg_for(steps=10**6, extra=["train.minutes=0.002"])
    result = Trainer(cfg, tmp_path / "r", dataset=tiny_dataset, progress=False).run()
    assert 1 <= result["step"] < 10**6 and result["train_seconds"] >= 0.12


def test_epoch_sampler_state_roundtrip():
    a = EpochSampler(10, 3, seed=0)
    for _ in range(4):
        a.next()
    b = EpochSampler(10, 3, seed=0)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(a.next(), b.next()) for _ in range(10))
    seen = torch.cat([EpochSampler(9, 3, 1).next() for _ in range(1)])
    assert len(set(seen.tolist())) == 3
    with pytest.raises(ConfigError, match="larger than the split"):
        EpochSampler(4, 8, 0)


def test_ema_warms_up_and_lags():
    from .model_checks import tiny_model
    from exprbench.models.base import Batch

    model = tiny_model("gan", "default")  # default config: EMA on, decay 0.999
    assert model.ema is not None
    g, ema = model.nets["G"], model.ema.module
    for step in range(3):
        model.training_step(Batch(torch.rand(4, 1, 48, 48) * 2 - 1, torch.zeros(4, dtype=torch.long)), step)
        model.update_ema()
    w, e = g.fc.weight, ema.fc.weight
    assert not torch.equal(w, e), "EMA must lag the live weights"
    # after 3 updates the warm-up decay is at most (1+2)/(10+2) = 0.25: the EMA is near the live weights
    assert (w - e).abs().mean() < (w - tiny_model("gan", "default").nets["G"].fc.weight).abs().mean()
