"""``exprbench metrics validate --update`` on small fake studies: the merge keeps the other protocols' records
byte for byte, replaces the studied protocol's, judges the table again and drops the notes it made untrue;
settings that would make the merged table inconsistent are refused."""

from __future__ import annotations

import copy
import json

import pytest

from exprbench.core.errors import UserError
from exprbench.metrics.validity.criteria import CAS_CONDITIONS, judge
from exprbench.metrics.validity.study_files import notes, write_study
from exprbench.metrics.validity.update import check_update, load_study, merge_study

PROTOCOLS = {  # name -> (family, space, direction)
    "fid10k_train": ("fid", "fer-evaluator", "lower"),
    "acc_gen": ("acc_gen", "fer-evaluator", "higher"),
    "cas": ("cas", "cas-classifier", "higher"),
}
CONDITIONS = {"blur": 5, "noise": 5, "jpeg": 5, "contrast": 5, "shift": 5, "drop_emotions": 4, "collapse": 4,
              "memorisation": 4, "progress": 3, "pair": 2}


def _records(protocol: str, slope: float = 1.0) -> list[dict]:
    fam, space, direction = PROTOCOLS[protocol]
    sign = 1.0 if direction == "lower" else -1.0
    out = []
    for cond, k in CONDITIONS.items():
        if fam == "cas" and cond not in CAS_CONDITIONS:
            continue
        for st in range(k):
            worse = st if cond != "progress" else k - 1 - st  # later checkpoints are better
            out.append({"protocol": protocol, "evaluated": protocol, "family": fam, "space": space,
                        "direction": direction, "condition": cond, "strength": st, "param": st * 10,
                        "value": 1.0 + sign * slope * 0.1 * worse, "ci95": [0.9, 1.1], "status": "ok", "reason": None,
                        "n": 40, "seed": 0, "wall_s": 0.5, "cpu_s": 0.4})
    return out


def _study(protocols, skipped=(), slope: float = 1.0, **meta) -> dict:
    recs = [r for p in protocols for r in _records(p, slope)]
    protos = [{"protocol": p, "family": PROTOCOLS[p][0], "space": PROTOCOLS[p][1], "direction": PROTOCOLS[p][2],
               "cas": p == "cas"} for p in protocols]
    crit, verdicts = judge(recs, protos, True, True)
    study = {"n": 40, "per_class_n": 35, "per_class_note": "per-class protocols at 5 per emotion", "seed": 0,
             "quick": False, "cas": "cas" in protocols, "cas_conditions": list(CAS_CONDITIONS), "ci_draws": 20,
             "ci_tolerance": 0.25, "strengths": {"blur": [0.0, 0.5, 1.0, 1.5, 2.0]}, "drop_order": ["happy", "sad"],
             "drop_labels": "labels kept", "commit": "c0ffee", "versions": {},
             "data": {"path": "fer.csv", "fingerprint": "f" * 64, "scored": "the 70 faces"},
             "hardware": {"device": "cpu"}, "progress": ["/runs/a@1", "/runs/a@2", "/runs/a@3"],
             "pair": {"untrained": "/runs/u", "faces": "/runs/a"}, "wall_s": 10.0, "cpu_s": 9.0, **meta}
    return {"study": study, "skipped": [dict(s) for s in skipped], "records": recs, "criteria": crit,
            "verdicts": verdicts}


CAS_SKIP = {"protocol": "cas", "space": "cas-classifier", "reason": "CAS trains a classifier per condition: pass --cas"}


def _dumps(records, protocol=None):
    return [json.dumps(r, sort_keys=True) for r in records if protocol is None or r["protocol"] != protocol]


def test_merge_adds_cas_and_keeps_the_other_records():
    stored = json.loads(json.dumps(_study(["fid10k_train", "acc_gen"], [CAS_SKIP])))  # as read back from the file
    assert any(line.startswith("CAS: not run") for line in notes(stored))
    before = copy.deepcopy(stored)
    new = _study(["cas"], wall_s=3.0, evaluator_sha256="e" * 64)
    merged = merge_study(stored, new, "exprbench metrics validate --only cas --cas", date="2026-12-02T08:00:00+00:00")
    assert stored == before, "the stored study is not changed in place"
    assert _dumps(merged["records"], "cas") == _dumps(stored["records"])  # same bytes, same order
    assert _dumps([r for r in merged["records"] if r["protocol"] == "cas"]) == _dumps(new["records"])
    assert [c["protocol"] for c in merged["criteria"]] == ["fid10k_train", "acc_gen", "cas"]  # registry order
    assert merged["criteria"][:2] == stored["criteria"]
    cas = merged["verdicts"][2]
    assert cas["drop_emotions"] == "pass" and cas["progress"] == "pass" and cas["blur"] == "n.a."
    assert merged["skipped"] == []
    lines = notes(merged)
    assert not any("not run" in line for line in lines) and any(line.startswith("CAS: trains") for line in lines)
    assert any(line.startswith("update 2026-12-02T08:00:00+00:00") and "studied cas" in line for line in lines)
    meta = merged["study"]
    assert meta["cas"] is True and meta["wall_s"] == 10.0 and meta["commit"] == "c0ffee"  # the original run's
    (u,) = meta["updates"]
    assert u["protocols"] == ["cas"] and u["command"].endswith("--only cas --cas") and u["wall_s"] == 3.0
    assert u["n"] == 40 and u["ci_draws"] == 20 and u["evaluator_sha256"] == "e" * 64


