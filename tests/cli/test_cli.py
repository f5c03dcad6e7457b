"""exprbench.cli: commands, output, and exit codes (0 ok, 2 bad input or usage, 1 other failure)."""

from __future__ import annotations

import json
import sys

import pytest

from exprbench.cli import main

from ..conftest import write_csv

TINY = ["--set", "model.ch=8", "--set", "train.batch_size=8", "--set", "train.log_every=1",
        "--set", "train.samples_per_class=2"]


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_lists_plugins(capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0 and "cgan" in out and "conditional" in out and "reference" in out


def test_data_info(tmp_path, capsys):
    code, out, _ = run(["data", "info", "--data", str(write_csv(tmp_path / "fer2013.csv"))], capsys)
    assert code == 0 and "angry" in out and "42" in out


def test_train_then_sample(tmp_path, capsys):
    data = write_csv(tmp_path / "fer2013.csv", per_class=4)
    out_dir = tmp_path / "run"
    code, out, err = run(["train", "cgan", "--data", str(data), "--out", str(out_dir), "--steps", "2", *TINY], capsys)
    assert code == 0, err
    assert json.loads((out_dir / "status.json").read_text())["status"] == "completed"
    png = tmp_path / "grid.png"
    code, out, err = run(["sample", str(out_dir), "--label", "happy", "--label", "sad", "--n", "3",
                          "--out", str(png)], capsys)
    assert code == 0, err
    from PIL import Image

    with Image.open(png) as im:
        assert im.height == 2 * 50 + 2  # two rows of 48 px + padding


@pytest.mark.parametrize("argv, message", [
    (["train", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    (["train", "cgan", "--config", "best"], "has no config 'best'"),
    (["train", "cgan", "--set", "model.zdim=3"], "unknown config key 'model.zdim'"),
    (["train", "cgan", "--steps", "3", "--minutes", "1"], "either --steps or --minutes"),
    (["data", "info", "--data", "/nonexistent/fer2013.zip"], "dataset not found: /nonexistent/fer2013.zip"),
    (["data", "info", "--data", "@csv", "--label-set", "fer5"], "unknown label set 'fer5'"),
    (["sample", "/nonexistent-run"], "not a run directory"),
])
def test_bad_input_exits_2_with_one_line(argv, message, tmp_path, capsys):
    argv = [str(write_csv(tmp_path / "fer2013.csv")) if a == "@csv" else a for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_csv_line_exits_2(tmp_path, capsys):
    p = write_csv(tmp_path / "fer2013.csv")
    lines = p.read_text().splitlines()
    lines[5] = "3,1 2 3,Training"
    p.write_text("\n".join(lines) + "\n")
    code, _, err = run(["data", "info", "--data", str(p)], capsys)
    assert code == 2 and "fer2013.csv:6: 3 pixels, expected 2304" in err


def test_sample_unknown_emotion_exits_2(tmp_path, capsys):
    data = write_csv(tmp_path / "fer2013.csv", per_class=4)
    assert run(["train", "gan", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "1", *TINY], capsys)[0] == 0
    code, _, err = run(["sample", str(tmp_path / "r"), "--label", "bored"], capsys)
    assert code == 2 and "unknown emotion 'bored'" in err
    code, _, err = run(["sample", str(tmp_path / "r"), "--label", "happy"], capsys)
    assert code == 2 and "unconditional" in err


def test_usage_error_exits_2(capsys):
    assert run(["train", "cgan", "--bogus"], capsys)[0] == 2


# -- bad values: one line, exit 2 --------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["train", "cgan", "--set", "train.log_every=0"], "train.log_every=0: must be >= 1"),
    (["train", "cgan", "--set", "model.ch=-2"], "model.ch=-2: must be >= 1"),
    (["train", "cgan", "--set", "train.steps=-5"], "train.steps=-5: must be >= 1"),
    (["train", "cgan", "--minutes", "0"], "--minutes 0: the budget must be more than 0 minutes"),
    (["train", "cgan", "--set", "train.batch_size=0"], "train.batch_size=0: must be >= 1"),
    (["train", "cgan", "--steps", "0"], "exprbench train: Invalid value for '--steps'"),
    (["train", "cgan", "--seed", "-1"], "exprbench train: Invalid value for '--seed'"),
    (["sample", "run", "--n", "0"], "exprbench sample: Invalid value for '--n'"),
    (["config", "show", "cgan", "--set", "train.log_every=0"], "train.log_every=0: must be >= 1"),
    (["edit", "/nonexistent-run", "--to", "happy", "--strength", "nan,inf"], "--strength nan,inf: nan is not a finite number"),
    (["edit", "/nonexistent-run", "--to", "happy", "--strength", "0,inf"], "inf is not a finite number"),
])
def test_bad_values_one_line_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results").exists()  # refused before any run directory is made


def _commands():
    from exprbench.cli import cli_command

    def walk(cmd, path):
        yield path
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(cli_command(), []))


def test_version_and_h_on_every_command(capsys):
    from exprbench import __version__

    paths = _commands()
    assert ["train"] in paths and ["config", "show"] in paths and ["evaluator", "train"] in paths
    for path in paths:
        code, out, err = run([*path, "--version"], capsys)
        assert code == 0 and out.strip() == f"exprbench {__version__}", (path, err)
        code, out, err = run([*path, "-h"], capsys)
        assert code == 0 and "Usage" in out, (path, err)


@pytest.mark.parametrize("argv", [["--help"], ["models"], ["train", "-h"]])
def test_closed_stdout_pipe_ends_quietly(argv):
    """`exprbench -h | head`: the reader closing the pipe ends the command without a traceback or an
    error line (exit 141 = 128 + SIGPIPE from our handler, or 1 where rich's console ends it itself)."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    try:
        proc = subprocess.run([sys.executable, "-m", "exprbench", *argv], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode in (1, 141) and proc.stderr == "", proc.stderr[-2000:]


def test_train_help_shows_default_budget_and_seed(capsys):
    code, out, _ = run(["train", "--help"], capsys)
    text = " ".join(out.replace("│", " ").split())
    assert code == 0 and "20,000" in text and "train.seed, 0" in text and "config show" in text


def test_train_help_budget_is_true():
    """What `train --help` says: every `default` config trains 20,000 steps (InterFaceGAN: 1) with seed 0."""
    from exprbench.runs.config import resolve_config
    from exprbench.models import MODELS

    for model in MODELS.names():
        cfg = resolve_config(model)
        assert cfg.train.steps == (1 if model == "interfacegan" else 20000) and cfg.train.seed == 0, model


def test_config_show_prints_the_resolved_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["config", "show", "cgan", "--config", "reference", "--set", "model.z_dim=64"], capsys)
    assert code == 0, err
    cfg = json.loads(out)
    assert cfg["model"] == "cgan" and cfg["config_name"] == "reference" and cfg["model_cfg"]["z_dim"] == 64
    assert cfg["train"]["steps"] == 22430 and cfg["train"]["seed"] == 0
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written
    code, _, err = run(["config", "show", "cgan", "--config", "best"], capsys)
    assert code == 2 and "has no config 'best'" in err


def test_every_device_option_defaults_to_auto():
    from exprbench.cli import cli_command

    def walk(cmd):
        yield cmd
        for sub in getattr(cmd, "commands", {}).values():
            yield from walk(sub)

    seen = []
    for cmd in walk(cli_command()):
        for p in cmd.params:
            if p.name == "device":
                seen.append(cmd.name)
                # None: the command takes the config's / suite's device, itself `auto` by default
                assert p.default in ("auto", None), (cmd.name, p.default)
    assert {"train", "sample", "encode", "translate", "edit", "evaluate"} <= set(seen)


def test_listing_models_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from exprbench.cli import main; rc = main(['models']); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "cgan" in proc.stdout and "likelihood" in proc.stdout


def test_static_model_listing_matches_the_classes():
    from exprbench.models import MODELS, plugin_info

    static = {name: plugin_info(name) for name in MODELS.names()}
    for name in MODELS.names():
        MODELS.get(name)  # imports the plugin
        assert static[name] == plugin_info(name), name


def test_make_train_reads_data_fer2013_in_the_repo(tmp_path):
    import shutil
    import subprocess

    from ..conftest import REPO

    if shutil.which("make") is None:
        pytest.skip("no make")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    env = {k: v for k, v in __import__("os").environ.items() if k != "EXPRBENCH_DATA"}

    def train_line():
        out = subprocess.run(["make", "-n", "train"], cwd=tmp_path, env=env, capture_output=True, text=True).stdout
        return [ln for ln in out.splitlines() if "exprbench train" in ln][-1]

    assert "--data ../shared/data/fer2013.zip" in train_line()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fer2013.zip").write_bytes(b"")
    assert "--data data/fer2013.zip" in train_line()
    env["EXPRBENCH_DATA"] = "/elsewhere/fer2013.csv"
    assert "--data /elsewhere/fer2013.csv" in train_line()


# -- output paths, images, Ctrl-C ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bigan_run(tmp_path_factory):
    """A 1-step BiGAN run (sample + encode) on a tiny CSV."""
    root = tmp_path_factory.mktemp("bigan")
    data = write_csv(root / "fer2013.csv", per_class=4)
    assert main(["train", "bigan", "--data", str(data), "--out", str(root / "run"), "--steps", "1", *TINY,
                 "--set", "train.sample_every=0"]) == 0
    return root / "run"


def test_sample_out_naming_a_folder(bigan_run, tmp_path, capsys):
    code, _, err = run(["sample", str(bigan_run), "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a folder, expected a file name" in err and len(err.strip().splitlines()) == 1


def test_unwritable_out_refused_before_work(bigan_run, tmp_path, capsys, monkeypatch):
    from exprbench.core import io as xio

    ro = tmp_path / "ro"
    ro.mkdir()
    real = xio._can_create_in
    monkeypatch.setattr(xio, "_can_create_in", lambda folder: False if folder == ro else real(folder))
    code, _, err = run(["sample", str(bigan_run), "--out", str(ro / "s.png")], capsys)
    assert code == 2 and "permission denied or read-only" in err and len(err.strip().splitlines()) == 1
    data = write_csv(tmp_path / "fer2013.csv")
    code, _, err = run(["train", "gan", "--data", str(data), "--out", str(ro / "run"), "--steps", "1", *TINY], capsys)
    assert code == 2 and f"--out {ro / 'run'}: cannot write there" in err and len(err.strip().splitlines()) == 1
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_real_permissions(bigan_run, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run(["sample", str(bigan_run), "--out", str(ro / "s.png")], capsys)
        assert code == 2 and "permission denied or read-only" in err
    finally:
        ro.chmod(0o700)


def test_permission_error_anywhere_is_one_line_exit_2(capsys, monkeypatch):
    import exprbench.cli as cli

    def boom():
        raise PermissionError(13, "Permission denied", "/srv/shared/x.json")

    monkeypatch.setattr(cli.console, "print", lambda *a, **k: boom())
    code, _, err = run(["models"], capsys)
    assert code == 2 and err.strip() == "error: /srv/shared/x.json: Permission denied"


@pytest.mark.parametrize("w, h, message", [
    (15000, 15000, "cannot read the image (Image size (225000000 pixels) exceeds limit"),  # PIL's bomb guard
    (15000, 1, "image is 15000x1, the model takes 48x48"),
])
def test_encode_huge_image_refused_without_decoding(bigan_run, tmp_path, capsys, w, h, message):
    import struct
    import zlib

    from PIL import Image

    p = tmp_path / "huge.png"  # a PNG header of w x h with no pixel data: decoding it would fail loudly
    Image.new("L", (1, 1)).save(p)
    raw = bytearray(p.read_bytes())
    ihdr = struct.pack(">II", w, h) + bytes(raw[24:29])  # width, height; then depth, color, ...
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    p.write_bytes(bytes(raw))
    code, _, err = run(["encode", str(bigan_run), "--image", str(p), "--out", str(tmp_path / "z.pt")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{p}: {message}" in err
    assert not (tmp_path / "z.pt").exists()


def test_ctrl_c_during_train_saves_and_says_where(tmp_path, capsys, monkeypatch):
    import os
    import signal

    from exprbench.models.gan import GAN

    real_step = GAN.training_step

    def step_fn(self, batch, step):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C during the second step
        return real_step(self, batch, step)

    monkeypatch.setattr(GAN, "training_step", step_fn)
    data = write_csv(tmp_path / "fer2013.csv", per_class=4)
    code, _, err = run(["train", "gan", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "50", *TINY], capsys)
    ckpt = tmp_path / "r" / "checkpoints" / "step_000002.pt"
    assert code == 130 and ckpt.exists()
    assert err.strip() == f"interrupted at step 2: checkpoint saved: {ckpt} (continue with --resume)"
    assert json.loads((tmp_path / "r" / "status.json").read_text())["status"] == "interrupted"


def test_data_info_bad_crc_names_the_entry(tmp_path, capsys):
    from ..data.test_fer2013 import _zip_with_bad_crc

    p = tmp_path / "fer2013.zip"
    victim = _zip_with_bad_crc(p)
    code, _, err = run(["data", "info", "--data", str(p)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"fer2013.zip:{victim}: corrupt zip entry (Bad CRC-32" in err


def test_unwritable_cache_one_line_exit_2(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("EXPRBENCH_CACHE", str(blocker / "cache"))
    data = write_csv(tmp_path / "fer2013.csv")
    for argv in (["data", "info", "--data", str(data)],
                 ["train", "gan", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "1", *TINY]):
        code, _, err = run(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "set EXPRBENCH_CACHE to a writable folder" in err


def test_a_second_train_of_a_run_in_training_is_refused(tmp_path):
    """`train --resume` takes the run's claim (as `bench` does): a second one gets one line and exit 2, and the
    first finishes its budget untouched."""
    import subprocess
    import time

    csv = write_csv(tmp_path / "fer2013.csv", per_class=4)
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "exprbench", "train", "gan", "--data", str(csv), "--out", str(run_dir),
            "--set", "model.ch=4", "--set", "train.batch_size=4", "--set", "train.sample_every=0", "--resume"]
    first = subprocess.Popen([*argv, "--steps", "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run_dir / "config.json").exists() and time.time() < deadline:
            time.sleep(0.2)
        second = subprocess.run([*argv, "--steps", "10"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        err = [x for x in second.stderr.splitlines() if x.strip()]
        assert len(err) == 1 and f"is being trained by PID {first.pid}" in err[0], err
        assert first.wait(timeout=300) == 0, first.stderr
    finally:
        first.kill()
    assert json.loads((run_dir / "status.json").read_text())["step"] == 400
    assert not (run_dir / "claim.lock").exists()


def test_a_failed_start_leaves_no_run_that_blocks_a_retry(tmp_path, capsys):
    """Bad --data: one line, exit 2, and no config.json, so the same command with good data just runs."""
    out = tmp_path / "run"
    argv = ["train", "gan", "--out", str(out), "--steps", "1", "--set", "model.ch=4", "--set", "train.batch_size=4",
            "--set", "train.sample_every=0"]
    code, _, err = run([*argv, "--data", str(tmp_path / "missing.zip")], capsys)
    assert code == 2 and "dataset not found" in err and not (out / "config.json").exists()
    code, outp, err = run([*argv, "--data", str(write_csv(tmp_path / "fer2013.csv"))], capsys)
    assert code == 0, err
    assert "(resume" not in outp  # a fresh run is not announced as resumed


def test_bench_help_lists_every_shipped_suite(capsys):
    from pathlib import Path

    code, out, _ = run(["bench", "--help"], capsys)
    shipped = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "benchmarks" / "suites").glob("*.toml"))
    assert code == 0 and all(name in out for name in shipped) and len(shipped) >= 5


def test_help_at_80_columns_keeps_option_names_whole_and_flags_without_metavar(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(["evaluate", "--help"], capsys)
    assert code == 0 and "--inception-weights" in out and "--evaluator-weights" in out and "<bool>" not in out
    assert "--strict " in out and max(len(x) for x in out.splitlines()) <= 80


def test_piped_tables_keep_protocol_names_whole(capsys):
    code, out, _ = run(["metrics"], capsys)
    assert code == 0 and "translate_acc_lowpass_test" in out and "fid10k_train_inception" in out
