"""Adding protocols to a stored metric validity study (``exprbench metrics validate --update``).

The protocols studied now replace their records in the stored ``validity.json``; every other protocol's
records are kept as stored. A criteria row reads only its own protocol's records and the study's settings
(:func:`~.validity_criteria.criteria_table`), so the rows are judged again from the merged records
(:func:`~.validity_criteria.judge`) once :func:`check_update` has made sure the update shares the study's settings.
"""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from exprbench.core.errors import UserError
from exprbench.core.io import read_json_object

from exprbench.metrics.protocols.catalog import all_metrics, resolve_metric


# settings an update must share with the study, in the order they are checked, and how the user sets them
SETTINGS = {"quick": "--quick", "n": "--n", "ci_draws": "--ci-draws", "progress": "--progress points",
            "pair": "--pair runs", "fingerprint": "the data fingerprint", "evaluator_sha256": "the evaluator weights sha256",
            "per_class_n": "the per-class count", "seed": "the study seed", "ci_tolerance": "the monotone tolerance",
            "strengths": "the strengths", "drop_order": "the emotion drop order", "cas_conditions": "the CAS conditions"}
# run settings an update may leave out (its protocols then have no progress / pair records)
RUN_SETTINGS = ("progress", "pair")
STUDY_KEYS = ("study", "records", "criteria", "skipped")
NOT_IN_UPDATE = ("what", "drop_labels", "per_class_note", "strengths", "cas_conditions", "updates")


def load_study(out: Path) -> dict:
    """The study stored in ``out/validity.json``.

    Raises:
        UserError: no ``validity.json`` in ``out``, or one that is not valid JSON or not a study.
    """
    f = Path(out) / "validity.json"
    if not f.is_file():
        raise UserError(f"--update: no study in {out} (no validity.json); leave out --update to make one")
    data = read_json_object(f, "a validity study", hint="leave out --update to make a fresh study")
    missing = [k for k in STUDY_KEYS if k not in data]
    if missing:
        raise UserError(f"{f}: not a validity study (no {', '.join(missing)})")
    return data


def settings(meta: dict) -> dict:
    """The settings of :data:`SETTINGS` that a study's (or an update's) metadata records; weights sha256s
    only where recorded (studies before they were recorded have none)."""
    out = {k: meta[k] for k in SETTINGS if k in meta and k not in ("fingerprint", "evaluator_sha256")}
    out["fingerprint"] = (meta.get("data") or {}).get("fingerprint")
    if meta.get("evaluator_sha256"):
        out["evaluator_sha256"] = meta["evaluator_sha256"]
    for space, sha in (meta.get("extractors_sha256") or {}).items():
        out[f"sha256 {space}"] = sha
    return out


def _runs(key: str, v):
    """Run paths of ``progress`` / ``pair`` made absolute (a study may record them relative)."""
    if key == "progress" and isinstance(v, list):
        return [os.path.realpath(p.rpartition("@")[0]) + "@" + p.rpartition("@")[2] for p in v]
    if key == "pair" and isinstance(v, dict):
        return {k: os.path.realpath(p) for k, p in v.items()}
    return v


