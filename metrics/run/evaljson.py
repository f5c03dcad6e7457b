"""eval.json: read, merge (never replace) and write atomically under a file lock.

Layout: ``{"metrics": {name: entry}, "references": {name: entry}, "references_note", "evaluations": [...],
"protocol_version", "versions", "device", "run", "source", "data", "evaluator", "wall_s"}``. Files written
before the rename keep the real-data entries under ``floors`` (and ``floors_note``):
:func:`references_of` reads either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from exprbench.core.errors import UserError


def references_of(ev: dict | None) -> dict:
    """The real-data reference entries of eval.json content: ``references``, else the former ``floors``."""
    if not ev:
        return {}
    refs = ev.get("references")
    return dict(refs if refs is not None else ev.get("floors") or {})


def references_note_of(ev: dict | None) -> str | None:
    """How the references were computed: ``references_note``, else the former ``floors_note``."""
    return (ev or {}).get("references_note") or (ev or {}).get("floors_note")


HISTORY_KEYS = ("value", "std", "ci95", "status", "reason", "n_samples", "seed", "extractor_sha256", "wall_s",
                "evaluated_at", "step", "commit")


def read_eval(path: str | os.PathLike) -> dict | None:
    """The eval.json at ``path``, or None when there is none.

    Raises:
        UserError: the file exists but is not valid JSON or not an eval.json (nothing is overwritten).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); move it away to evaluate again "
                        "(it is never overwritten)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; move it away to evaluate again") from None
    if not isinstance(old, dict) or not isinstance(old.get("metrics", {}), dict):
        raise UserError(f"{path}: not an eval.json (no 'metrics' object); move it away to evaluate again")
    return old


def _snapshot(entry: dict, old: dict) -> dict:
    """An earlier entry as kept in ``history``: its value and where it came from (step, commit, time)."""
    snap = {k: entry[k] for k in HISTORY_KEYS if k in entry}
    snap.setdefault("evaluated_at", old.get("evaluated_at"))
    snap.setdefault("step", (old.get("run") or {}).get("step"))
    snap.setdefault("commit", (old.get("versions") or {}).get("git_commit"))
    return snap


def merge_eval(old: dict | None, new: dict) -> dict:
    """Merge the content of a new evaluation into an existing eval.json.

    Each protocol of ``new`` replaces the entry of the same name and keeps the replaced one (value,
    status, step, commit, time) at the end of its ``history`` list when it had a value (status
    ``ok``); a new ``skipped`` entry does not replace an earlier ``ok`` one (nothing was measured).
    Entries of other protocols are kept as they were; references are updated by name (an old file's
    ``floors`` are read as its references); ``evaluations`` lists every evaluation (time, step, protocols).
    The top-level fields (run, versions, device, wall_s) are those of ``new``.
    """
    if not old:
        return new
    metrics = dict(old.get("metrics") or {})
    refs = dict(references_of(old))
    kept = []
    for name, e in new["metrics"].items():
        prev = metrics.get(name)
        if prev is not None and e.get("status") == "skipped" and prev.get("status") == "ok":
            kept.append(name)
            continue
        if prev is not None:
            hist = list(prev.get("history") or [])
            if prev.get("status") == "ok":  # a value to keep (skipped / unavailable entries had none)
                hist.append(_snapshot(prev, old))
            e = {**e, "history": hist} if hist else e
        metrics[name] = e
        refs[name] = new["references"][name]
    evaluations = list(old.get("evaluations") or [])
    if not evaluations and old.get("metrics"):  # an eval.json of before this field: describe it
        evaluations.append({"evaluated_at": old.get("evaluated_at"), "step": (old.get("run") or {}).get("step"),
                            "commit": (old.get("versions") or {}).get("git_commit"),
                            "protocols": list(old["metrics"]), "wall_s": old.get("wall_s")})
    last = dict(new["evaluations"][-1])
    if kept:
        last["kept_earlier_ok"] = kept
    out = {k: v for k, v in new.items() if k not in ("floors", "floors_note")}
    return {**out, "metrics": metrics, "references": refs, "evaluations": evaluations + [last]}


def write_eval(out_dir: Path, new: dict, extra_files: dict | None = None) -> dict:
    """Merge ``new`` into ``out_dir/eval.json`` under a file lock and write it atomically.

    ``extra_files``: ``{name: json object}`` written beside it under the same lock (``source.json``). The lock
    file (``.eval.json.lock``) is deleted after use (:func:`exprbench.core.io.file_lock`). Returns the merged content.
    """
    from exprbench.core.io import file_lock, write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(out_dir / ".eval.json.lock"):
        merged = merge_eval(read_eval(out_dir / "eval.json"), new)
        for name, obj in (extra_files or {}).items():
            write_json(out_dir / name, obj)
        write_json(out_dir / "eval.json", merged)
    return merged


PARTIAL_NAME = ".eval.partial.json"


class PartialEval:
    """The protocols an evaluation has finished so far, kept in ``run_dir/.eval.partial.json`` after each
    protocol, so that an evaluation that was stopped (Ctrl-C, a killed job, the end of a session) and is
    started again on the same checkpoint, data and evaluator runs only the protocols still missing. The
    file is removed once eval.json is written; it never holds anything that eval.json would not.

    Args:
        path: the partial file (``run_dir / PARTIAL_NAME``).
        key: what the kept entries were computed from (step, checkpoint file, data fingerprint, evaluator
            sha256, bootstrap draws); a file with another key is ignored and overwritten.
    """

    def __init__(self, path: Path, key: dict) -> None:
        self.path, self.key = Path(path), dict(key)

    def finished(self, names) -> tuple[dict, dict]:
        """``(metrics, references)`` kept for ``names`` under this key ({} each when there is no usable file)."""
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}, {}
        if not isinstance(old, dict) or old.get("key") != self.key:
            return {}, {}
        metrics, refs = old.get("metrics") or {}, old.get("references") or {}
        keep = [n for n in names if n in metrics and n in refs]
        return {n: metrics[n] for n in keep}, {n: refs[n] for n in keep}

    def save(self, metrics: dict, refs: dict) -> None:
        """Write the finished entries (atomically)."""
        from exprbench.core.io import write_json

        write_json(self.path, {"key": self.key, "metrics": metrics, "references": refs})

    def remove(self) -> None:
        """Delete the file (the evaluation is in eval.json)."""
        self.path.unlink(missing_ok=True)
