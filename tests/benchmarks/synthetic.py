"""Synthetic result directories for the report tests: the files a run leaves (config.json,
status.json, record.json, eval.json, curve.jsonl, source.json), no model and no dataset."""

from __future__ import annotations

import json
from pathlib import Path

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _metric(value: float, **details) -> dict:
    return {"status": "ok", "value": value, "n_samples": 70, "seed": 0, "extractor": "fer-evaluator",
            "details": details}


def eval_json(fid: float, acc: float | None = None, precision: float = 0.5, recall: float = 0.4) -> dict:
    """An eval.json with fid70_train, pr70_train (precision/recall in details) and optionally acc_gen70."""
    metrics = {"fid70_train": _metric(fid, n_real=70),
               "pr70_train": _metric(2 * precision * recall / (precision + recall), precision=precision, recall=recall,
                                     f_score=2 * precision * recall / (precision + recall))}
    if acc is not None:
        cm = [[10 if i == j else 1 for j in range(7)] for i in range(7)]
        metrics["acc_gen70"] = _metric(acc, class_names=CLASSES, confusion_matrix=cm)
    floors = {"fid70_train": _metric(0.05), "pr70_train": _metric(0.9, precision=0.92, recall=0.88),
              "acc_gen70": _metric(0.66)}
    return {"metrics": metrics, "floors": floors, "protocol_version": "exprbench-metrics/1",
            "evaluator": {"sha256": "ab" * 32, "test_accuracy": 0.66}, "device": "cpu (x86_64, 1 threads)",
            "floors_note": "real test images in place of generated ones", "wall_s": 3.0}


def write_run(root: Path, model: str, seed: int, ev: dict | None, bench: bool = True, config: str = "default",
              curve: bool = True) -> Path:
    """A run directory as `bench` (record.json) or `train` + `evaluate` (no record) leave it."""
    run = root / f"{model}-{config}-s{seed}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": model, "config_name": config, "train": {"seed": seed},
                                                 "data": {"label_set": "fer7"}}))
    (run / "status.json").write_text(json.dumps({"status": "completed", "device": "cpu", "step": 6,
                                                 "device_name": "cpu (x86_64, 1 threads)", "train_seconds": 12.0 + seed,
                                                 "img_per_s": 100.0 + seed, "versions": {"git_commit": "abc1234"}}))
    if ev is not None:
        (run / "eval.json").write_text(json.dumps(ev))
    if bench:
        (run / "record.json").write_text(json.dumps({"status": "done", "eval_wall_s": 3.0, "device": "cpu",
                                                     "device_name": "cpu (x86_64, 1 threads)"}))
    if curve:
        fid = ev["metrics"]["fid70_train"]["value"] if ev else 0.0
        (run / "curve.jsonl").write_text("".join(json.dumps({"step": s, "fid70_train": fid + 6 - s}) + "\n"
                                                 for s in (3, 6)) if ev else "")
    return run


def write_images_entry(root: Path, name: str | None, fid: float) -> Path:
    """What `exprbench evaluate --images DIR --out OUTDIR` leaves: eval.json and source.json."""
    out = root / "external-folder"
    out.mkdir(parents=True)
    ev = {**eval_json(fid), "run": {"model": name, "config": "images", "seed": None, "step": None},
          "source": {"kind": "images", "name": name}}
    (out / "eval.json").write_text(json.dumps(ev))
    (out / "source.json").write_text(json.dumps({"kind": "images", "images": {"path": "/somewhere/pngs", "n": 70},
                                                 **({"name": name} if name else {})}))
    return out


def make_results(tmp: Path) -> Path:
    """A results dir: gan (bench, 2 seeds), cgan (bench, 3 seeds, one collapsed), vae (train+evaluate),
    plus an images entry named 'ddpm'."""
    res = tmp / "results"
    runs = res / "runs"
    write_run(runs, "gan", 0, eval_json(12.0))
    write_run(runs, "gan", 1, eval_json(10.0))
    write_run(runs, "cgan", 0, eval_json(30.0, acc=0.2), curve=True)
    write_run(runs, "cgan", 1, eval_json(8.0, acc=0.4, precision=0.6, recall=0.5))
    write_run(runs, "cgan", 2, eval_json(9.0, acc=0.35))
    write_run(runs, "vae", 0, eval_json(15.0, acc=0.25), bench=False, curve=False)
    write_images_entry(runs, "ddpm", 7.5)
    (res / "suite.json").write_text(json.dumps({"suite": "synthetic", "grid": ["gan-default-s0", "gan-default-s1",
                                                "cgan-default-s0", "cgan-default-s1", "cgan-default-s2"],
                                                "metrics": ["fid70_train", "pr70_train", "acc_gen70"]}))
    return res


def _grid_png(path: Path, rows: int, cols: int, cell: tuple[int, int] = (12, 12), mode: str = "L") -> None:
    """A grid image of rows x cols cells, each a distinct flat grey (so crops and labels can be checked)."""
    import numpy as np
    from PIL import Image

    h, w = cell
    a = np.zeros((rows * h, cols * w), dtype=np.uint8)
    for i in range(rows):
        for j in range(cols):
            a[i * h:(i + 1) * h, j * w:(j + 1) * w] = (37 * i + 11 * j) % 256
    img = Image.fromarray(a)
    (img if mode == "L" else img.convert(mode)).save(path)


def write_figure_inputs(run: Path, names=("samples",), classes: list[str] | None = None, per_class: int = 8,
                        cell: tuple[int, int] = (12, 12)) -> dict:
    """What `exprbench evaluate` writes for the report into ``run/figures/``: the PNGs of ``names``
    (``samples``, ``translations``, ``edits``, ``closest_pairs``) and their ``index.json``.

    ``classes=None``: the CLASSES rows; ``[]``: an unconditional model (one row of samples).
    Returns the index written."""
    classes = CLASSES if classes is None else classes
    fig = run / "figures"
    fig.mkdir(parents=True, exist_ok=True)
    shapes = {"samples": (classes or ["samples"], [str(i) for i in range(per_class)], "fixed latents per class"),
              "translations": (classes, ["source", *classes], "translations of one test face per class"),
              "edits": ([f"to {c}" for c in classes], ["-1", "0", "1", "2"], "one latent edited toward each class"),
              "closest_pairs": (["sample", "train face"], [str(i) for i in range(6)],
                                "closest (sample, train face) pairs")}
    index = {}
    for name in names:
        rows, cols, what = shapes[name]
        _grid_png(fig / f"{name}.png", len(rows), len(cols), cell)
        index[name] = {"file": f"{name}.png", "rows": rows, "columns": cols, "cell": list(cell), "what": what}
    (fig / "index.json").write_text(json.dumps(index))
    return index
