"""Tests of metrics/cli.py: exit codes and output of evaluate / evaluator info / metrics."""

from __future__ import annotations

import json

import pytest

from exprbench.cli import main
from exprbench.data import load_fer2013
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator

DATA = real_data_path()


@pytest.mark.parametrize("argv", [
    ["evaluate", "/nonexistent/run"],
    ["evaluate", "/nonexistent/run", "--n-samples", "0"],
    ["evaluator", "info", "--weights", "/nonexistent/ev.pt"],
    ["evaluator", "train", "--epochs", "0"],
])
def test_bad_input_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err


def test_unknown_metric_exits_2(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert main(["evaluate", str(tmp_path), "--metrics", "fid_bogus"]) == 2
    assert "unknown metric protocol" in capsys.readouterr().err


def test_metrics_list(capsys):
    assert main(["metrics"]) == 0
    assert "fid10k_train" in capsys.readouterr().out


@pytest.mark.skipif(DATA is None, reason="FER2013 not found")
def test_evaluator_info(tmp_path, capsys):
    ev = tiny_evaluator(subset(load_fer2013(DATA), {"train": 10, "val": 5, "test": 5}), tmp_path / "ev.pt", epochs=1)
    assert main(["evaluator", "info", "--weights", str(ev)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    ev.write_bytes(ev.read_bytes() + b"0")
    assert main(["evaluator", "info", "--weights", str(ev)]) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and len(err.strip().splitlines()) == 1


# -- issue 13: evaluate --checkpoint, --images, progress lines ---------------------------------------

@pytest.fixture(scope="module")
def cli_world(tmp_path_factory):
    """A synthetic FER2013-format CSV (10 images per emotion and split), a tiny evaluator, a 2-step cGAN
    run and 60 PNGs of its test images (no real data needed: these tests check the plumbing)."""
    import numpy as np
    import torch
    from PIL import Image

    from exprbench.metrics.testing import tiny_run

    from ..conftest import write_csv

    root = tmp_path_factory.mktemp("cli13")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    csv = write_csv(root / "fer2013.csv", per_class=10)
    ds = load_fer2013(csv)
    ev = tiny_evaluator(ds, root / "ev.pt", epochs=1)
    run = tiny_run(csv, root / "cgan", "cgan", dataset=ds)
    pngs = root / "pngs"
    pngs.mkdir()
    test = ds.split("test")
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:60]  # every emotion among them
    for i, j in enumerate(idx.tolist()):
        Image.fromarray(test.images[j, 0].numpy()).save(pngs / f"{i:03d}.png")
    (root / "labels.txt").write_text("\n".join(ds.class_names[int(k)] for k in test.labels[idx]) + "\n")
    np.savez(root / "float.npz", images=np.zeros((60, 48, 48), np.float32))
    yield {"root": root, "csv": csv, "ev": ev, "run": run, "pngs": pngs, "n_train": len(ds.split("train"))}
    mp.undo()


def _common(w):
    return ["--evaluator-weights", str(w["ev"]), "--device", "cpu"]


def test_cli_evaluate_prints_progress_lines(cli_world, capsys, monkeypatch):
    monkeypatch.setenv("EXPRBENCH_CACHE", str(cli_world["root"] / "cache"))
    assert main(["evaluate", str(cli_world["run"]), "--metrics", "fid60_train,acc_gen70", *_common(cli_world)]) == 0
    cap = capsys.readouterr()
    err = cap.err.splitlines()
    assert err[0].startswith(f"evaluating {cli_world['run']} (checkpoint step 2): 2 protocols")
    assert f"[1/2] fid60_train: train features, one-time, {cli_world['n_train']} images" in err
    assert any(line.startswith("[1/2] fid60_train: ") and "s); real data" in line for line in err)
    assert "━" not in cap.err  # not a terminal: no progress bars
    assert "fid60_train" in cap.out and "wrote" in cap.out
    # a re-run of one protocol keeps the other and says so
    assert main(["evaluate", str(cli_world["run"]), "--metrics", "fid60_train", *_common(cli_world)]) == 0
    out = capsys.readouterr().out
    assert "eval.json also keeps 1 earlier result: acc_gen70" in out


def test_cli_checkpoint_errors(cli_world, capsys):
    assert main(["evaluate", str(cli_world["run"]), "--checkpoint", "5", *_common(cli_world)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --checkpoint 5: {cli_world['run']} has no checkpoint at step 5 (available steps: 2)"
    assert main(["evaluate", "--images", str(cli_world["pngs"]), "--checkpoint", "2"]) == 2
    assert "--checkpoint goes with a run directory" in capsys.readouterr().err


def test_cli_score_png_folder(cli_world, capsys, monkeypatch):
    monkeypatch.setenv("EXPRBENCH_CACHE", str(cli_world["root"] / "cache"))
    out = cli_world["root"] / "scored"
    argv = ["evaluate", "--images", str(cli_world["pngs"]), "--labels", str(cli_world["root"] / "labels.txt"),
            "--metrics", "fid60_train,acc_gen7,enc_acc_test", "--data", str(cli_world["csv"]), "--out", str(out),
            "--name", "outside-model", *_common(cli_world)]
    monkeypatch.setattr("sys.argv", ["exprbench", *argv])  # as the console script sees it
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "60 images from" in cap.err and "[3/3] enc_acc_test: skipped (needs a model" in cap.err
    assert f"wrote {out / 'eval.json'} and source.json" in cap.out
    ev = json.loads((out / "eval.json").read_text())
    src = json.loads((out / "source.json").read_text())
    assert ev["source"]["kind"] == src["kind"] == "images" and src["name"] == "outside-model"
    assert ev["run"]["model"] == "outside-model" and ev["metrics"]["acc_gen7"]["status"] == "ok"
    assert src["command"].startswith("exprbench evaluate --images")


@pytest.mark.parametrize("args, match", [
    (["--images", "{root}/float.npz"], "float.npz: images have dtype float32; expected uint8"),
    (["--images", "{root}/pngs", "--labels", "{root}/short.txt"], "short.txt: 2 labels for 60 images in"),
    (["--images", "{root}/pngs", "--labels", "{root}/typo.txt"], "typo.txt:1: unknown emotion 'hapy'"),
    (["--images", "{root}/pngs", "{root}/cgan"], "not both"),
    (["--labels", "{root}/typo.txt", "{root}/cgan"], "--labels goes with --images"),
    (["--images", "{root}/pngs", "--out", "{root}/cgan"], "a training run directory"),
    ([], "needs a run directory, or --images"),
])
def test_cli_images_bad_input_one_line_exit_2(cli_world, capsys, args, match):
    root = cli_world["root"]
    (root / "short.txt").write_text("happy\nsad\n")
    (root / "typo.txt").write_text("hapy\n" * 60)
    argv = ["evaluate", *[a.format(root=root) for a in args], "--data", str(cli_world["csv"]), *_common(cli_world)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err


def test_cli_per_class_protocols_on_unlabelled_images_or_a_missing_emotion_say_why(cli_world, capsys, monkeypatch):
    """A per-emotion protocol named for unlabelled images, or the transplant protocol for labelled images where an
    emotion has none, is refused in one line, exit 2 (they raised a TypeError and an IndexError)."""
    monkeypatch.setenv("EXPRBENCH_CACHE", str(cli_world["root"] / "cache"))
    out = cli_world["root"] / "unlabelled"
    for name in ("acc_gen70", "transplant14"):
        assert main(["evaluate", "--images", str(cli_world["pngs"]), "--metrics", name,
                     "--data", str(cli_world["csv"]), "--out", str(out), *_common(cli_world)]) == 2
        assert capsys.readouterr().err.strip() == f"error: {name}: needs labels: pass --labels FILE (a class index " \
                                                  "or emotion name per image)"
    labels = (cli_world["root"] / "labels.txt").read_text().split()
    (cli_world["root"] / "no_disgust.txt").write_text("\n".join("happy" if x == "disgust" else x for x in labels) + "\n")
    assert main(["evaluate", "--images", str(cli_world["pngs"]), "--labels", str(cli_world["root"] / "no_disgust.txt"),
                 "--metrics", "transplant14", "--data", str(cli_world["csv"]), "--out", str(out),
                 *_common(cli_world)]) == 2
    assert "error: transplant14: needs 2 images per emotion, 'disgust' has 0" in capsys.readouterr().err
