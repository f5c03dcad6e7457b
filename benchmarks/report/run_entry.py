"""One entry of a report: a run directory's result files (``config.json``, ``record.json``, ``eval.json``,
``status.json``, ``source.json``, ``curve.jsonl``) read into its row of the runs frame, its real-data
reference values and its curve points (:func:`read_entry`; :func:`.results.collect` reads every entry).

Only result files are read (no model, no dataset). The ``source`` of an entry says how it was made
(``bench``, ``train+evaluate``, ``images``). The real-data reference values are read from ``eval.json``'s
``references`` (the former name ``floors`` is read as well).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from exprbench.core.errors import UserError
from exprbench.core.io import read_json_object

from exprbench.benchmarks.compute import run_budget
from exprbench.benchmarks.report.columns import derived_columns, resolve_metric

REF_COUNT = "|n"  # refs["<protocol>|n"]: the count of real images of a reference (not a value: never in a baseline)
CI_LO, CI_HI = "|ci_lo", "|ci_hi"  # a run's bootstrap interval of a column (runs frame)


def references_of(ev: dict) -> dict:
    """The real-data reference entries of an eval.json: ``references`` (new name) or ``floors`` (old)."""
    refs = ev.get("references")
    if not isinstance(refs, dict):
        refs = ev.get("floors")
    return refs if isinstance(refs, dict) else {}


def warn(message: str) -> None:
    """Print one warning line on stderr (a result file the report reads around)."""
    print(message, file=sys.stderr, flush=True)


def read_entry(run: Path) -> tuple[dict, dict, list[dict]] | None:
    """``(row, references, curve)`` of one run directory, None when it is no entry.

    ``row``: its row of :func:`.results.collect`'s runs frame; ``references``: its real-data reference values
    ``{column: value}``; ``curve``: its periodic-metric points (model, config, seed, step, metric, value).
    None: no ``config.json``, ``record.json`` or ``eval.json``, or a hand-edited eval.json whose ``metrics`` is
    not an object (one warning line on stderr). A metric whose value is not a finite number is left out with
    a warning naming the file and key.

    Raises:
        UserError: a malformed result file (naming it).
    """
    files = _read_result_files(run)
    if files is None:
        return None
    cfg, rec, ev = files
    row = _run_row(run, cfg, rec, ev)
    _add_metric_cells(row, ev, run / "eval.json")
    refs = _reference_values(ev, run / "eval.json")
    return row, refs, _curve_points(run, row)


def _read_json_strict(path: Path) -> dict | None:
    """A JSON object file, None when missing; a malformed one is a UserError naming it."""
    if not path.is_file():
        return None
    return read_json_object(path, hint="re-run the command that wrote it")


def _read_result_files(run: Path) -> tuple[dict | None, dict | None, dict] | None:
    """``(config, record, eval)`` of a run directory (eval ``{}`` when absent), None to leave the run out."""
    cfg = _read_json_strict(run / "config.json")
    rec = _read_json_strict(run / "record.json")
    ev = _read_json_strict(run / "eval.json")
    if cfg is None and ev is None and rec is None:
        return None
    ev = ev or {}
    if not isinstance(ev.get("metrics", {}), dict):  # hand-edited: skip the run, say so
        warn(f"warning: {run / 'eval.json'}: 'metrics' is {type(ev['metrics']).__name__}, expected an object "
             "{protocol: entry}: run left out of the report")
        return None
    return cfg, rec, ev


def _source(run: Path, rec: dict | None) -> str:
    """How the entry was made: ``bench`` (a record), ``images`` (a ``source.json``), else ``train+evaluate``."""
    if rec is not None:
        return "bench"
    return "images" if (run / "source.json").is_file() else "train+evaluate"


def _model_config_seed(run: Path, src: str, cfg: dict | None, rec: dict | None, meta: dict) -> tuple:
    """The entry's model, config and seed: ``source.json``'s (images), ``config.json``'s, else eval.json's run's."""
    if src == "images":
        info = _read_json_strict(run / "source.json") or {}
        return (str(info.get("name") or run.name), str(info.get("config") or meta.get("config") or ""),
                info.get("seed", meta.get("seed")))
    if cfg is not None:
        return cfg["model"], cfg.get("config_name", ""), (cfg.get("train") or {}).get("seed")
    r = rec or {}
    return (meta.get("model") or r.get("model") or run.name, meta.get("config") or r.get("config") or "",
            meta.get("seed", r.get("seed")))


