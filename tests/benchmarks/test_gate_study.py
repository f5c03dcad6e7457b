"""benchmarks/gate/gate_study.py: each planted regression breaks training as it says (tiny runs), the lr plant
changes only the learning rates, the study page; the committed study's outcome (results/gate/study)."""

from __future__ import annotations

import json

import pytest
import torch

from exprbench.benchmarks.gate import gate_study
from exprbench.benchmarks.suite import load_suite
from exprbench.runs.config import resolve_config
from exprbench.runs.harness import Trainer
from exprbench.runs.layout import list_checkpoints, load_checkpoint

from ..conftest import REPO

TINY = ["model.ch=8", "train.batch_size=8", "train.log_every=1", "train.sample_every=0", "train.samples_per_class=2",
        "train.steps=2", "train.ema=false"]


def _train(tmp_path, dataset, plant=None, name="run"):
    cfg = resolve_config("cgan", "default", TINY)
    ctx = plant(load_suite("gate")) if plant else gate_study.unchanged(None)
    with ctx:
        Trainer(cfg, tmp_path / name, dataset=dataset, progress=False).run()
    return tmp_path / name


def _g_init(dataset) -> dict[str, torch.Tensor]:
    from exprbench.runs.loader import build_model

    torch.manual_seed(0)  # as the harness seeds before building (train.seed 0)
    model = build_model(resolve_config("cgan", "default", TINY), dataset.spec, torch.device("cpu"))
    return {k: v.detach().clone() for k, v in model.nets["G"].named_parameters()}


def test_frozen_g_keeps_g_at_its_initial_weights(tmp_path, tiny_dataset):
    init = _g_init(tiny_dataset)
    for plant, frozen in ((gate_study.frozen_g, True), (None, False)):
        run = _train(tmp_path, tiny_dataset, plant, name=f"frozen{frozen}")
        nets = load_checkpoint(list_checkpoints(run)[-1])["model"]["nets"]
        g = {k.removeprefix("G."): v for k, v in nets.items() if k.startswith("G.")}
        assert set(init) <= set(g)
        same = all(torch.equal(g[k], init[k]) for k in init)
        assert same == frozen
    from exprbench.runs import harness
    assert harness.build_model.__name__ == "build_model"  # the patch is undone


def test_shuffled_labels_reach_the_model_permuted(tmp_path, tiny_dataset, monkeypatch):
    from exprbench.models import get_model

    CGAN = get_model("cgan")
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    step = CGAN.training_step
    monkeypatch.setattr(CGAN, "training_step", lambda self, b, *a: seen.append((b.x.clone(), b.c.clone())) or step(self, b, *a))
    _train(tmp_path, tiny_dataset, gate_study.shuffled_labels, "shuffled")
    # each image's true label, looked up by its pixels in the dataset (images mirrored by hflip are not found)
    assert seen
    label_of = {bytes(img.flatten().tolist()): int(lab) for img, lab in zip(tiny_dataset.images, tiny_dataset.labels)}
    pairs = [(bytes(((x[i, 0] + 1) * 127.5).round().to(torch.uint8).flatten().tolist()), int(c[i]))
             for x, c in seen for i in range(len(c))]
    known = [(label_of[k], c) for k, c in pairs if k in label_of]
    assert known and sum(a != b for a, b in known) > len(known) // 3  # most pairs broken (7 classes)
    from exprbench.runs import harness
    assert harness.Batch.__name__ == "Batch"


def test_lr_x10_changes_only_the_learning_rates():
    suite = load_suite("gate")
    with gate_study.lr_x10(suite) as planted:
        for p, q in zip(suite.grid, planted.grid):
            a, b = suite.run_config(p).to_dict(), planted.run_config(q).to_dict()
            assert b["model_cfg"]["lr_g"] == pytest.approx(10 * a["model_cfg"]["lr_g"])
            assert b["model_cfg"]["lr_d"] == pytest.approx(10 * a["model_cfg"]["lr_d"])
            for cfg in (a, b):
                cfg["model_cfg"].pop("lr_g"), cfg["model_cfg"].pop("lr_d")
            assert a == b


def test_study_page_lists_every_case_and_headline_metric():
    metric = load_suite("gate").metrics[0]
    row = {"model": "cgan/default", "metric": metric, "baseline": 3.0, "baseline_std": 0.1, "current": 9.0,
           "allowed": 0.2, "tolerance": "2 sd", "verdict": "regressed"}
    cases = [{"case": c, "exit_code": 1, "expected_exit_code": 1, "summary": "quality regression: 1 regressed",
              "rows": [row], "bench_seconds": 100.0} for c in gate_study.CASES]
    page = gate_study.to_markdown(cases, "x86_64 CPU")
    assert all(f"| {c} | {metric} |" in page for c in gate_study.CASES)


def test_committed_study_passes_unchanged_code_and_fails_each_planted_regression():
    """The committed study (results/gate/study): unchanged code exits 0 with no "improved" row, each planted
    regression exits 1 with a regressed headline metric, each case's bench in <= 10 minutes."""
    study = json.loads((REPO / "results" / "gate" / "study" / "study.json").read_text())
    cases = {c["case"]: c for c in study["cases"]}
    assert set(cases) == set(gate_study.CASES)
    assert cases["unchanged"]["exit_code"] == 0
    assert not [r for r in cases["unchanged"]["rows"] if r["verdict"] == "improved"]
    for name in ("frozen_g", "shuffled_labels", "lr_x10"):
        assert cases[name]["exit_code"] == 1
        assert [r for r in cases[name]["rows"] if r["verdict"] == "regressed"]
    assert all(c["bench_seconds"] <= 600 for c in cases.values())
    assert study["regress_options"] == gate_study.REGRESS_OPTIONS
