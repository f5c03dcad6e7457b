"""exprbench.cli_capabilities: ``exprbench translate`` / ``exprbench encode``, outputs and exit codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from exprbench.cli import main

from ..conftest import write_csv

TINY = ["--set", "model.ch=8", "--set", "train.batch_size=8", "--set", "train.log_every=1",
        "--set", "train.samples_per_class=1", "--set", "train.sample_every=0"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs (1 step) of bicogan, ccyclegan, bigan, gan, flow and an InterFaceGAN on the gan, on a tiny
    CSV, plus face images."""
    root = tmp_path_factory.mktemp("capruns")
    data = write_csv(root / "fer2013.csv", per_class=4)
    out = {"data": data}
    for model in ("bicogan", "ccyclegan", "bigan", "gan", "flow"):
        assert main(["train", model, "--data", str(data), "--out", str(root / model), "--steps", "1", *TINY]) == 0
        out[model] = root / model
    assert main(["train", "interfacegan", "--data", str(data), "--out", str(root / "interfacegan"),
                 "--set", f"model.base_run={root / 'gan'}", "--set", "model.n_latents=300", "--set", "model.ratio=0.1",
                 "--set", "train.samples_per_class=1"]) == 0
    out["interfacegan"] = root / "interfacegan"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(root / "face.png")
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / "face_rgb.png")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(root / "small.png")
    (root / "not_an_image.png").write_text("hello")
    out["root"] = root
    return out


def test_translate_image_and_index(runs, tmp_path, capsys):
    png = tmp_path / "t.png"
    code, out, err = run(["translate", runs["bicogan"], "--image", runs["root"] / "face.png", "--to", "happy",
                          "--out", png], capsys)
    assert code == 0, err
    assert "target happy" in out and "source emotion unknown" in out
    with Image.open(png) as im:
        assert im.size == (2 * 50 + 2, 50 + 2)  # source | translation
    code, out, err = run(["translate", runs["ccyclegan"], "--index", 2, "--to", "Sad", "--data", runs["data"],
                          "--out", tmp_path / "i.png"], capsys)
    assert code == 0, err
    assert "target sad" in out


def test_translate_grid(runs, tmp_path, capsys):
    png = tmp_path / "grid.png"
    code, out, err = run(["translate", runs["ccyclegan"], "--grid", 3, "--data", runs["data"], "--out", png], capsys)
    assert code == 0, err
    with Image.open(png) as im:
        assert im.height == 8 * 50 + 2  # a source row and one row per emotion
    code, _, err = run(["translate", runs["bicogan"], "--grid", 2, "--data", runs["data"], "--split", "val",
                        "--out", tmp_path / "g2.png"], capsys)
    assert code == 0, err


def test_encode_prints_emotion_and_writes_z(runs, tmp_path, capsys):
    zf = tmp_path / "z.pt"
    code, out, err = run(["encode", runs["bicogan"], "--image", runs["root"] / "face.png", "--out", zf], capsys)
    assert code == 0, err
    assert "predicted emotion:" in out
    rec = torch.load(zf, weights_only=True)
    assert rec["z"].shape == (128,) and rec["c_logits"].shape == (7,) and rec["class_names"][3] == "happy"
    code, out, err = run(["encode", runs["bigan"], "--image", runs["root"] / "face.png", "--out", tmp_path / "b.pt"],
                         capsys)
    assert code == 0, err
    assert "predicted emotion" not in out and torch.load(tmp_path / "b.pt", weights_only=True)["z"].shape == (128,)


