"""Hand-made results directories and baselines for the regression-gate tests (no training, no suite)."""

from __future__ import annotations

import json
from pathlib import Path


def write_run(root: Path, model: str, seed: int, metrics: dict[str, float], config: str = "default",
              status: str = "done") -> Path:
    """One run directory under ``root/runs`` with the files ``report.collect`` reads."""
    d = root / "runs" / f"{model}-{config}-s{seed}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"model": model, "config_name": config, "train": {"seed": seed}}))
    (d / "record.json").write_text(json.dumps({"status": status}))
    (d / "status.json").write_text(json.dumps({"device": "cpu", "step": 30, "train_seconds": 1.0, "img_per_s": 10.0}))
    (d / "eval.json").write_text(json.dumps({"metrics": {k: {"status": "ok", "value": v} for k, v in metrics.items()}}))
    return d


def entry(mean, std=None, n=1, hib=False) -> dict:
    return {"mean": mean, "std": std, "n": n, "higher_is_better": hib}


def make_case(tmp_path: Path) -> tuple[Path, dict]:
    """Results: cgan (2 seeds: fid 20/22, acc 0.30/0.34), gan (fid 30), vae (fid 30, not in the baseline).
    Baseline: cgan fid 18±1 (-> regressed by 10% and 2sd), cgan acc 0.32±0 (ok), gan fid 40 (improved: 10 better, beyond its 10% allowance),
    gan acc (missing metric), flow fid (missing model)."""
    res = tmp_path / "res"
    write_run(res, "cgan", 0, {"fid70_train": 20.0, "acc_gen70": 0.30})
    write_run(res, "cgan", 1, {"fid70_train": 22.0, "acc_gen70": 0.34})
    write_run(res, "gan", 0, {"fid70_train": 30.0})
    write_run(res, "vae", 0, {"fid70_train": 30.0})
    baseline = {"suite": "t", "models": {
        "cgan/default": {"fid70_train": entry(18.0, 1.0, 2), "acc_gen70": entry(0.32, 0.0, 2, hib=True)},
        "gan/default": {"fid70_train": entry(40.0), "acc_gen70": entry(0.2, hib=True)},
        "flow/default": {"fid70_train": entry(40.0)}}}
    return res, baseline


def write_baseline(tmp_path: Path, data, name: str = "baseline.json") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p