def _show(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 90 else s[:87] + "..."


def check_update(stored: dict, meta: dict, where: Path) -> None:
    """Refuse an update whose settings differ from those of the stored study or of any earlier update.

    An update may leave out the study's ``--progress`` / ``--pair`` runs (e.g. when they are no longer on
    disk): its protocols then get no progress / pair records and those criteria cells read n.a.

    Args:
        stored: the stored study (:func:`load_study`).
        meta: the new run's metadata (:func:`~.validity.run_study`), before any image is scored.
        where: the study's folder, for the message.

    Raises:
        UserError: the first setting (:data:`SETTINGS`, a feature space's weights sha256) that differs.
    """
    new = settings(meta)
    for i, entry in enumerate([stored["study"], *stored["study"].get("updates", [])]):
        old = settings(entry)
        for key in [*SETTINGS, *sorted(k for k in new if k.startswith("sha256 "))]:
            if key not in old or key not in new or old[key] == new[key]:
                continue
            if key in RUN_SETTINGS and (not new[key] or (i > 0 and not old[key])):
                continue  # an update without these runs studies no progress / pair: those cells read n.a.
            if _runs(key, old[key]) == _runs(key, new[key]):
                continue
            what = SETTINGS.get(key) or f"the {key.split(' ', 1)[1]} weights sha256"
            raise UserError(f"--update {where}: {what} {_show(new[key])} differs from the study's {_show(old[key])}; "
                            "an update must use the study's settings (leave out --update for a fresh study)")


def _protocol(name: str, records: list[dict]) -> dict:
    from exprbench.metrics.validity.criteria import protocol_row

    r = next((r for r in records if r["protocol"] == name), None)
    if r is None:
        s = resolve_metric(name)
        return protocol_row(name, s.family, s.extractor, s.direction)
    return protocol_row(name, r["family"], r["space"], r["direction"])


def _interleave(kept: list[dict], new: list[dict]) -> list[dict]:
    """``kept`` in its order, each new record after the last kept one of its (condition, strength), where a
    study that ran every protocol at once would list it; conditions the stored study lacks come last."""
    last = {(r["condition"], r["strength"]): i for i, r in enumerate(kept)}
    after: dict[int, list[dict]] = {}
    for r in new:
        after.setdefault(last.get((r["condition"], r["strength"]), len(kept)), []).append(r)
    out: list[dict] = []
    for i, r in enumerate(kept):
        out += [r, *after.get(i, [])]
    return out + after.get(len(kept), [])


def merge_study(stored: dict, result: dict, command: str, date: str | None = None) -> dict:
    """The stored study with the protocols of ``result`` studied again (or added).

    Args:
        stored: the stored study (:func:`load_study`), checked with :func:`check_update`.
        result: the new run (:func:`~.validity.run_study`).
        command: the command line of the update, recorded in ``study.updates``.
        date: ISO 8601 UTC time of the update (default: now).

    Returns:
        The merged study: records of ``result``'s protocols replace theirs, other records unchanged and in
        their order; criteria and verdicts judged again from the merged records; ``skipped`` without the
        protocols studied now; ``study`` the stored one, with ``cas`` set when CAS was studied (and
        ``cas_scored``, what its classifiers were trained on, taken from the update) and the new run's
        metadata appended to ``updates``.
    """
    from exprbench.metrics.validity.criteria import judge

    now = [c["protocol"] for c in result["criteria"]]
    kept = [r for r in stored["records"] if r["protocol"] not in now]
    records = _interleave(kept, result["records"])
    names = list(dict.fromkeys([c["protocol"] for c in stored["criteria"]] + now))
    order = {n: i for i, n in enumerate(all_metrics())}
    names.sort(key=lambda n: order.get(n, len(order)))  # registry order, as a fresh study; unknown names last
    studied = set(names)
    skipped = {s["protocol"]: s for s in stored["skipped"] if s["protocol"] not in studied}
    skipped.update({s["protocol"]: s for s in result["skipped"] if s["protocol"] not in studied})
    meta = copy.deepcopy(stored["study"])
    meta["cas"] = bool(meta.get("cas")) or bool(result["study"].get("cas"))
    if result["study"].get("cas_scored"):  # what CAS was trained on now (its earlier records are replaced)
        meta["cas_scored"] = result["study"]["cas_scored"]
    update = {k: v for k, v in result["study"].items() if k not in NOT_IN_UPDATE}
    update.update(protocols=now, command=command,
                  date=date or datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    meta["updates"] = [*meta.get("updates", []), update]
    crit, verdicts = judge(records, [_protocol(n, records) for n in names], bool(meta.get("progress")),
                           meta.get("pair") is not None)
    return {"study": meta, "skipped": list(skipped.values()), "records": records, "criteria": crit,
            "verdicts": verdicts}
