"""exprbench.runs.harness: run directory, logs, checkpoints, kill-and-resume equality, corruption, NaN guard, budgets."""

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

from exprbench.runs.config import resolve_config
from exprbench.core.errors import CheckpointError, ConfigError, TrainingDiverged, UserError
from exprbench.runs.harness import EpochSampler, Trainer
from exprbench.runs.layout import list_checkpoints, load_checkpoint
from exprbench.runs.loader import load_trained

from ..conftest import REPO, write_csv

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


def test_a_key_logged_on_some_steps_is_averaged_over_those_steps(tmp_path, tiny_dataset, monkeypatch):
    """A log key a model returns on some steps only (InterFaceGAN's fit statistics, step 1) is the mean
    over the steps that returned it, not divided by the whole logging window."""
    from exprbench.models import get_model

    cls = get_model("gan")
    plain = cls.training_step

    def step_with_a_once_key(self, batch, step):
        logs = plain(self, batch, step)
        return {**logs, "once": 5.0} if step == 0 else logs

    monkeypatch.setattr(cls, "training_step", step_with_a_once_key)
    Trainer(cfg_for("gan", 4), tmp_path / "r", dataset=tiny_dataset, progress=False).run()
    records = [json.loads(x) for x in (tmp_path / "r" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert records[0]["once"] == 5.0 and "once" not in records[1]


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


def test_minutes_budget_without_a_step_budget(tmp_path, tiny_dataset):
    from exprbench.runs.config import NO_STEP_BUDGET, load_run_config

    cfg = cfg_for(extra=["train.minutes=0.002", NO_STEP_BUDGET])
    assert cfg.train.steps is None
    result = Trainer(cfg, tmp_path / "r", dataset=tiny_dataset, progress=False).run()
    assert result["step"] >= 1 and result["train_seconds"] >= 0.12
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["steps"] is None
    assert load_run_config(tmp_path / "r").train.steps is None  # read back exactly


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
    from ..model_checks import tiny_model
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


# -- integrity: checkpoints carry their own hash -------------------------------------------------


def _flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_checkpoint_verifies_itself_without_sidecar(tmp_path, tiny_dataset):
    run = tmp_path / "r"
    Trainer(cfg_for(steps=2), run, dataset=tiny_dataset, progress=False).run()
    (ck,) = list_checkpoints(run)
    ck.with_suffix(".sha256").unlink()
    assert load_checkpoint(ck)["step"] == 2  # a missing sidecar alone is fine: the hash is inside
    _flip(ck)
    with pytest.raises(CheckpointError, match="does not match the sha256 stored inside it"):
        load_checkpoint(ck)


def test_damaged_checkpoint_is_never_resigned_on_resume(tmp_path, tiny_dataset):
    run = tmp_path / "r"
    Trainer(cfg_for(steps=2), run, dataset=tiny_dataset, progress=False).run()
    (ck,) = list_checkpoints(run)
    ck.with_suffix(".sha256").unlink()
    _flip(ck)
    damaged = ck.read_bytes()
    with pytest.raises(CheckpointError, match="step_000002.pt is corrupt"):
        Trainer(cfg_for(steps=4), run, resume=True, dataset=tiny_dataset, progress=False).run()
    assert list_checkpoints(run) == [ck] and ck.read_bytes() == damaged
    assert not ck.with_suffix(".sha256").exists()  # no fresh sidecar vouches for it


def test_old_format_checkpoint_needs_its_sidecar(tmp_path, tiny_dataset):
    """Checkpoints written before the embedded hash (a plain torch.save) load with a matching sidecar."""
    from exprbench.core.io import file_sha256

    run = tmp_path / "r"
    Trainer(cfg_for(steps=2), run, dataset=tiny_dataset, progress=False).run()
    (ck,) = list_checkpoints(run)
    state = load_checkpoint(ck)
    torch.save(state, ck)  # the old format
    ck.with_suffix(".sha256").write_text(file_sha256(ck) + "\n")
    assert load_checkpoint(ck)["step"] == 2
    _, _, _, step = load_trained(run)
    assert step == 2
    ck.with_suffix(".sha256").unlink()
    with pytest.raises(CheckpointError, match="cannot be verified .*no sha256 of its own and its .sha256 file is missing"):
        load_checkpoint(ck)


def test_stale_temp_files_cleaned_on_start(tmp_path, tiny_dataset):
    run = tmp_path / "r"
    Trainer(cfg_for(steps=2), run, dataset=tiny_dataset, progress=False).run()
    stale = run / "checkpoints" / ".step_000004.pt.x1y2z3.tmp"
    stale.write_bytes(b"half a checkpoint")
    Trainer(cfg_for(steps=4), run, resume=True, dataset=tiny_dataset, progress=False).run()
    assert not stale.exists()
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []


def test_files_are_group_and_world_readable(tmp_path, tiny_dataset):
    import stat

    old = os.umask(0o022)
    try:
        Trainer(cfg_for(steps=2), tmp_path / "r", dataset=tiny_dataset, progress=False).run()
    finally:
        os.umask(old)
    run = tmp_path / "r"
    for p in [run / "config.json", run / "status.json", *list_checkpoints(run), *(run / "samples").iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_status_json_is_strict_json_after_divergence(tmp_path, tiny_dataset, monkeypatch):
    from exprbench.models.gan import GAN

    real_step = GAN.training_step
    monkeypatch.setattr(GAN, "training_step",
                        lambda self, b, s: {**real_step(self, b, s), "loss_d": float("nan")} if s == 1 else real_step(self, b, s))
    with pytest.raises(TrainingDiverged):
        Trainer(cfg_for(steps=4), tmp_path / "r", dataset=tiny_dataset, progress=False).run()

    def refuse(c):
        raise AssertionError(f"status.json holds {c}, which is not JSON")

    status = json.loads((tmp_path / "r" / "status.json").read_text(), parse_constant=refuse)
    assert status["status"] == "diverged" and status["losses"]["loss_d"] is None


# -- Ctrl-C ----------------------------------------------------------------------------------


def _sigint_at(target: int):
    def hook(step, model):
        if step == target:
            os.kill(os.getpid(), signal.SIGINT)
        return {}
    return hook


def test_ctrl_c_saves_a_checkpoint_and_resumes_exactly(tmp_path, tiny_dataset):
    from exprbench.core.errors import TrainingInterrupted

    steps = 6
    Trainer(cfg_for(steps=steps), tmp_path / "straight", dataset=tiny_dataset, progress=False).run()
    run = tmp_path / "r"
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step 2: checkpoint saved: .*step_000002.pt"):
        Trainer(cfg_for(steps=steps), run, dataset=tiny_dataset, progress=False,
                eval_hook=_sigint_at(2), eval_every=1).run()
    assert [p.name for p in list_checkpoints(run)] == ["step_000002.pt"]
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted" and status["step"] == 2 and status["checkpoint"].endswith("step_000002.pt")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    Trainer(cfg_for(steps=steps), run, resume=True, dataset=tiny_dataset, progress=False).run()
    a = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1])["model"]["nets"]
    b = load_checkpoint(list_checkpoints(run)[-1])["model"]["nets"]
    assert all(torch.equal(a[k], b[k]) for k in a), "interrupt + resume must equal an uninterrupted run"


def test_keyboard_interrupt_mid_step_is_not_saved(tmp_path, tiny_dataset, monkeypatch):
    """A KeyboardInterrupt raised inside a step (a second Ctrl-C) stops at once: that step's state may be
    torn, so nothing is saved; the newest checkpoint is named."""
    from exprbench.core.errors import TrainingInterrupted
    from exprbench.models.gan import GAN

    real_step = GAN.training_step

    def step_fn(self, batch, step):
        if step == 3:
            raise KeyboardInterrupt
        return real_step(self, batch, step)

    monkeypatch.setattr(GAN, "training_step", step_fn)
    run = tmp_path / "r"
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step 3: stopped mid-step, not saved; "
                                                  r"newest checkpoint: .*step_000002.pt"):
        Trainer(cfg_for(steps=6, extra=["train.ckpt_every=2"]), run, dataset=tiny_dataset, progress=False).run()
    assert [p.name for p in list_checkpoints(run)] == ["step_000002.pt"]
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"


