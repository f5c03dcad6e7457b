"""``exprbench publish RESULTS_DIR --to DEST``: the committed form of a suite's results.

A suite's run directories hold checkpoints (optimizers, D, RNG states: tens of MB each) and
TensorBoard logs; what a leaderboard, a paper figure or a regression gate needs is much smaller. For
every completed grid point under ``RESULTS_DIR/runs/`` this writes ``DEST/runs/<point>/`` with

    config.json, status.json, record.json, eval.json, train.jsonl, curve.jsonl   (copied)
    samples/<newest>.png                                                       (the final sample sheet)
    (config.json values naming another run of RESULTS_DIR/runs/ become {runs}/<point>, see exprbench.runs.layout)
    weights.safetensors    the inference nets, EMA where used (exprbench.runs.weights; self-verifying),
                           stored in float16 by default (half the bytes)

plus ``DEST/suite.json`` and ``DEST/MANIFEST.sha256`` (``sha256sum -c`` format, one line per weights
file). ``exprbench sample``, ``evaluate`` and ``report`` work on ``DEST`` from a fresh clone: a run
directory with weights but no checkpoints loads its weights (``exprbench.runs.loader.load_trained``).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from exprbench.core.errors import UserError
from exprbench.core.io import file_sha256, read_json, write_json, write_text
from exprbench.runs.layout import collapse_runs

LIGHT_FILES = ("config.json", "status.json", "record.json", "eval.json", "train.jsonl", "curve.jsonl", "source.json")


def publish(results_dir: str | Path, dest: str | Path, dtype: str = "float16") -> list[Path]:
    """Publish every completed run of ``results_dir`` into ``dest``; returns the run directories written.

    ``dtype``: how the weights' floating-point tensors are stored (``float16`` or ``float32``). The copied
    eval.json comes from the run's own float32 weights: ``exprbench evaluate DEST/runs/<point>`` scores
    the published file itself (what the committed results do).

    Raises:
        UserError: ``results_dir`` has no ``runs/`` or no completed run; ``dest`` equals ``results_dir``.
    """
    from exprbench.runs.loader import load_trained
    from exprbench.runs.weights import FILENAME, export_weights

    src, dest = Path(results_dir), Path(dest)
    if not (src / "runs").is_dir():
        raise UserError(f"{src} has no runs/ directory (a suite's results directory, e.g. results/cpu)")
    if src.resolve() == dest.resolve():
        raise UserError(f"--to {dest} is the results directory itself: publish into another directory")
    done = [d for d in sorted((src / "runs").iterdir()) if (read_json(d / "record.json") or {}).get("status") == "done"]
    if not done:
        raise UserError(f"{src}/runs has no completed run (record.json status 'done')")
    written, manifest = [], _read_manifest(dest)
    for run in done:
        out = dest / "runs" / run.name
        out.mkdir(parents=True, exist_ok=True)
        for name in LIGHT_FILES:
            if (run / name).exists():
                shutil.copy2(run / name, out / name)
        # a config naming a sibling run (InterFaceGAN's model.base_run) names it as {runs}/<point> in the copy
        config = read_json(run / "config.json")
        if config and (moved := collapse_runs(config, src / "runs")) != config:
            write_json(out / "config.json", moved)
        sheets = sorted((run / "samples").glob("step_*.png"))
        if sheets:
            (out / "samples").mkdir(exist_ok=True)
            for old in (out / "samples").glob("step_*.png"):
                old.unlink()
            shutil.copy2(sheets[-1], out / "samples" / sheets[-1].name)
        for extra in ("figures", "figures_input"):  # figure inputs that evaluate wrote (read by report)
            if (run / extra).is_dir():
                shutil.copytree(run / extra, out / extra, dirs_exist_ok=True)
        if any((run / "checkpoints").glob("step_*.pt")) or (run / FILENAME).exists():
            _, model, spec, step = load_trained(run, "cpu")
            # the manifest follows the file at once: out of it while the file is replaced (the new file signs
            # itself), so a publish stopped at any moment leaves no stale entry
            if manifest.pop(f"runs/{run.name}/{FILENAME}", None) is not None:
                _write_manifest(dest, manifest)
            export_weights(model, dataclasses.asdict(spec), step, out / FILENAME, dtype)
            manifest[f"runs/{run.name}/{FILENAME}"] = file_sha256(out / FILENAME)
            _write_manifest(dest, manifest)
        written.append(out)
    if (src / "suite.json").exists():
        shutil.copy2(src / "suite.json", dest / "suite.json")
    _write_manifest(dest, manifest)
    return written


def _read_manifest(dest: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of ``dest/MANIFEST.sha256`` (empty when there is none)."""
    path = dest / "MANIFEST.sha256"
    lines = path.read_text().splitlines() if path.exists() else []
    return {ln.split("  ", 1)[1]: ln.split("  ", 1)[0] for ln in lines if "  " in ln}


def _write_manifest(dest: Path, manifest: dict[str, str]) -> None:
    """Write ``dest/MANIFEST.sha256`` (``sha256sum -c`` format, sorted by path) atomically."""
    write_text(dest / "MANIFEST.sha256", "".join(f"{manifest[k]}  {k}\n" for k in sorted(manifest)))
