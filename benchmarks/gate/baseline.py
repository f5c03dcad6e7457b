"""The regression baseline file (``baseline.json``, written by ``exprbench report``) and its schema.

``{"suite": ..., "references": {column: real-data value}, "models": {"model/config": {column:
{"mean", "std", "n", "higher_is_better"}}}}``; baselines written before the rename carry the real-data
values under ``floors`` and are read the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exprbench.core.errors import UserError


class MetricEntry(BaseModel):
    """One metric of one model in a baseline: mean (and std, seed count, direction) over seeds."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)
    mean: float
    std: Optional[float] = Field(None, ge=0)
    n: Optional[int] = Field(None, ge=1)
    higher_is_better: Optional[bool] = None


class BaselineFile(BaseModel):
    """The schema of ``baseline.json``: ``{"models": {"model/config": {metric: MetricEntry}}}``
    (other top-level keys, such as ``suite`` and ``references`` (formerly ``floors``), are not used by
    the gate)."""

    model_config = ConfigDict(strict=True, extra="allow")
    models: Dict[str, Dict[str, MetricEntry]]


_KIND = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
         float: "a number", type(None): "null"}


def _problem(err: dict) -> str:
    """One pydantic error -> 'model 'cgan/default', metric 'fid': 'mean' must be a number (got a string "x")'."""
    loc, kind = list(err["loc"]), err["type"]
    got = err.get("input")
    got_txt = f"{_KIND.get(type(got), type(got).__name__)} {json.dumps(got)[:40]}" if not isinstance(got, dict) else "an object"
    where = []
    if loc and loc[0] == "models":
        if len(loc) > 1:
            where.append(f"model {loc[1]!r}")
        if len(loc) > 2:
            where.append(f"metric {loc[2]!r}")
        fld = ".".join(str(x) for x in loc[3:])
    else:
        fld = ".".join(str(x) for x in loc)
    if kind == "missing":
        what = f"{fld!r} is missing"
    elif kind in ("dict_type", "model_type") and len(loc) <= 3:
        what = {1: "'models' must be an object {\"model/config\": {metric: {...}}}",
                2: "must be an object {metric: {mean, std, n, higher_is_better}}",
                3: "must be an object {mean, std, n, higher_is_better}"}[max(len(loc), 1)] + f", got {got_txt}"
    else:
        what = f"{fld!r}: {err['msg'][0].lower() + err['msg'][1:]}, got {got_txt}"
    return f"{', '.join(where)}: {what}" if where else what


def validate_baseline(data, path: str | Path = "baseline") -> dict:
    """Check parsed baseline JSON against :class:`BaselineFile`; returns it unchanged.

    Raises:
        UserError: one line naming the file, the model/metric key and what is wrong (and how many more
            problems there are); also for a model key that is not ``model/config`` or no models at all.
    """
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a baseline: expected a JSON object with 'models', got "
                        f"{_KIND.get(type(data), type(data).__name__)}")
    if "models" not in data:
        raise UserError(f"{path}: not a baseline (no 'models' table; write one with `exprbench report`)")
    try:
        BaselineFile.model_validate(data)
    except ValidationError as e:
        errs = e.errors()
        more = f" (and {len(errs) - 1} more problem{'s' * (len(errs) > 2)})" if len(errs) > 1 else ""
        raise UserError(f"{path}: {_problem(errs[0])}{more}") from None
    if not data["models"]:
        raise UserError(f"{path}: 'models' is empty: the baseline gates nothing")
    bad = [k for k in data["models"] if "/" not in k.strip("/")]
    if bad:
        raise UserError(f"{path}: model {bad[0]!r}: key must be 'model/config' (e.g. 'cgan/default')")
    return data


MAX_BASELINE_BYTES = 64 * 2**20  # a baseline of a few hundred models is a few hundred KB


def load_baseline(path: str | Path) -> dict:
    """Read and validate a baseline JSON (:class:`BaselineFile`).

    At most :data:`MAX_BASELINE_BYTES` are read (``--baseline /dev/zero`` ends), and JSON nested deeper than
    Python recurses is refused like any other malformed file.

    Raises:
        UserError: missing, unreadable, not a regular file, over 64 MiB, malformed or too deeply nested
            JSON, or a schema violation (see :func:`validate_baseline`).
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_BASELINE_BYTES + 1)
        if len(raw) > MAX_BASELINE_BYTES:
            kind = "" if p.is_file() else " (and not a regular file)"
            raise UserError(f"{p}: over {MAX_BASELINE_BYTES >> 20} MiB{kind}: not a baseline of exprbench report")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"baseline not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: cannot read baseline ({getattr(e, 'strerror', None) or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{p}:{e.lineno}: malformed JSON ({e.msg})") from None
    except RecursionError:
        raise UserError(f"{p}: JSON nested too deeply (over {sys.getrecursionlimit()} levels): not a baseline") from None
    return validate_baseline(data, p)



def baseline_references(base: dict) -> dict:
    """The real-data values of a baseline: ``references`` (new name) or ``floors`` (old name)."""
    refs = base.get("references")
    if not isinstance(refs, dict):
        refs = base.get("floors")
    return refs if isinstance(refs, dict) else {}