@pytest.mark.parametrize("argv, message", [
    (["translate", "@bicogan", "--image", "@small.png", "--to", "happy"], "image is 32x32, the model takes 48x48"),
    (["translate", "@bicogan", "--image", "@face_rgb.png", "--to", "happy"], None),  # RGB is converted to gray
    (["translate", "@bicogan", "--image", "@face.png", "--to", "bored"], "unknown emotion 'bored'"),
    (["translate", "@bicogan", "--image", "@missing.png", "--to", "happy"], "image not found"),
    (["translate", "@bicogan", "--image", "@not_an_image.png", "--to", "happy"], "cannot read the image"),
    (["translate", "@bicogan", "--image", "@face.png", "--index", "1", "--to", "happy"], "exactly one of --image"),
    (["translate", "@bicogan", "--image", "@face.png"], "--to EMOTION is required"),
    (["translate", "@bicogan", "--index", "999", "--to", "happy", "--data", "@data"], "outside the test split"),
    (["translate", "@gan", "--image", "@face.png", "--to", "happy"], "'gan' of"),
    (["translate", "@bigan", "--image", "@face.png", "--to", "happy"], "cannot translate"),
    (["encode", "@ccyclegan", "--image", "@face.png"], "cannot encode"),
    (["encode", "@bicogan", "--image", "@small.png"], "image is 32x32"),
    (["encode", "@bicogan", "--image", "@missing.png"], "image not found"),
    (["encode", "/nonexistent-run", "--image", "@face.png"], "not a run directory"),
])
def test_bad_inputs_exit_2_with_one_line(runs, argv, message, tmp_path, capsys):
    def sub(a):
        if a.startswith("@"):
            key = a[1:]
            return str(runs[key]) if key in runs else str(runs["root"] / key)
        return a

    argv = [sub(a) for a in argv]
    if argv[0] == "translate":
        argv += ["--out", str(tmp_path / "o.png")]
    else:
        argv += ["--out", str(tmp_path / "z.pt")]
    code, _, err = run(argv, capsys)
    if message is None:
        assert code == 0, err
        return
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1


def test_edit_strip_rows_by_strengths(runs, capsys, tmp_path):
    code, out, _ = run(["edit", runs["interfacegan"], "--to", "happy", "--rows", "3", "--strength", "-2:2:5",
                        "--out", tmp_path / "strip.png"], capsys)
    assert code == 0 and "3 rows x 5 strengths (signed distance) toward happy" in out
    with Image.open(tmp_path / "strip.png") as im:
        # 5 columns of 48 px + padding, a left margin for row labels, a top margin for the strengths
        assert im.height == 3 * 50 + 2 + 14 and im.width > 5 * 50 + 2
    code, out, _ = run(["edit", runs["interfacegan"], "--to", "surprise", "--keep", "happy", "--seed", "7",
                        "--strength", "0,3"], capsys)
    assert code == 0 and (runs["interfacegan"] / "edits" / "surprise_s7_keep_happy.png").exists()
    code, out, _ = run(["edit", runs["interfacegan"], "--to", "happy", "--from", "neutral", "--strength", "0:3:4"], capsys)
    assert code == 0 and (runs["interfacegan"] / "edits" / "happy_from_neutral_s0.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--to", "joy"], "unknown emotion 'joy'"),
    (["--to", "happy", "--strength", "3:1"], "--strength '3:1': expected START:STOP:COUNT"),
    (["--to", "happy", "--keep", "happy"], "--keep 'happy' is the --to emotion"),
    (["--to", "happy", "--image", "FACE"], "cannot edit a given image (no encoder)"),
    (["--to", "happy", "--from", "sad", "--image", "FACE"], "--from moves sampled latents"),
])
def test_edit_bad_input_exit_2(runs, capsys, argv, message):
    argv = [str(runs["root"] / "face.png") if a == "FACE" else a for a in argv]
    code, _, err = run(["edit", runs["interfacegan"], *argv], capsys)
    assert code == 2 and message in err


def test_edit_needs_the_capability(runs, capsys):
    code, _, err = run(["edit", runs["bicogan"], "--to", "happy"], capsys)
    assert code == 2 and "cannot edit" in err


def test_evaluate_prints_the_edit_protocol(runs, capsys):
    code, out, err = run(["evaluate", runs["interfacegan"], "--metrics", "edit_success14"], capsys)
    assert code == 0, err
    assert "edit_success14" in out and "at strength 3: identity L1" in out and "entanglement" in out


def test_edit_a_given_face_with_attribute_vectors(runs, capsys, tmp_path):
    """The flow edits a real image: its attribute vectors come from the run's data (the tiny CSV)."""
    code, out, err = run(["edit", runs["flow"], "--to", "surprise", "--image", runs["root"] / "face.png",
                          "--strength", "0:1:3", "--out", tmp_path / "face_edit.png"], capsys)
    assert code == 0, err
    assert "1 rows x 3 strengths (attribute-vector multiple) toward surprise" in out
    with Image.open(tmp_path / "face_edit.png") as im:
        assert im.height == 50 + 2 + 14