def test_merge_replaces_the_studied_protocol_and_judges_again(tmp_path):
    stored = _study(["fid10k_train", "acc_gen"])
    assert stored["verdicts"][0]["blur"] == "pass"
    new = _study(["fid10k_train"], slope=0.0)  # flat: every monotone criterion fails "no response"
    merged = merge_study(stored, new, "exprbench metrics validate --only fid10k_train --update")
    fid = [r for r in merged["records"] if r["protocol"] == "fid10k_train"]
    assert len(fid) == len(new["records"]) and all(r["value"] == 1.0 for r in fid)
    assert _dumps(merged["records"], "fid10k_train") == _dumps(stored["records"], "fid10k_train")
    assert merged["verdicts"][0]["blur"] == "fail" and "no response" in merged["criteria"][0]["blur"]
    assert merged["criteria"][1] == stored["criteria"][1]
    write_study(merged, tmp_path, figures=False)
    again = load_study(tmp_path)
    assert again["criteria"] == merged["criteria"] and len(again["study"]["updates"]) == 1
    twice = merge_study(again, _study(["acc_gen"]), "second update")
    assert [u["command"] for u in twice["study"]["updates"]] == [
        "exprbench metrics validate --only fid10k_train --update", "second update"]


@pytest.mark.parametrize("change, what", [
    ({"n": 41}, "--n"),
    ({"ci_draws": 0}, "--ci-draws"),
    ({"quick": True}, "--quick"),
    ({"data": {"fingerprint": "0" * 64}}, "data fingerprint"),
    ({"progress": ["/runs/a@1", "/runs/a@2"]}, "--progress"),
    ({"pair": {"untrained": "/runs/x", "faces": "/runs/a"}}, "--pair"),
    ({"evaluator_sha256": "1" * 64}, "evaluator weights sha256"),
    ({"extractors_sha256": {"fer-multilayer": "1" * 64}}, "fer-multilayer weights sha256"),
])
def test_check_update_refuses_other_settings(change, what):
    stored = _study(["fid10k_train"], evaluator_sha256="e" * 64, extractors_sha256={"fer-multilayer": "m" * 64})
    meta = {**copy.deepcopy(stored["study"]), **change}
    with pytest.raises(UserError) as e:
        check_update(stored, meta, "out")
    assert what in str(e.value) and "\n" not in str(e.value)


def test_check_update_accepts_the_same_settings(tmp_path, monkeypatch):
    stored = _study(["fid10k_train"])  # recorded no weights sha256 (an older study): not compared
    check_update(stored, {**stored["study"], "evaluator_sha256": "e" * 64, "wall_s": 1.0}, "out")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    rel = {**stored["study"], "progress": [f"{tmp_path}/runs/a@1"], "pair": {"untrained": "runs/u", "faces": "runs/a"}}
    same = {**rel, "progress": ["runs/a@1"], "pair": {"untrained": f"{tmp_path}/runs/u", "faces": f"{tmp_path}/runs/a"}}
    check_update({**stored, "study": rel}, same, "out")  # the same runs, given relative or absolute
    later = merge_study(stored, _study(["acc_gen"], evaluator_sha256="e" * 64), "update")
    with pytest.raises(UserError, match="evaluator weights sha256"):  # an earlier update recorded it
        check_update(later, {**stored["study"], "evaluator_sha256": "1" * 64}, "out")


def test_update_without_the_study_runs_leaves_their_cells_na():
    stored = _study(["fid10k_train", "acc_gen"], [CAS_SKIP])
    check_update(stored, {**stored["study"], "progress": [], "pair": None}, "out")  # runs no longer on disk
    new = _study(["cas"], progress=[], pair=None)
    new["records"] = [r for r in new["records"] if r["condition"] not in ("progress", "pair")]
    merged = merge_study(stored, new, "exprbench metrics validate --only cas --cas --update")
    cas = {c["protocol"]: c for c in merged["criteria"]}["cas"]
    assert "updated without --progress" in cas["progress"] and cas["drop_emotions"].startswith("pass")
    assert merged["criteria"][:2] == stored["criteria"]  # the other protocols keep their progress cells
    assert merged["study"]["progress"] == stored["study"]["progress"]
    check_update(merged, stored["study"], "out")  # a later update may give the study's runs again
    with pytest.raises(UserError, match="--progress"):
        check_update(merged, {**stored["study"], "progress": ["/runs/b@1"]}, "out")


def test_load_study_needs_a_study(tmp_path):
    with pytest.raises(UserError, match="no validity.json"):
        load_study(tmp_path)
    (tmp_path / "validity.json").write_text('{"records": []}')
    with pytest.raises(UserError, match="not a validity study"):
        load_study(tmp_path)
