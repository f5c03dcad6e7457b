"""The training data's fingerprint against the evaluation data's: a warning stored in eval.json, or a refusal
(exit 2, one line, nothing written) under ``--strict``."""

from __future__ import annotations

import json

import pytest

from exprbench.cli import main
from exprbench.data import load_fer2013
from exprbench.core.errors import UserError
from exprbench.metrics.run.run_checks import check_fingerprint
from exprbench.metrics.testing import tiny_evaluator, tiny_run

from ..conftest import write_csv


def test_check_fingerprint(tmp_path):
    assert check_fingerprint(tmp_path, None, "b" * 64, "d.zip", strict=True) == []  # nothing recorded: no check
    assert check_fingerprint(tmp_path, "a" * 64, "a" * 64, "d.zip", strict=True) == []
    (w,) = check_fingerprint(tmp_path, "a" * 64, "b" * 64, "d.zip", strict=False)
    assert w.startswith("warning:") and "aaaaaaaaaaaa" in w
    with pytest.raises(UserError, match="--strict refuses") as e:
        check_fingerprint(tmp_path, "a" * 64, "b" * 64, "d.zip", strict=True)
    assert "\n" not in str(e.value) and "aaaaaaaaaaaa" in str(e.value) and "bbbbbbbbbbbb" in str(e.value)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ident")
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPRBENCH_CACHE", str(root / "cache"))
    csv = write_csv(root / "fer2013.csv", per_class=4)
    ds = load_fer2013(csv)
    run = tiny_run(csv, root / "run", "cgan", dataset=ds)
    other = write_csv(root / "other.csv", per_class=4, seed=1)  # same shape, other pixels: another fingerprint
    yield {"run": run, "ev": tiny_evaluator(ds, root / "ev.pt", epochs=1), "other": other, "ds": ds}
    mp.undo()


def test_strict_refuses_other_data(world, capsys):
    status = json.loads((world["run"] / "status.json").read_text())
    assert status["data_fingerprint"] == world["ds"].fingerprint
    argv = ["evaluate", str(world["run"]), "--metrics", "acc_gen7", "--device", "cpu", "--evaluator-weights",
            str(world["ev"]), "--data", str(world["other"]), "--no-progress"]
    assert main([*argv, "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--strict refuses" in err
    assert not (world["run"] / "eval.json").exists()
    assert main(argv) == 0  # without --strict: evaluated, with the warning printed and stored
    out = capsys.readouterr().out
    ev = json.loads((world["run"] / "eval.json").read_text())
    assert ev["data"]["fingerprint_match"] is False and len(ev["warnings"]) == 1
    assert ev["warnings"][0].startswith("warning: the run was trained on data") and "warning: the run" in out
    assert main([*argv[:-3], "--strict", "--no-progress"]) == 0  # its own data: --strict passes
