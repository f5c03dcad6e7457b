"""The metric validity study: degradations (monotone in a simple statistic, batch-size independent), the set
changes (mode dropping, collapse, memorisation), the pass criteria on synthetic series, and
``exprbench metrics validate`` on a tiny run (files written, exit 0; bad input, exit 2)."""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.metrics.validity.degrade import DEGRADATIONS, collapse, drop_emotions, memorise
from exprbench.metrics.validity.criteria import (FAIL, NA, PASS, criteria_table, dynamic_range, halfwidth, monotone,
                                                 ranked)


def _faces(n: int = 24, seed: int = 0) -> torch.Tensor:
    """Smooth random uint8 n x 1 x 48 x 48 images (low-frequency blobs, as faces are)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 6, 6, generator=g)
    x = torch.nn.functional.interpolate(low, size=(48, 48), mode="bicubic", align_corners=False)
    return (x.clamp(0, 1) * 200 + 28).round().to(torch.uint8)


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.float() - b.float()) ** 2).mean())


def _tv(x: torch.Tensor) -> float:
    x = x.float()
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())


STAT = {  # family -> statistic of (degraded, original) that grows with the strength
    "blur": lambda d, x: -_tv(d),
    "noise": _mse,
    "jpeg": _mse,
    "contrast": lambda d, x: -float(d.float().std()),
    "shift": _mse,
}


@pytest.mark.parametrize("family", list(DEGRADATIONS))
def test_degradation_is_monotone_and_batch_independent(family):
    d = DEGRADATIONS[family]
    x = _faces()
    outs = [d.apply(x, s) for s in range(len(d.levels))]
    assert torch.equal(outs[0], x), "strength 0 is the identity"
    assert all(o.dtype == torch.uint8 and o.shape == x.shape for o in outs)
    stats = [STAT[family](o, x) for o in outs]
    assert all(b > a for a, b in zip(stats, stats[1:])), (family, stats)
    for s in range(1, len(d.levels)):
        assert torch.equal(d.apply(x, s, batch_size=5), outs[s]), (family, s)


def test_drop_emotions_removes_the_faces_and_keeps_labels():
    x, y = _faces(70), torch.arange(7).repeat(10)
    out = drop_emotions(x, y, [0, 3], seed=0)
    dropped = {bytes(x[i].numpy()) for i in range(70) if int(y[i]) in (0, 3)}
    assert not any(bytes(out[i].numpy()) in dropped for i in range(70))
    kept = y[~torch.isin(y, torch.tensor([0, 3]))]
    assert torch.equal(out[~torch.isin(y, torch.tensor([0, 3]))], x[~torch.isin(y, torch.tensor([0, 3]))])
    assert out.shape == x.shape and len(kept) == 50
    assert torch.equal(drop_emotions(x, y, [0, 3], seed=0), out)


def test_collapse_keeps_k_distinct_faces_with_true_labels():
    x, y = _faces(70), torch.arange(7).repeat(10)
    for k in (7, 10, 30):
        out, lab = collapse(x, y, k, seed=1)
        assert len({bytes(o.numpy()) for o in out}) == k and torch.equal(lab, y)
        index = {bytes(x[i].numpy()): int(y[i]) for i in range(70)}
        assert all(index[bytes(out[i].numpy())] == int(y[i]) for i in range(70))
    out, lab = collapse(x, y, 1, seed=1)
    assert len({bytes(o.numpy()) for o in out}) == 1 and len(set(lab.tolist())) == 1


def test_memorise_is_nested_and_of_the_fraction():
    x, y = _faces(40), torch.arange(4).repeat(10)
    tx, ty = _faces(80, seed=5), torch.arange(4).repeat(20)
    train = {bytes(t.numpy()): int(c) for t, c in zip(tx, ty)}
    sets = {f: memorise(x, y, tx, ty, f, seed=0) for f in (0.0, 0.25, 0.5, 1.0)}
    copied = {f: {i for i in range(40) if bytes(s[i].numpy()) in train} for f, s in sets.items()}
    assert [len(copied[f]) for f in (0.0, 0.25, 0.5, 1.0)] == [0, 10, 20, 40]
    assert copied[0.25] <= copied[0.5] <= copied[1.0]
    assert all(train[bytes(sets[1.0][i].numpy())] == int(y[i]) for i in range(40))


def test_monotone_criterion():
    assert monotone([1.0, 2.0, 3.0, 5.0], "lower").status == PASS
    assert monotone([0.9, 0.8, 0.5, 0.1], "higher").status == PASS
    assert monotone([1.0, 2.0, 1.9, 5.0], "lower").status == FAIL
    # the wrong-way step is within 0.25 x the ci95 half-width (0.4 / 2 x 0.25 = 0.05 >= 0.04)
    assert monotone([1.0, 2.0, 1.96, 5.0], "lower", [0.2, 0.2, 0.2, 0.2]).status == PASS
    assert monotone([1.0, 2.0, 1.9, 5.0], "lower", [0.2, 0.2, 0.2, 0.2]).status == FAIL
    assert "no response" in monotone([1.0, 1.0, 1.0], "lower").statistic
    assert monotone([1.0, None, 2.0], "lower").status == NA
    assert halfwidth([1.0, 2.0]) == 0.5 and halfwidth(None) is None


def test_ranked_and_dynamic_range_criteria():
    assert ranked([0, 10, 30, 100], [50.0, 20.0, 12.0, 9.0], "lower").status == PASS
    assert ranked([0, 10, 30, 100], [9.0, 12.0, 20.0, 50.0], "lower").status == FAIL
    assert ranked([0, 10, 30, 100], [0.1, 0.3, 0.28, 0.5], "higher").status == PASS  # rho 0.8
    assert ranked([0, 10], [2.0, 1.0], "lower").status == NA
    assert dynamic_range(30.0, 9.0).status == PASS and dynamic_range(10.1, 9.1).status == FAIL
    assert dynamic_range(None, 1.0).status == NA


def test_criteria_table_reads_families():
    data = {("fid_x", "blur"): [1, 2, 3], ("fid_x", "drop_emotions"): [1, 1, 1], ("mem_x", "memorisation"): [.05, .3, .9],
            ("pr_x", "drop_emotions"): [.9, .7, .5], ("fid_x", "progress"): [30, 10, 5], ("fid_x", "pair"): [5, 40]}

    def series(protocol, condition, key):
        vals = data.get((protocol, condition), [])
        return [(i, i * 10, v, None) for i, v in enumerate(vals)]

    protos = [{"protocol": "fid_x", "family": "fid", "space": "s", "direction": "lower", "cas": False},
              {"protocol": "mem_x", "family": "mem", "space": "s", "direction": "lower", "cas": False},
              {"protocol": "pr_x", "family": "pr", "space": "s", "direction": "higher", "cas": False}]
    rows = {r["protocol"]: r for r in criteria_table(protos, series, ["blur"], True, True, ())}
    assert rows["fid_x"]["blur"].status == PASS and rows["fid_x"]["drop_emotions"].status == NA
    assert rows["fid_x"]["progress"].status == PASS and rows["fid_x"]["dynamic range"].status == PASS
    assert rows["mem_x"]["memorisation"].status == PASS and rows["mem_x"]["blur"].status == NA
    assert rows["pr_x"]["drop_emotions"].status == PASS and rows["pr_x"]["dynamic range"].status == NA


# -- the command on a tiny run ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from exprbench.data import load_fer2013
    from exprbench.metrics.testing import tiny_evaluator, tiny_run
    from tests.conftest import write_csv

    root = tmp_path_factory.mktemp("validity")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    mp.setattr(torch.hub, "get_dir", lambda: str(root / "hub"))  # no Inception weights: skipped with the reason
    csv = write_csv(root / "fer2013.csv", per_class=12)
    ds = load_fer2013(csv)
    ev = tiny_evaluator(ds, root / "ev.pt", epochs=1)
    runs = [tiny_run(csv, root / f"cgan{s}", "cgan", steps=s, dataset=ds) for s in (1, 2)]
    yield {"root": root, "csv": csv, "ev": ev, "runs": runs}
    mp.undo()


def test_validate_writes_the_study(tiny, capsys):
    from exprbench.cli import main

    out = tiny["root"] / "study"
    a, b = map(str, tiny["runs"])
    rc = main(["metrics", "validate", "--quick", "--n", "40", "--out", str(out), "--data", str(tiny["csv"]),
               "--evaluator-weights", str(tiny["ev"]), "--progress", a, "--progress", b, "--pair", a, b])
    text = capsys.readouterr().out
    assert rc == 0, text
    for f in ("validity.json", "validity.csv", "criteria.md", "fig_blur.png", "fig_blur.pdf", "fig_progress.png"):
        assert (out / f).exists(), f
    res = json.loads((out / "validity.json").read_text())
    assert res["study"]["data"]["fingerprint"] and res["study"]["commit"] is not None
    rec = res["records"]
    assert {"blur", "noise", "jpeg", "contrast", "shift", "drop_emotions", "collapse", "memorisation", "progress",
            "pair"} <= {r["condition"] for r in rec}
    assert {r["protocol"] for r in rec} >= {"fid10k_train", "pr10k_train", "dc10k_train", "mem10k_train", "ifid_train"}
    assert any(s["protocol"] == "fid10k_train_inception" and "unavailable" in s["reason"] for s in res["skipped"])
    assert all(r["n"] == 40 for r in rec if r["protocol"] == "fid10k_train" and r["status"] == "ok")
    assert "fid10k_train" in (out / "criteria.md").read_text() and "fid10k_train" in text
    crit = {c["protocol"]: c for c in res["criteria"]}
    assert crit["mem10k_train"]["blur"].startswith("n.a.")
    assert crit["fid10k_train"]["progress"].startswith("n.a.")  # two checkpoints: ranking needs 3
    assert crit["fid10k_train"]["dynamic range"].split()[0] in ("pass", "fail")


def test_cas_mode_dropping_trains_on_balanced_train_faces(tiny, monkeypatch):
    """CAS tests on PrivateTest, so its mode-dropping and collapse sets are real train faces at its own
    count (the set of its real-data baseline), changed as the PrivateTest set is."""
    from exprbench.data import load_fer2013
    from exprbench.metrics.families import cas
    from exprbench.metrics.validity.study import StudyOptions, run_study

    seen = []

    def stub(images, labels, test, protocol, device="cpu", seed=None):
        seen.append((images.clone(), labels.clone()))
        k = len(test.class_names)
        per = {c: 0.5 for c in test.class_names}
        return {"value": 0.5, "per_class": per, "confusion_matrix": [[0] * k] * k, "n_train": int(images.shape[0]),
                "n_test": len(test), "train_seconds": 0.0, "balanced_acc": 0.5, "correct": [1] * len(test)}

    monkeypatch.setattr(cas, "classifier_accuracy_on_real", stub)
    res = run_study(StudyOptions(n=40, only=["cas"], cas=True, data=str(tiny["csv"]),
                                 evaluator_weights=str(tiny["ev"])))
    train = load_fer2013(tiny["csv"]).split("train")
    flat = train.images.flatten(1)
    per = len(cas.CAS.classifier_seeds(7000))  # classifiers per CAS value (3 classifier seeds at 7,000 images)
    assert len(seen) == per * (1 + 1 + 3 + 3)  # the real baseline, strength 0, drop 1-3, collapse 1000/100/10
    for images, labels in seen:
        assert images.shape[0] == 7000 and torch.bincount(labels, minlength=7).tolist() == [1000] * 7
        assert all((flat == im.flatten()).all(1).any() for im in images[::500])  # pixel copies of train faces
    assert torch.equal(seen[0][0], seen[per][0])  # strength 0 is the baseline's own set
    assert not torch.equal(seen[per][0], seen[2 * per][0])  # one emotion dropped: its slots hold other faces
    rec = [r for r in res["records"] if r["protocol"] == "cas"]
    assert {r["condition"] for r in rec} == {"drop_emotions", "collapse"} and all(r["n"] == 7000 for r in rec)
    assert "real train faces, 1,000 per emotion" in res["study"]["cas_scored"]


@pytest.mark.parametrize("args, msg", [
    (["--progress", "{root}/nope"], "not a run directory"),
    (["--progress", "{run}"], "checkpoint(s)"),
    (["--only", "fid_nonexistent"], "unknown metric protocol"),
    (["--only", "bpd_test"], "not a protocol of the tables"),
    (["--pair", "{run}", "{root}/nope"], "not a run directory"),
])
def test_validate_bad_input_exits_2(tiny, capsys, args, msg):
    from exprbench.cli import main

    args = [a.format(root=tiny["root"], run=tiny["runs"][0]) for a in args]
    out = tiny["root"] / "bad"
    rc = main(["metrics", "validate", "--quick", "--n", "40", "--out", str(out), "--data", str(tiny["csv"]),
               "--evaluator-weights", str(tiny["ev"]), *args])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "validity.json").exists()


def test_metrics_alone_still_lists(capsys):
    from exprbench.cli import main

    assert main(["metrics"]) == 0
    text = capsys.readouterr().out
    assert "fid10k_train" in text and "validate" not in text


# -- --update: fold protocols into a stored study ---------------------------------------------------------
def _validate(tiny, out, *args):
    from exprbench.cli import main

    return main(["metrics", "validate", "--quick", "--n", "40", "--out", str(out), "--data", str(tiny["csv"]),
                 "--evaluator-weights", str(tiny["ev"]), *args])


@pytest.fixture(scope="module")
def stored(tiny):
    """A quick study of acc_gen alone (the cheapest protocol)."""
    out = tiny["root"] / "stored"
    assert _validate(tiny, out, "--only", "acc_gen") == 0
    return out


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_validate_update_adds_a_protocol(tiny, stored, tmp_path, capsys):
    import shutil

    out = tmp_path / "study"
    shutil.copytree(stored, out)
    res = json.loads((out / "validity.json").read_text())
    for r in res["records"]:  # a flat acc_gen: judged again from the records, every monotone criterion fails
        r["value"] = 0.5
    res["skipped"].append({"protocol": "mem10k_train", "space": "fer-evaluator", "reason": "not studied yet"})
    (out / "validity.json").write_text(json.dumps(res))
    capsys.readouterr()
    assert _validate(tiny, out, "--only", "mem10k_train", "--update") == 0, capsys.readouterr()
    text = capsys.readouterr().out
    assert "updated the study with mem10k_train" in text
    merged = json.loads((out / "validity.json").read_text())
    keep = [json.dumps(r, sort_keys=True) for r in merged["records"] if r["protocol"] == "acc_gen"]
    assert keep == [json.dumps(r, sort_keys=True) for r in res["records"]]
    assert {r["protocol"] for r in merged["records"]} == {"acc_gen", "mem10k_train"}
    crit = {c["protocol"]: c for c in merged["criteria"]}
    assert "no response" in crit["acc_gen"]["blur"] and crit["mem10k_train"]["memorisation"].split()[0] in ("pass", "fail")
    assert merged["skipped"] == [] and merged["study"]["updates"][0]["protocols"] == ["mem10k_train"]
    assert merged["study"]["updates"][0]["evaluator_sha256"]
    assert "mem10k_train" in (out / "criteria.md").read_text() and "(--update)" in (out / "criteria.md").read_text()
    assert "mem10k_train" in (out / "validity.csv").read_text()


@pytest.mark.parametrize("args, edit, msg", [
    (["--n", "41"], None, "--n 41"),
    (["--ci-draws", "3"], None, "--ci-draws 3"),
    (["--progress", "{a}", "--progress", "{b}"], None, "--progress points"),
    (["--pair", "{a}", "{b}"], None, "--pair runs"),
    ([], ("data", "fingerprint"), "data fingerprint"),
    ([], ("evaluator_sha256",), "evaluator weights sha256"),
    ([], "missing", "no validity.json"),
])
def test_validate_update_refuses_and_writes_nothing(tiny, stored, tmp_path, capsys, args, edit, msg):
    import shutil

    out = tmp_path / "study"
    shutil.copytree(stored, out)
    if edit == "missing":
        (out / "validity.json").unlink()
    elif edit:
        res = json.loads((out / "validity.json").read_text())
        (res["study"][edit[0]] if len(edit) == 2 else res["study"]).__setitem__(edit[-1], "0" * 64)
        (out / "validity.json").write_text(json.dumps(res))
    before = _files(out)
    a, b = map(str, tiny["runs"])
    capsys.readouterr()
    rc = _validate(tiny, out, "--only", "acc_gen", "--update", *[x.format(a=a, b=b) for x in args])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert _files(out) == before
