"""Run directories as the evaluation reads them: which dataset, which checkpoint, the trained model, the
training data's fingerprint."""

from __future__ import annotations

import json
import os
from pathlib import Path


from exprbench.core.errors import DataError, UserError


def resolve_eval_data_path(data, cfg_path) -> str:
    """Dataset path for an evaluation: ``data``, else the run's ``data.path``, else ``$EXPRBENCH_DATA``.

    Raises:
        DataError: an explicit path that does not exist, or none of the candidates exists.
    """
    if data is not None:
        if not Path(data).expanduser().exists():
            raise DataError(f"dataset not found: {data}")
        return str(data)
    tried = []
    for cand in (cfg_path, os.environ.get("EXPRBENCH_DATA") or None):
        if cand:
            tried.append(str(cand))
            if Path(cand).expanduser().exists():
                return str(cand)
    raise DataError("no dataset for the evaluation: pass --data PATH or set EXPRBENCH_DATA"
                    + (f" (not found: {', '.join(tried)})" if tried else ""))


def run_train_fingerprint(run_dir: Path) -> str | None:
    """The data fingerprint a run was trained on: ``status.json``'s ``data_fingerprint``, else the one in
    ``config.json`` (``data.fingerprint``), else None."""
    for name, get in (("status.json", lambda d: d.get("data_fingerprint")),
                      ("config.json", lambda d: (d.get("data") or {}).get("fingerprint"))):
        f = Path(run_dir) / name
        if f.exists():
            try:
                fp = get(json.loads(f.read_text()))
            except (json.JSONDecodeError, AttributeError):
                fp = None
            if fp:
                return str(fp)
    return None


def fingerprint_warnings(train_fp: str | None, eval_fp: str, path) -> list[str]:
    """One warning line when the run's training data fingerprint differs from the evaluation data's."""
    if train_fp is None or train_fp == eval_fp:
        return []
    return [f"warning: the run was trained on data with fingerprint {train_fp[:12]}, the evaluation data {path} has "
            f"{eval_fp[:12]}: its numbers compare the model with other data than it learned from"]


def check_fingerprint(run_dir: Path, train_fp: str | None, eval_fp: str, path, strict: bool) -> list[str]:
    """The data-identity check of an evaluation: the warning lines (see :func:`fingerprint_warnings`), or
    with ``strict`` a refusal.

    Raises:
        UserError: ``strict`` and the run's training data fingerprint (status.json ``data_fingerprint``)
            differs from the evaluation data's.
    """
    warnings = fingerprint_warnings(train_fp, eval_fp, path)
    if warnings and strict:
        raise UserError(f"{run_dir}: trained on data {train_fp[:12]}, the evaluation data {path} is {eval_fp[:12]} "
                        "(--strict refuses; drop --strict to evaluate with a warning, or pass --data with the "
                        "training data)")
    return warnings


def unfinished_warnings(run_dir: Path, step: int, budget_steps: int | None) -> list[str]:
    """A warning line when the evaluated checkpoint is not the end of a completed run (status.json not
    ``completed``, or ``step`` short of the config's ``train.steps``), else none."""
    from exprbench.core.io import read_json

    status = (read_json(Path(run_dir) / "status.json") or {}).get("status")
    short = budget_steps is not None and step < budget_steps
    if status in (None, "completed") and not short:
        return []
    what = f"status {status!r}" if status not in (None, "completed") else "completed"
    return [f"the run is unfinished ({what}, checkpoint step {step:,}" + (f" of {budget_steps:,}" if budget_steps else "")
            + "): these numbers describe a partly trained model"]

