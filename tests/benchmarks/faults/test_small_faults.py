"""The smaller findings of issue 33 (finding 7), each one line and its exit code: a baseline nested 200,000
deep or endless (/dev/zero), eval.json files edited by hand (metrics not an object, a NaN or a string value), a
Ray address nobody listens at, an unknown label set in a suite, Ctrl-C during evaluate (finished protocols
kept), and the lock files evaluate used to leave."""

from __future__ import annotations

import json
import threading
import time

import pytest

from exprbench.benchmarks.faults.tamper import deep_json
from exprbench.cli import main

from ...bench_helpers import write_suite
from ..synthetic import eval_json, make_results, write_run
from ...conftest import write_csv


def last_line(capsys, *match: str, stream: str = "err") -> str:
    text = getattr(capsys.readouterr(), stream)
    lines = [x for x in text.splitlines() if x.strip()]
    assert "Traceback" not in text and lines, text
    for m in match:
        assert m in lines[-1], text
    return lines[-1]


def test_a_baseline_nested_too_deep_or_endless_is_one_line(tmp_path, capsys):
    res = make_results(tmp_path)
    deep = deep_json(tmp_path / "deep.json", 200_000)
    assert main(["regress", str(res), "--baseline", str(deep)]) == 2
    last_line(capsys, f"{deep}: JSON nested too deeply")
    t0 = time.perf_counter()
    assert main(["regress", str(res), "--baseline", "/dev/zero"]) == 2
    assert time.perf_counter() - t0 < 10
    last_line(capsys, "/dev/zero: over 64 MiB (and not a regular file)")


def test_hand_edited_eval_json_values_are_warned_about(tmp_path, capsys):
    res = make_results(tmp_path)
    bad = write_run(res / "runs", "gan", 7, {"metrics": [1, 2]}, curve=False)
    ev = eval_json(11.0)
    ev["metrics"]["fid70_train"]["value"] = float("nan")
    ev["metrics"]["pr70_train"]["value"] = "0.5"
    odd = write_run(res / "runs", "gan", 8, ev, curve=False)
    (odd / "eval.json").write_text(json.dumps(ev))  # NaN as the bare token a hand edit leaves
    assert main(["report", str(res), "--no-figures", "--no-html"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert f"warning: {bad / 'eval.json'}: 'metrics' is list, expected an object {{protocol: entry}}: run left out " \
           "of the report" in err
    assert f"warning: {odd / 'eval.json'}: metrics.fid70_train.value is NaN, not a finite number: left out" in err
    assert f"warning: {odd / 'eval.json'}: metrics.pr70_train.value is \"0.5\", not a finite number: left out" in err


def test_a_ray_address_nobody_listens_at_is_one_line_in_seconds(tmp_path, capsys):
    pytest.importorskip("ray")
    suite = write_suite(tmp_path / "s.toml")
    t0 = time.perf_counter()
    code = main(["bench", str(suite), "--out", str(tmp_path / "out"), "--executor", "ray", "--address", "127.0.0.1:1"])
    assert code == 2 and time.perf_counter() - t0 < 15
    last_line(capsys, "no Ray cluster at --address 127.0.0.1:1: Connection refused")
    assert not (tmp_path / "out").exists()


def test_an_unknown_label_set_is_refused_when_the_suite_loads(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.toml")
    suite.write_text(suite.read_text().replace("[train]", '[data]\nlabel_set = "fer9"\n[train]'))
    assert main(["bench", str(suite), "--out", str(tmp_path / "out")]) == 2
    last_line(capsys, f"{suite}: [[models]] 'gan': data.label_set = 'fer9' is not a known label set")


@pytest.fixture
def evaluated(tmp_path):
    from exprbench.data import load_fer2013
    from exprbench.metrics.testing import tiny_evaluator, tiny_run

    csv = write_csv(tmp_path / "fer2013.csv", per_class=10)
    ds = load_fer2013(csv, use_cache=False)
    ev = tiny_evaluator(ds, tmp_path / "ev.pt", epochs=1)
    run = tiny_run(csv, tmp_path / "run", "cgan", dataset=ds)
    return run, ["--evaluator-weights", str(ev), "--device", "cpu"]


def test_ctrl_c_during_evaluate_keeps_the_finished_protocols(evaluated, capsys, monkeypatch):
    import exprbench.metrics.run.references as refs

    run, opts = evaluated
    run_protocol = refs.run_protocol

    def second_is_interrupted(spec, ctx, real):
        if spec.name == "fid60_train":
            raise KeyboardInterrupt
        return run_protocol(spec, ctx, real)

    monkeypatch.setattr(refs, "run_protocol", second_is_interrupted)
    assert main(["evaluate", str(run), "--metrics", "acc_gen70,fid60_train", *opts]) == 130
    last_line(capsys, "interrupted during fid60_train: the 1 finished protocol(s) (acc_gen70) were written to")
    kept = json.loads((run / "eval.json").read_text())
    assert list(kept["metrics"]) == ["acc_gen70"] and kept["metrics"]["acc_gen70"]["status"] == "ok"
    assert kept["evaluations"][-1]["protocols"] == ["acc_gen70"]
    assert not (run / ".eval.json.lock").exists()
    assert main(["evaluate", str(run), "--metrics", "fid60_train", *opts]) == 130  # nothing finished: unchanged
    last_line(capsys, "no protocol had finished")
    assert json.loads((run / "eval.json").read_text()) == kept


def test_file_lock_excludes_and_leaves_no_file(tmp_path):
    from exprbench.core.io import file_lock

    lock, counter = tmp_path / ".x.lock", tmp_path / "n"
    counter.write_text("0")

    def bump():
        for _ in range(40):
            with file_lock(lock):
                n = int(counter.read_text())
                time.sleep(0.0005)
                counter.write_text(str(n + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "160" and not lock.exists()


def test_ctrl_c_during_evaluate_images_keeps_the_finished_protocols(evaluated, tmp_path, capsys, monkeypatch):
    import numpy as np

    import exprbench.metrics.run.references as refs
    from exprbench.data import load_fer2013

    run, opts = evaluated
    test = load_fer2013(tmp_path / "fer2013.csv", use_cache=False).split("test")
    npz = tmp_path / "imgs.npz"
    np.savez(npz, images=test.images[:, 0].numpy(), labels=test.labels.numpy())
    out = tmp_path / "out"
    argv = ["evaluate", "--images", str(npz), "--out", str(out), "--data", str(tmp_path / "fer2013.csv"), *opts]
    assert main([*argv, "--metrics", "acc_gen70"]) == 0, capsys.readouterr().err
    first = json.loads((out / "eval.json").read_text())
    assert first["metrics"]["acc_gen70"]["status"] == "ok" and (out / "source.json").exists()
    run_protocol = refs.run_protocol

    def second_is_interrupted(spec, ctx, real):
        if spec.name == "fid60_train":
            raise KeyboardInterrupt
        return run_protocol(spec, ctx, real)

    monkeypatch.setattr(refs, "run_protocol", second_is_interrupted)
    capsys.readouterr()
    assert main([*argv, "--metrics", "acc_gen60,fid60_train"]) == 130
    last_line(capsys, "the 1 finished protocol(s) (acc_gen60) were written to")
    kept = json.loads((out / "eval.json").read_text())
    assert set(kept["metrics"]) == {"acc_gen70", "acc_gen60"} and not (out / ".eval.json.lock").exists()
