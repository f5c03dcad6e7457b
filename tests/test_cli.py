"""exprbench.cli: commands, output, and exit codes (0 ok, 2 bad input or usage, 1 other failure)."""

from __future__ import annotations

import json

import pytest

from exprbench.cli import main

from .conftest import write_csv

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
