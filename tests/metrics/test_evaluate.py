"""Tests of metrics/run/evaluate.py: evaluate_run on tiny runs writes a complete eval.json."""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.data import load_fer2013
from exprbench.core.errors import DataError, RegistryError, UserError
from exprbench.metrics.run.evaluate import evaluate_run
from exprbench.metrics.run.run_checks import resolve_eval_data_path
from exprbench.metrics.testing import real_data_path, subset, tiny_evaluator, tiny_run, write_fer_csv

DATA = real_data_path()
pytestmark = pytest.mark.skipif(DATA is None, reason="FER2013 not found ($EXPRBENCH_DATA or ../shared/data/fer2013.zip)")
ENTRY_KEYS = {"value", "status", "n_samples", "seed", "extractor", "extractor_sha256", "wall_s"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small FER2013 CSV, a tiny evaluator, a tiny cGAN run and a tiny unconditional GAN run."""
    root = tmp_path_factory.mktemp("eval")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    mp.setattr(torch.hub, "get_dir", lambda: str(root / "hub"))  # no Inception weights: "unavailable"
    small = subset(load_fer2013(DATA), {"train": 30, "val": 10, "test": 20})
    csv = write_fer_csv(small, root / "fer2013.csv")
    ds = load_fer2013(csv)
    ev = tiny_evaluator(ds, root / "ev.pt")
    runs = {m: tiny_run(csv, root / m, m, dataset=ds) for m in ("cgan", "gan")}
    yield {"root": root, "csv": csv, "ev": ev, "runs": runs, "ds": ds}
    mp.undo()


def test_evaluate_cgan_run(world):
    run = world["runs"]["cgan"]
    res = evaluate_run(run, n_samples=140, device="cpu", evaluator_weights=world["ev"])
    on_disk = json.loads((run / "eval.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    m, fl = res["metrics"], res["references"]
    for name in ("fid140_train", "kid140_train", "pr140_train", "ifid140_train", "acc_gen140", "cas140"):
        assert m[name]["status"] == "ok", (name, m[name])
        assert ENTRY_KEYS <= set(m[name]) and isinstance(m[name]["value"], float)
        assert fl[name]["status"] == "ok" and isinstance(fl[name]["value"], float)
    assert m["fid140_train"]["extractor_sha256"] == res["evaluator"]["sha256"]
    assert m["kid140_train"]["details"]["kid_subset_size"] == 140 and "std" in m["kid140_train"]
    assert set(m["pr140_train"]["details"]) >= {"precision", "recall", "f_score"}
    assert len(m["ifid140_train"]["details"]["per_class"]) == 7
    assert len(m["acc_gen140"]["details"]["confusion_matrix"]) == 7
    assert "ratio_to_real" in m["cas140"]["details"]
    # the accuracy reference is the evaluator's class-balanced accuracy on real test images; plain = its card
    ref = fl["acc_gen140"]
    assert ref["details"]["accuracy"] == res["evaluator"]["test_accuracy"]
    assert ref["value"] == ref["details"]["balanced_acc"]
    per = [v for v in ref["details"]["per_class"].values() if v is not None]
    assert ref["value"] == pytest.approx(sum(per) / len(per))
    inc = m["fid140_train_inception"]
    assert inc["status"] == "unavailable" and inc["value"] is None and "inception" in inc["reason"].lower()
    assert res["run"]["model"] == "cgan" and res["run"]["step"] == 2
    assert res["protocol_version"] and "torch" in res["versions"] and res["wall_s"] > 0
    # generated-set features are not left in the cache
    assert not list((world["root"] / "cache" / "fidelity").glob("exprbench-gen-*"))


def test_unconditional_run_skips_class_metrics(world):
    res = evaluate_run(world["runs"]["gan"], metrics=["fid70_train", "ifid_train", "acc_gen"], device="cpu",
                       evaluator_weights=world["ev"])
    m = res["metrics"]
    assert m["fid70_train"]["status"] == "ok" and m["fid70_train"]["n_samples"] == 70
    for name in ("ifid_train", "acc_gen"):
        assert m[name]["status"] == "skipped" and "conditional" in m[name]["reason"] and m[name]["value"] is None


def test_same_seed_same_numbers(world):
    a = evaluate_run(world["runs"]["cgan"], metrics=["fid70_train"], device="cpu", evaluator_weights=world["ev"])
    b = evaluate_run(world["runs"]["cgan"], metrics=["fid70_train"], device="cpu", evaluator_weights=world["ev"])
    assert a["metrics"]["fid70_train"]["value"] == b["metrics"]["fid70_train"]["value"]


def test_bad_inputs(world, tmp_path):
    run = world["runs"]["cgan"]
    with pytest.raises(UserError, match="not a run directory"):
        evaluate_run(tmp_path)
    with pytest.raises(RegistryError):
        evaluate_run(run, metrics=["fid_bogus"])
    with pytest.raises(UserError, match="positive"):
        evaluate_run(run, n_samples=0)
    with pytest.raises(UserError, match="per class"):
        evaluate_run(run, metrics=["acc_gen"], n_samples=3, evaluator_weights=world["ev"])
    with pytest.raises(DataError):
        evaluate_run(run, data=tmp_path / "missing.zip", evaluator_weights=world["ev"])
    with pytest.raises(UserError, match="no such file"):
        evaluate_run(run, inception_weights=tmp_path / "none.pth", evaluator_weights=world["ev"])


def test_data_path_resolution(tmp_path, monkeypatch):
    f = tmp_path / "d.zip"
    f.write_bytes(b"")
    monkeypatch.setenv("EXPRBENCH_DATA", str(f))
    assert resolve_eval_data_path(None, str(tmp_path / "gone.zip")) == str(f)
    assert resolve_eval_data_path(None, str(f)) == str(f)
    monkeypatch.delenv("EXPRBENCH_DATA")
    with pytest.raises(DataError, match="--data"):
        resolve_eval_data_path(None, str(tmp_path / "gone.zip"))



def test_references_cached_and_shared_between_runs(world, monkeypatch):
    """References do not depend on the model: evaluating a second run reads them from the reference cache."""
    import exprbench.metrics.run.references as refs
    from exprbench.metrics.families.fidelity_inputs import fidelity_cache_root

    metrics = ["fid70_train", "acc_gen70"]
    first = evaluate_run(world["runs"]["cgan"], metrics=metrics, device="cpu", evaluator_weights=world["ev"])
    floors_dir = fidelity_cache_root() / "floors"
    assert {p.name.split("-")[0] for p in floors_dir.glob("*.json")} >= set(metrics)
    real_roles = []
    refs_run = refs.run_protocol
    monkeypatch.setattr(refs, "run_protocol", lambda p, ctx, real: real_roles.append(real) or refs_run(p, ctx, real))
    second = evaluate_run(world["runs"]["gan"], metrics=metrics, device="cpu", evaluator_weights=world["ev"])
    assert True not in real_roles, "a reference was recomputed instead of read from the cache"
    assert second["references"]["fid70_train"] == first["references"]["fid70_train"]
    # acc_gen is skipped for the unconditional GAN: its reference is not even read
    assert second["references"]["acc_gen70"]["status"] == "skipped"


# -- issue 13: evaluation that talks, keeps what it has, picks a checkpoint, scores any images --------

def _two_checkpoint_run(world, name="cgan_ck"):
    """A tiny cGAN run with checkpoints at steps 1 and 2 (built once per module)."""
    from exprbench.runs.config import resolve_config
    from exprbench.runs.harness import Trainer

    out = world["root"] / name
    if not (out / "checkpoints").exists():
        cfg = resolve_config("cgan", "default", [
            "model.ch=4", "train.steps=2", "train.batch_size=8", "train.device=cpu", "train.sample_every=0",
            "train.ckpt_every=1", "train.keep_ckpts=3", "train.samples_per_class=1", "train.log_every=1",
            f"data.path={world['csv']}"])
        Trainer(cfg, out, dataset=world["ds"], progress=False).run()
    return out


def test_eval_json_merges_and_keeps_history(world):
    run = _two_checkpoint_run(world)
    first = evaluate_run(run, metrics=["fid70_train", "acc_gen70"], device="cpu", evaluator_weights=world["ev"])
    assert first["run"]["step"] == 2 and first["metrics"]["acc_gen70"]["step"] == 2
    assert first["metrics"]["acc_gen70"]["commit"] and first["metrics"]["acc_gen70"]["evaluated_at"]
    second = evaluate_run(run, metrics=["acc_gen70"], device="cpu", evaluator_weights=world["ev"], checkpoint="1")
    on_disk = json.loads((run / "eval.json").read_text())
    assert on_disk == json.loads(json.dumps(second))
    # the other protocol is kept untouched, the re-run one replaced with the old value in its history
    assert on_disk["metrics"]["fid70_train"] == json.loads(json.dumps(first["metrics"]["fid70_train"]))
    acc = on_disk["metrics"]["acc_gen70"]
    assert acc["step"] == 1 and on_disk["run"]["step"] == 1 and on_disk["run"]["checkpoint"].endswith("step_000001.pt")
    assert [h["step"] for h in acc["history"]] == [2]
    assert acc["history"][0]["value"] == first["metrics"]["acc_gen70"]["value"]
    assert {"evaluated_at", "commit", "status"} <= set(acc["history"][0])
    assert [e["protocols"] for e in on_disk["evaluations"]] == [["fid70_train", "acc_gen70"], ["acc_gen70"]]
    assert not list(run.glob(".eval.json.*.tmp"))  # written atomically, no temp file left


def test_checkpoint_that_does_not_exist(world):
    from exprbench.runs.loader import select_checkpoint

    run = _two_checkpoint_run(world)
    assert select_checkpoint(run, "latest").name == "step_000002.pt"
    assert select_checkpoint(run, 1).name == select_checkpoint(run, "step_000001").name == "step_000001.pt"
    with pytest.raises(UserError, match=r"no checkpoint at step 7 \(available steps: 1, 2\)"):
        evaluate_run(run, metrics=["fid70_train"], checkpoint="7", evaluator_weights=world["ev"])
    with pytest.raises(UserError, match="a step number or 'latest'"):
        evaluate_run(run, metrics=["fid70_train"], checkpoint="best", evaluator_weights=world["ev"])


def test_corrupt_eval_json_is_refused_and_kept(world, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(world["runs"]["gan"], run)
    (run / "eval.json").write_text('{"metrics": {')
    with pytest.raises(UserError, match="eval.json:1: not valid JSON"):
        evaluate_run(run, metrics=["fid70_train"], device="cpu", evaluator_weights=world["ev"])
    assert (run / "eval.json").read_text() == '{"metrics": {'


def test_skipped_protocols_compute_no_reference(world, monkeypatch):
    """For an unconditional GAN, class-aware and capability protocols compute nothing, not even references."""
    import exprbench.metrics.families.cas as cas
    import exprbench.metrics.families.classaware as ca
    import exprbench.metrics.run.references as refs

    calls = []
    for mod, fn in ((ca, "intra_class_fid"), (ca, "label_accuracy"), (cas, "cas_real_baseline"),
                    (cas, "classifier_accuracy_on_real"), (refs, "reference")):
        real = getattr(mod, fn)
        monkeypatch.setattr(mod, fn, lambda *a, _f=fn, _r=real, **k: calls.append(_f) or _r(*a, **k))
    res = evaluate_run(world["runs"]["gan"], metrics=["ifid70_train", "acc_gen70", "cas70", "enc_acc_test", "recon_test"],
                       device="cpu", evaluator_weights=world["ev"])
    assert calls == []
    for name in ("ifid70_train", "acc_gen70", "cas70", "enc_acc_test"):
        assert res["metrics"][name]["status"] == "skipped"
        assert res["references"][name]["status"] == "skipped" and "not computed" in res["references"][name]["reason"]
    assert res["references"]["recon_test"]["status"] == "unavailable"  # has no reference at all


class _Recorder:
    """An EvalReporter that records its calls."""

    def __init__(self):
        from exprbench.metrics.run.progress import EvalReporter

        self.calls = []
        base = EvalReporter()
        self.bar = base.bar
        for hook in ("begin", "protocol_start", "note", "protocol_end", "end"):
            setattr(self, hook, lambda *a, _h=hook: self.calls.append((_h, a)))


def test_progress_lines_and_one_time_references(world, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from exprbench.metrics.run.progress import ConsoleReporter

    monkeypatch.setenv("EXPRBENCH_CACHE", str(tmp_path / "cold"))  # nothing cached yet
    buf = io.StringIO()
    reporter = ConsoleReporter(Console(file=buf, width=300), bars=None)
    assert reporter.bars is False  # not a terminal: lines only
    evaluate_run(world["runs"]["gan"], metrics=["fid70_train", "acc_gen70"], device="cpu", evaluator_weights=world["ev"],
                 reporter=reporter)
    lines = buf.getvalue().splitlines()
    n_train = len(world["ds"].split("train"))
    assert lines[0].startswith("evaluating ") and "2 protocols" in lines[0]
    assert lines[1].startswith("[1/2] fid70_train: FID of 70 generated images")
    assert f"[1/2] fid70_train: train features, one-time, {n_train:,} images" in lines
    assert any(line.startswith("[1/2] fid70_train: ") and "s); real data " in line and line.endswith("(N=70)")
               for line in lines)
    assert lines[-1].startswith("[2/2] acc_gen70: skipped (model 'gan' lacks capability conditional")
    # a second time, the reference comes from the cache: no one-time line
    buf.truncate(0)
    buf.seek(0)
    rec = _Recorder()
    evaluate_run(world["runs"]["gan"], metrics=["fid70_train"], device="cpu", evaluator_weights=world["ev"], reporter=rec)
    kinds = [c[0] for c in rec.calls]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("protocol_start") == 1
    assert not any("reference" in c[1][3] for c in rec.calls if c[0] == "note")
    end = next(c for c in rec.calls if c[0] == "protocol_end")
    assert end[1][:3] == (1, 1, "fid70_train") and end[1][3]["status"] == "ok"


def test_progress_bars_on_a_terminal(world, tmp_path, monkeypatch):
    """On a terminal the reporter draws bars (generation, feature extraction) and the numbers do not change."""
    import io

    from rich.console import Console

    from exprbench.metrics.run.progress import ConsoleReporter

    monkeypatch.setenv("EXPRBENCH_CACHE", str(tmp_path / "cold"))
    buf = io.StringIO()
    reporter = ConsoleReporter(Console(file=buf, force_terminal=True, width=200))
    assert reporter.bars is True
    a = evaluate_run(world["runs"]["cgan"], metrics=["fid70_train"], device="cpu", evaluator_weights=world["ev"],
                     reporter=reporter)
    out = buf.getvalue()
    assert "generating 70 images" in out and "features of 70 generated images" in out
    monkeypatch.setenv("EXPRBENCH_CACHE", str(tmp_path / "cold2"))
    b = evaluate_run(world["runs"]["cgan"], metrics=["fid70_train"], device="cpu", evaluator_weights=world["ev"])
    assert a["metrics"]["fid70_train"]["value"] == b["metrics"]["fid70_train"]["value"]


# -- scoring images from any source ------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_sources(world):
    """70 real val/test images of the small set as a PNG folder (+ labels.txt) and as an .npz with labels."""
    import numpy as np
    from PIL import Image

    root = world["root"] / "sources"
    if not root.exists():
        pngs = root / "pngs"
        pngs.mkdir(parents=True)
        test = world["ds"].split("test")
        idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:70]
        imgs, labs = test.images[idx], test.labels[idx]
        for i in range(70):
            Image.fromarray(imgs[i, 0].numpy()).save(pngs / f"{i:03d}.png")
        names = world["ds"].class_names
        (root / "labels.txt").write_text("\n".join(names[int(k)] for k in labs) + "\n")
        np.savez(root / "gen.npz", images=imgs.numpy(), labels=labs.numpy())
    return root


def test_evaluate_images_folder_unlabeled(world, image_sources, tmp_path):
    from exprbench.metrics.run.images_eval import evaluate_images

    out = tmp_path / "scored"
    res = evaluate_images(image_sources / "pngs", out=out, data=world["csv"], device="cpu",
                          evaluator_weights=world["ev"])
    m = res["metrics"]
    # defaults renamed to the 70 images given: fidelity metrics run, everything else is skipped with a reason
    for name in ("fid70_train", "kid70_train", "pr70_train"):
        assert m[name]["status"] == "ok" and m[name]["n_samples"] == 70 and m[name]["images_used"] == "all 70 images"
    for name in ("ifid_train", "acc_gen", "cas"):
        assert m[name]["status"] == "skipped" and "--labels" in m[name]["reason"]
    for name in ("enc_acc_test", "translate_fid_test", "edit_success", "bpd_test"):
        assert m[name]["status"] == "skipped" and "needs a model" in m[name]["reason"]
    assert res["source"]["kind"] == "images" and res["run"]["config"] == "images"
    src = json.loads((out / "source.json").read_text())
    assert src["kind"] == "images" and src["images"]["n"] == 70 and src["images"]["format"] == "image-folder"
    assert src["labels"] is None and not (out / "config.json").exists() and not (out / "checkpoints").exists()
    assert json.loads((out / "eval.json").read_text()) == json.loads(json.dumps(res))
    # the same images from an .npz give the same numbers
    res2 = evaluate_images(image_sources / "gen.npz", out=tmp_path / "npz", metrics=["fid70_train"], data=world["csv"],
                           device="cpu", evaluator_weights=world["ev"])
    assert res2["metrics"]["fid70_train"]["value"] == m["fid70_train"]["value"]


def test_evaluate_images_with_labels_and_merge(world, image_sources, tmp_path):
    from exprbench.metrics.run.images_eval import evaluate_images

    out = tmp_path / "scored"
    evaluate_images(image_sources / "pngs", out=out, metrics=["fid70_train"], data=world["csv"], device="cpu",
                    evaluator_weights=world["ev"], name="outside")
    res = evaluate_images(image_sources / "pngs", labels=image_sources / "labels.txt", out=out,
                          metrics=["acc_gen14"], data=world["csv"], device="cpu", evaluator_weights=world["ev"])
    m = res["metrics"]
    assert m["fid70_train"]["status"] == "ok"  # kept from the first call
    assert m["acc_gen14"]["status"] == "ok" and m["acc_gen14"]["n_samples"] == 14
    assert "2 per emotion" in m["acc_gen14"]["images_used"]
    before = (out / "eval.json").read_bytes()
    with pytest.raises(UserError, match=r"fid100_train: needs 100 images, 70 given \(ask for fid70_train"):
        evaluate_images(image_sources / "pngs", labels=image_sources / "labels.txt", out=out,
                        metrics=["fid100_train"], data=world["csv"], device="cpu", evaluator_weights=world["ev"])
    assert (out / "eval.json").read_bytes() == before  # a protocol asked for by name it cannot feed: refused, nothing lost
    assert res["source"]["labels"]["n"] == 70 and sum(res["source"]["labels"]["per_class"].values()) == 70
    assert json.loads((out / "source.json").read_text())["name"] == res["run"]["model"] == "outside"  # kept
    # the npz's own labels give the same accuracy
    res2 = evaluate_images(image_sources / "gen.npz", out=tmp_path / "npz", metrics=["acc_gen14"], data=world["csv"],
                           device="cpu", evaluator_weights=world["ev"])
    assert res2["metrics"]["acc_gen14"]["value"] == m["acc_gen14"]["value"]


def test_evaluate_images_refuses_bad_out(world, image_sources, tmp_path):
    from exprbench.metrics.run.images_eval import evaluate_images

    kw = dict(data=world["csv"], device="cpu", evaluator_weights=world["ev"], metrics=["fid70_train"])
    with pytest.raises(UserError, match="training run directory"):
        evaluate_images(image_sources / "pngs", out=world["runs"]["gan"], **kw)
    out = tmp_path / "scored"
    evaluate_images(image_sources / "pngs", out=out, **kw)
    import numpy as np

    other = tmp_path / "other.npz"
    np.savez(other, images=np.zeros((70, 48, 48), np.uint8))
    with pytest.raises(UserError, match="holds scores of other images"):
        evaluate_images(other, out=out, **kw)


class _StopAt:
    """A reporter that stops the evaluation (as a killed job would) when protocol ``name`` starts."""

    def __init__(self, name=None):
        from exprbench.metrics.run.progress import EvalReporter

        self.base, self.name, self.started = EvalReporter(), name, []

    def __getattr__(self, attr):
        return getattr(self.base, attr)

    def protocol_start(self, i, total, name, what):
        self.started.append(name)
        if name == self.name:
            raise SystemExit("killed")


def test_a_stopped_evaluation_resumes_with_the_missing_protocols(world, tmp_path):
    import shutil

    from exprbench.metrics.run.evaljson import PARTIAL_NAME

    run = tmp_path / "gan"
    shutil.copytree(world["runs"]["gan"], run)
    names = ["fid140_train", "kid140_train"]  # one generated set: the second protocol reads it back from disk
    (run / "eval.json").unlink(missing_ok=True)  # (other tests of the module may have evaluated it)
    stop = _StopAt("kid140_train")
    with pytest.raises(SystemExit):
        evaluate_run(run, metrics=names, device="cpu", evaluator_weights=world["ev"], reporter=stop)
    assert not (run / "eval.json").exists() and (run / PARTIAL_NAME).is_file()
    again = _StopAt()
    res = evaluate_run(run, metrics=names, device="cpu", evaluator_weights=world["ev"], reporter=again)
    assert again.started == ["kid140_train"]  # fid140_train was kept, not computed again
    assert list(res["metrics"]) == names and not (run / PARTIAL_NAME).exists()
    shutil.copytree(world["runs"]["gan"], tmp_path / "uninterrupted")
    (tmp_path / "uninterrupted" / "eval.json").unlink(missing_ok=True)
    fresh = evaluate_run(tmp_path / "uninterrupted", metrics=names, device="cpu", evaluator_weights=world["ev"])
    for n in names:
        assert res["metrics"][n]["value"] == fresh["metrics"][n]["value"]


def test_kept_samples_are_read_back_by_a_re_evaluation(world, tmp_path, monkeypatch):
    import shutil

    from exprbench.metrics.run.sample_store import FOLDER

    run = tmp_path / "cgan"
    shutil.copytree(world["runs"]["cgan"], run)
    first = evaluate_run(run, metrics=["acc_gen140"], device="cpu", evaluator_weights=world["ev"], keep_samples=True)
    stored = sorted((run / FOLDER).glob("*.pt"))
    assert len(stored) == 1
    cls = type(_model_of(run))
    drawn, original = [], cls.sample
    monkeypatch.setattr(cls, "sample", lambda self, n, *a, **k: drawn.append(n) or original(self, n, *a, **k))
    again = evaluate_run(run, metrics=["acc_gen140"], device="cpu", evaluator_weights=world["ev"])
    assert sum(drawn) <= 7 * 8  # only the samples figure (one latent per column and class) was drawn
    assert again["metrics"]["acc_gen140"]["value"] == first["metrics"]["acc_gen140"]["value"]
    assert not (run / FOLDER).exists()  # without --keep-samples the sets go once eval.json is written


def _model_of(run):
    from exprbench.runs.loader import checkpoint_source, load_source

    return load_source(run, checkpoint_source(run, "latest"), torch.device("cpu"))[1]
