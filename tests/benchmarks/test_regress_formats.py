"""``exprbench regress --format text|json|junit|markdown [--output FILE]``: the gate's reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from exprbench.cli import main

from ..regress_helpers import make_case, write_baseline

OPTS = ["--tolerance", "2sd", "--tolerance-floor", "10%"]


@pytest.fixture
def case(tmp_path):
    res, base = make_case(tmp_path)
    return res, write_baseline(tmp_path, base)


def _regress(case, *args):
    res, base = case
    return main(["regress", str(res), "--baseline", str(base), *OPTS, *args])


def test_json_report(case, capsys):
    assert _regress(case, "--format", "json") == 1
    rep = json.loads(capsys.readouterr().out)  # stdout holds the JSON only
    assert rep["verdict"] == "fail" and rep["exit_code"] == 1 and rep["hidden_missing"] == 0
    assert rep["counts"] == {"regressed": 1, "missing": 2, "improved": 1, "ok": 1, "new": 1}
    assert rep["summary"] == "quality regression: 1 regressed, 2 missing, 1 improved, 1 ok, 1 new in 4 models"
    assert rep["tolerance"] == "2sd, floor 10%"
    rows = {(r["model"], r["metric"]): r for r in rep["rows"]}
    fid = rows[("cgan/default", "fid70_train")]
    assert fid == {"model": "cgan/default", "metric": "fid70_train", "baseline": 18.0, "baseline_std": 1.0,
                   "current": 21.0, "delta": 3.0, "allowed": 2.0, "tolerance": "2 sd", "verdict": "regressed"}
    assert rows[("flow/default", "fid70_train")]["current"] is None
    assert rows[("flow/default", "fid70_train")]["note"] == "no completed run of this model"
    assert rows[("gan/default", "acc_gen70")]["note"] == "metric not in the results"

    assert _regress(case, "--format", "json", "--allow-missing") == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["hidden_missing"] == 2 and "missing" not in rep["counts"] and len(rep["rows"]) == 4


def test_junit_report(case, capsys):
    assert _regress(case, "--format", "junit") == 1
    root = ET.fromstring(capsys.readouterr().out.encode())
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 6 and suite.get("tests") == "6" and suite.get("failures") == "3" and suite.get("skipped") == "1"
    by = {(c.get("classname"), c.get("name")): c for c in cases}
    fail = by[("cgan/default", "fid70_train")].find("failure")
    assert fail.get("type") == "regressed" and "baseline 18 -> current 21" in fail.get("message")
    assert by[("flow/default", "fid70_train")].find("failure").get("type") == "missing"
    assert by[("cgan/default", "acc_gen70")].find("failure") is None
    assert by[("vae/default", "*")].find("skipped") is not None
    assert suite.find("system-out").text.endswith("in 4 models")

    assert _regress(case, "--format", "junit", "--allow-missing") == 1
    suite = ET.fromstring(capsys.readouterr().out.encode()).find("testsuite")
    assert len(suite.findall("testcase")) == 4 and suite.get("failures") == "1"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["hidden_missing"] == "2"


def test_markdown_report(case, capsys):
    assert _regress(case, "--format", "markdown") == 1
    md = capsys.readouterr().out.splitlines()
    assert md[0] == "❌ **quality regression**: 1 regressed, 2 missing, 1 improved, 1 ok, 1 new in 4 models"
    assert "| model | metric | baseline | current | delta | allowed | tolerance | verdict |" in md
    assert "| cgan/default | fid70_train | 18 | 21 | +3 | 2 | 2 sd | **regressed** |" in md
    assert sum(ln.startswith("| ") for ln in md) == 7  # header + 6 rows


def test_output_file_keeps_exit_code_and_terminal_text(case, tmp_path, capsys):
    out = tmp_path / "reports" / "regress.xml"
    assert _regress(case, "--format", "junit", "--output", str(out)) == 1
    term = capsys.readouterr().out
    assert ET.fromstring(out.read_bytes()).tag == "testsuites"
    assert f"junit report written to {out}" in term and "│ cgan/default" in term
    assert term.rstrip().splitlines()[-1].startswith("quality regression: 1 regressed")
    assert not list(out.parent.glob(".*.tmp"))
    # text to a file: plain text (no colour codes), ending with the summary line
    txt = tmp_path / "regress.txt"
    assert _regress(case, "--output", str(txt), "--allow-missing") == 1
    body = txt.read_text()
    assert "\x1b[" not in body and body.rstrip().splitlines()[-1].startswith("quality regression: 1 regressed")
    assert "2 missing rows hidden (--allow-missing)" in body


def test_bad_format_and_output_refused_before_work(case, tmp_path, capsys):
    assert _regress(case, "--format", "xml") == 2
    assert capsys.readouterr().err.strip() == "error: --format 'xml': expected one of text, json, junit, markdown"
    assert _regress(case, "--output", str(tmp_path)) == 2
    cap = capsys.readouterr()
    assert "is a directory" in cap.err and cap.out == ""
    assert _regress(case, "--output", str(case[1])) == 2
    assert "is the baseline file" in capsys.readouterr().err


def test_failed_write_keeps_previous_report(case, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.json"
    out.write_text("previous")
    import exprbench.core.io

    def denied(path, text):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(exprbench.core.io, "write_text", denied)
    assert _regress(case, "--format", "json", "--output", str(out)) == 2
    assert capsys.readouterr().err.strip() == f"error: --output {out}: cannot write (Permission denied)"
    assert out.read_text() == "previous"
