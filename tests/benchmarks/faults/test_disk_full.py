"""A full disk (issue 33, finding 5): train, evaluate and report end in one line naming the file and "no space
left on device", exit code 1 (an environment failure, see exprbench.cli.app), with every file already written
whole (the previous eval.json / baseline.json kept, no temporary file left) and a failed training marked
``failed`` in status.json. The disk is simulated: writes of the named files fail with ENOSPC."""

from __future__ import annotations

import json
import os

import pytest

from exprbench.benchmarks.faults.tamper import full_fdopen
from exprbench.cli import main

from ..synthetic import make_results
from ...conftest import write_csv

TINY = ["--set", "model.ch=4", "--set", "train.batch_size=8", "--set", "train.log_every=1",
        "--set", "train.sample_every=0", "--set", "train.samples_per_class=1"]


def one_line(capsys, code: int, *match: str) -> str:
    """The error is one line, the last on stderr (evaluate's progress lines come before it), no traceback."""
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert "Traceback" not in err and [x for x in lines if x.startswith("error")] == lines[-1:], err
    for m in match:
        assert m in lines[-1], err
    return lines[-1]


def temps(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def test_train_out_of_disk_at_the_checkpoint(tmp_path, capsys, monkeypatch):
    csv = write_csv(tmp_path / "fer2013.csv", per_class=4)
    run = tmp_path / "run"
    monkeypatch.setattr(os, "fdopen", full_fdopen(["step_"]))
    code = main(["train", "gan", "--data", str(csv), "--out", str(run), "--steps", "2", *TINY])
    assert code == 1
    one_line(capsys, code, f"{run / 'checkpoints' / 'step_000002.pt'}: no space left on device")
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and "No space left on device" in status["error"]
    assert [json.loads(x)["step"] for x in (run / "train.jsonl").read_text().splitlines()] == [1, 2]
    assert temps(run) == [] and not list((run / "checkpoints").glob("*.pt"))
    assert not (run / "claim.lock").exists()


def test_evaluate_out_of_disk_keeps_the_previous_eval_json(tmp_path, capsys, monkeypatch):
    from exprbench.data import load_fer2013
    from exprbench.metrics.testing import tiny_evaluator, tiny_run

    csv = write_csv(tmp_path / "fer2013.csv", per_class=10)
    ds = load_fer2013(csv, use_cache=False)
    ev = tiny_evaluator(ds, tmp_path / "ev.pt", epochs=1)
    run = tiny_run(csv, tmp_path / "run", "cgan", dataset=ds)
    argv = ["evaluate", str(run), "--metrics", "acc_gen70", "--evaluator-weights", str(ev), "--device", "cpu"]
    assert main(argv) == 0, capsys.readouterr().err
    before = (run / "eval.json").read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(os, "fdopen", full_fdopen(["eval.json"]))
    assert main(argv) == 1
    one_line(capsys, 1, f"{run / 'eval.json'}: no space left on device")
    assert (run / "eval.json").read_bytes() == before and temps(run) == []


def test_report_out_of_disk_keeps_the_previous_baseline(tmp_path, capsys, monkeypatch):
    res = make_results(tmp_path)
    argv = ["report", str(res), "--no-figures", "--no-html"]
    assert main(argv) == 0
    before = (res / "report" / "baseline.json").read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(os, "fdopen", full_fdopen(["baseline.json"]))
    assert main(argv) == 1
    one_line(capsys, 1, f"{res / 'report' / 'baseline.json'}: no space left on device")
    assert (res / "report" / "baseline.json").read_bytes() == before and temps(res) == []


@pytest.mark.parametrize("errno_name", ["ENOSPC", "EDQUOT"])
def test_a_full_disk_anywhere_is_one_line_exit_1(errno_name, capsys, monkeypatch):
    import errno

    import exprbench.runs.config

    def full(*a, **k):
        raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)))

    monkeypatch.setattr(exprbench.runs.config, "resolve_config", full)
    assert main(["config", "show", "gan"]) == 1
    one_line(capsys, 1, "error: no space left on device")