def _run_row(run: Path, cfg: dict | None, rec: dict | None, ev: dict) -> dict:
    """The entry's row less its metric columns: identity, status, source, device, timings, training budget."""
    status = _read_json_strict(run / "status.json") or {}
    src = _source(run, rec)
    meta = ev.get("run") if isinstance(ev.get("run"), dict) else {}
    model, config, seed = _model_config_seed(run, src, cfg, rec, meta)
    r = rec or {}
    state = r.get("status", "partial") if rec is not None else ("done" if ev.get("metrics") else "partial")
    step = status.get("step", meta.get("step"))
    versions = status.get("versions") or ev.get("versions") or {}
    return {"run": run.name, "model": str(model), "config": str(config), "seed": seed, "status": state,
            "source": src, "path": str(run.resolve()),
            "device": status.get("device") or r.get("device") or str(ev.get("device") or ""),
            "device_name": status.get("device_name") or r.get("device_name") or str(ev.get("device") or ""),
            "steps": step, "train_seconds": status.get("train_seconds"),
            "img_per_s": status.get("img_per_s"), "classes": _classes(ev, cfg),
            "eval_seconds": r.get("eval_wall_s", ev.get("wall_s")),
            "git_commit": versions.get("git_commit"),
            **run_budget(run, ((cfg or {}).get("train") or {}).get("batch_size"), step)}


def _details(entry) -> dict:
    """An eval.json entry's ``details`` object ({} when missing or not an object)."""
    d = entry.get("details") if isinstance(entry, dict) else None
    return d if isinstance(d, dict) else {}


def _classes(ev: dict, cfg: dict | None) -> int | None:
    """Number of classes of an entry (for the chance line), from its result files only: the
    ``class_names`` (or ``chance`` = 1/K) a metric recorded, else 2 for a CelebA attribute label set."""
    for entry in (ev.get("metrics") or {}).values():
        names = _details(entry).get("class_names")
        if isinstance(names, list) and names:
            return len(names)
    for entry in (ev.get("metrics") or {}).values():
        chance = _details(entry).get("chance")
        if isinstance(chance, (int, float)) and 0 < chance < 1:
            return round(1 / chance)
    label_set = ((cfg or {}).get("data") or {}).get("label_set") or (ev.get("run") or {}).get("label_set")
    if label_set and str(label_set).startswith("celeba"):
        return 2
    return None


def _ok_entries(entries: dict, path: Path, section: str):
    """The ``(name, entry)`` of ``entries`` (eval.json's ``section``) with status ``ok`` and a finite number as
    value; an ``ok`` entry whose value is anything else (a hand-edited NaN or string) is left out with a
    warning naming file and key."""
    for name, entry in (entries if isinstance(entries, dict) else {}).items():
        if not isinstance(entry, dict) or entry.get("status") != "ok":
            continue
        v = entry.get("value")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            warn(f"warning: {path}: {section}.{name}.value is {json.dumps(v)[:40]}, not a finite number: left out")
            continue
        yield name, entry


def _add_metric_cells(row: dict, ev: dict, path: Path) -> None:
    """Add the value, interval, derived details and kind text of each ``ok`` metric of eval.json to ``row``."""
    for name, entry in _ok_entries(ev.get("metrics") or {}, path, "metrics"):
        row[name] = float(entry["value"])
        details = _details(entry)
        _interval_cells(row, name, entry.get("ci95"))
        for key in derived_columns(name):
            if isinstance(details.get(key), (int, float)):
                row[f"{name}:{key}"] = float(details[key])
                _interval_cells(row, f"{name}:{key}", details.get(f"{key}_ci95"))
        kind = resolve_metric(name).kind_key
        if kind and kind[0] in details:
            row[kind[1]] = kind[3] if details[kind[0]] else kind[4]


def _interval_cells(row: dict, column: str, ci) -> None:
    """Add a ``[lo, hi]`` ci95 to ``row`` as the column's interval cells (nothing when it is not one)."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        row[f"{column}{CI_LO}"], row[f"{column}{CI_HI}"] = float(ci[0]), float(ci[1])


def _reference_values(ev: dict, path: Path) -> dict:
    """The real-data reference values of eval.json: each ``ok`` value, its image count and derived details."""
    refs: dict = {}
    for name, entry in _ok_entries(references_of(ev), path, "references"):
        refs.setdefault(name, float(entry["value"]))
        if isinstance(entry.get("n_samples"), int):
            refs.setdefault(f"{name}{REF_COUNT}", entry["n_samples"])
        details = _details(entry)
        for key in derived_columns(name):
            if isinstance(details.get(key), (int, float)):
                refs.setdefault(f"{name}:{key}", float(details[key]))
    return refs


def _curve_points(run: Path, row: dict) -> list[dict]:
    """The periodic-metric points of the run's ``curve.jsonl`` ([] when it has none)."""
    curve = run / "curve.jsonl"
    if not curve.is_file():
        return []
    points = []
    for rec in _read_curve(curve):
        for k, v in rec.items():
            if k != "step" and isinstance(v, (int, float)):
                points.append({"model": row["model"], "config": row["config"], "seed": row["seed"],
                               "step": rec["step"], "metric": k, "value": float(v)})
    return points


def _read_curve(path: Path) -> list[dict]:
    """The records of a ``curve.jsonl``; a malformed line is a UserError naming file and line."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i}: malformed JSON line ({e.msg}; a torn write?): fix or delete the line") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), (int, float)):
            raise UserError(f"{path}:{i}: expected an object with a numeric 'step'")
        rows.append(rec)
    return rows