def test_a_log_gets_a_plain_progress_line_where_no_bar_is_drawn(tmp_path, tiny_dataset, monkeypatch, capsys):
    """stderr not a terminal (a log, CI, `| cat`): the trainer prints step/total, img/s and ETA lines."""
    from exprbench.runs import ticker

    monkeypatch.setattr(ticker, "INTERVAL_S", 0.0)
    Trainer(cfg_for(steps=3), tmp_path / "run", dataset=tiny_dataset, progress=True).run()
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("gan/default: step")]
    assert [x.split(",")[0] for x in lines] == ["gan/default: step 1/3 (33%)", "gan/default: step 2/3 (67%)",
                                                 "gan/default: step 3/3 (100%)"]
    assert "img/s" in lines[-1] and "ETA" in lines[0]


def test_the_ticker_waits_its_interval_and_formats_durations():
    import io

    from exprbench.runs.ticker import LogTicker, fmt_duration

    out = io.StringIO()
    t = LogTicker("x", 10, stream=out, interval=3600.0)
    t.update(5)
    assert out.getvalue() == "" and t.enabled  # a StringIO is not a terminal
    assert (fmt_duration(3725), fmt_duration(95), fmt_duration(7)) == ("1h02m", "1m35s", "7s")


@pytest.mark.parametrize("log", ["train.jsonl", "curve.jsonl"])
def test_resume_drops_a_torn_last_log_line_with_a_warning(tmp_path, tiny_dataset, capsys, log):
    """A crash or a full disk mid-write leaves half a record: resume drops it (never a whole line) and says so."""
    run = tmp_path / "run"
    Trainer(cfg_for(steps=4, extra=["train.ckpt_every=2"]), run, dataset=tiny_dataset, progress=False).run()
    path = run / log
    whole = path.read_text() if path.exists() else ""
    with open(path, "a") as fh:
        fh.write('{"step": 65, "epo')
    result = Trainer(cfg_for(steps=6, extra=["train.ckpt_every=2"]), run, resume=True, dataset=tiny_dataset,
                     progress=False).run()
    assert result["status"] == "completed" and result["step"] == 6
    assert f"{log}: dropped a torn last line" in capsys.readouterr().err
    text = path.read_text()
    assert text.startswith(whole)
    assert all(json.loads(x)["step"] in (2, 4, 6) for x in text.splitlines())  # every line whole, step 65 gone


