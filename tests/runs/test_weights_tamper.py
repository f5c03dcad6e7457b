"""Published weights trust nothing they say about themselves (issue 33, finding 1): the signature covers the
metadata and the tensors, a MANIFEST.sha256 that lists the file is checked, the spec is bounded and must agree
with config.json, all before a model is built. Every refusal is one line and exit 2."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import pytest

from exprbench.benchmarks.faults.tamper import as_old_format, edit_weights, first_tensor
from exprbench.cli import main
from exprbench.runs.config import resolve_config
from exprbench.core.errors import CheckpointError
from exprbench.runs.harness import Trainer
from exprbench.runs.loader import load_trained
from exprbench.runs.weights import FILENAME, export_weights, read_weights

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def published(tmp_path, tiny_dataset):
    """A tiny cGAN run published as results/runs/<point>/ (weights, config.json) with no checkpoints."""
    cfg = resolve_config("cgan", "default", ["model.ch=4", "train.batch_size=7", "train.steps=2",
                                             "train.sample_every=0", "train.samples_per_class=1"])
    Trainer(cfg, tmp_path / "run", dataset=tiny_dataset, progress=False).run()
    _, model, spec, step = load_trained(tmp_path / "run")
    pub = tmp_path / "results" / "runs" / "cgan-default-s0"
    pub.mkdir(parents=True)
    shutil.copy(tmp_path / "run" / "config.json", pub / "config.json")
    export_weights(model, dataclasses.asdict(spec), step, pub / FILENAME)
    return pub


def refused(run, capsys, monkeypatch, *match: str) -> str:
    """`exprbench sample RUN` ends in one line and exit 2, naming ``match``, and builds no model."""
    import exprbench.runs.loader

    def no_build(*a, **k):
        raise AssertionError("a model was built from unverified weights")

    with monkeypatch.context() as mp:
        mp.setattr(exprbench.runs.loader, "build_model", no_build)
        code = main(["sample", str(run), "--n", "1", "--out", str(run / "s.png")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for m in match:
        assert m in err, err
    assert not (run / "s.png").exists()
    return err


def big_spec(meta):
    meta["spec"].update(height=4800, width=4800)


def test_an_edited_spec_or_step_fails_the_signature(published, capsys, monkeypatch):
    w = published / FILENAME
    edit_weights(w, big_spec)  # tensors_sha256 still matches: only the signature sees it
    refused(published, capsys, monkeypatch, "metadata or tensors do not match the sha256", "publish it again")
    edit_weights(w, lambda m: m.update(step=999))
    refused(published, capsys, monkeypatch, "do not match the sha256")


def test_a_resigned_spec_is_bounded_and_checked_against_the_config(published, capsys, monkeypatch):
    w = published / FILENAME
    edit_weights(w, big_spec, resign=True)
    refused(published, capsys, monkeypatch, "height=4800: expected an integer in 1..1024")
    for bad in ("oops", {"channels": 1}, {"channels": "1", "height": 48, "width": 48, "class_names": [], "label_set": 3}):
        edit_weights(w, lambda m: m.update(spec=bad), resign=True)
        refused(published, capsys, monkeypatch, "spec")
    edit_weights(w, lambda m: m.update(spec={"channels": 3, "height": 64, "width": 64, "label_set": "fer7",
                                             "class_names": ["a", "b"]}), resign=True)
    refused(published, capsys, monkeypatch, "spec 3x64x64 but fer7 images are 1x48x48")
    edit_weights(w, lambda m: m.update(step="many"), resign=True)
    refused(published, capsys, monkeypatch, "step='many'")


def test_a_manifest_that_lists_the_file_is_checked(published, capsys, monkeypatch):
    w = published / FILENAME
    manifest = published.parent.parent / "MANIFEST.sha256"
    good = hashlib.sha256(w.read_bytes()).hexdigest()
    manifest.write_text(f"{good}  runs/{published.name}/{FILENAME}\n")
    assert load_trained(published)[3] == 2
    edit_weights(w, zero=first_tensor(w), resign=True)  # a zeroed tensor, every hash inside recomputed
    now = hashlib.sha256(w.read_bytes()).hexdigest()
    refused(published, capsys, monkeypatch, f"sha256 {now} does not match {good} listed in {manifest}")


def test_the_old_format_loads_only_when_a_manifest_vouches_for_it(published, capsys, monkeypatch):
    w = published / FILENAME
    as_old_format(w)
    refused(published, capsys, monkeypatch, "exprbench-weights/1", "publish it again")
    (published / "MANIFEST.sha256").write_text(f"{hashlib.sha256(w.read_bytes()).hexdigest()}  {FILENAME}\n")
    assert load_trained(published)[3] == 2


def test_the_committed_weights_still_verify(tmp_path):
    files = sorted((REPO / "results").glob("*/runs/*/weights.safetensors"))
    if not files:
        pytest.skip("no committed weights in this checkout")
    for f in files:
        read_weights(f)  # old format, vouched for by results/<suite>/MANIFEST.sha256
    alone = tmp_path / "flow" / FILENAME  # the same file away from its manifest cannot be verified
    alone.parent.mkdir()
    shutil.copy(files[0], alone)
    with pytest.raises(CheckpointError, match="MANIFEST.sha256 lists it"):
        read_weights(alone)