def test_a_malformed_middle_log_line_is_refused_in_one_line(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    Trainer(cfg_for(steps=4), run, dataset=tiny_dataset, progress=False).run()
    lines = (run / "train.jsonl").read_text().splitlines()
    (run / "train.jsonl").write_text("garbage\n" + "\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"train.jsonl:1: not a JSON record"):
        Trainer(cfg_for(steps=6), run, resume=True, dataset=tiny_dataset, progress=False).run()


def test_init_from_starts_a_run_from_another_runs_checkpoint(tmp_path, tiny_dataset):
    """train.init_from: the nets start as the checkpoint's (a fine-tune), the status records its sha256;
    a missing file or a checkpoint of another width is one line."""
    from exprbench.runs.layout import init_model
    from exprbench.runs.loader import build_model

    Trainer(cfg_for("cgan", 2, ["train.ckpt_every=2"]), tmp_path / "a", dataset=tiny_dataset, progress=False).run()
    ckpt = list_checkpoints(tmp_path / "a")[-1]
    model = build_model(cfg_for("cgan", 2), tiny_dataset.spec, torch.device("cpu"))
    init_model(model, str(ckpt))
    saved = load_checkpoint(ckpt)["model"]["nets"]
    assert all(torch.equal(v, saved[k]) for k, v in model.nets.state_dict().items())
    from exprbench.runs.layout import write_init_checkpoint

    slim = write_init_checkpoint(ckpt, tmp_path / "init.pt")  # nets and EMA only: fresh optimizers
    assert slim.stat().st_size < ckpt.stat().st_size
    fresh = build_model(cfg_for("cgan", 2), tiny_dataset.spec, torch.device("cpu"))
    init_model(fresh, str(slim))
    assert all(torch.equal(v, saved[k]) for k, v in fresh.nets.state_dict().items())
    status = Trainer(cfg_for("cgan", 1, [f"train.init_from={ckpt}"]), tmp_path / "b", dataset=tiny_dataset,
                     progress=False).run()
    assert status["init_from"]["path"] == str(ckpt) and len(status["init_from"]["sha256"]) == 64
    with pytest.raises(UserError, match="no such checkpoint file"):
        init_model(model, str(tmp_path / "nope.pt"))
    wider = build_model(cfg_for("cgan", 2, ["model.ch=16"]), tiny_dataset.spec, torch.device("cpu"))
    with pytest.raises(UserError, match="do not fit this model"):
        init_model(wider, str(ckpt))
