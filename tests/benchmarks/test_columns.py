"""benchmarks/report/columns.py is the one place of benchmarks/ that knows metric columns: directions,
tables, derived detail columns and their order; no other module names a metric family; the report's
modules import one way only (no cycle; figures and report do not import each other)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from exprbench.benchmarks.report import columns
from exprbench.benchmarks.report.columns import (LEADERBOARD_TABLES, column_order, derived_columns, header_name,
                                          higher_is_better, resolve_metric, table_of)

PKG = Path(columns.__file__).parent


@pytest.mark.parametrize("column, higher, table", [
    ("fid10k_train", False, "fidelity"), ("kid1k_train", False, "fidelity"), ("pr1k_train", True, "fidelity"),
    ("pr1k_train:recall", True, "fidelity"), ("dc1k_train:density", True, "coverage"), ("mem1k_train", False, "coverage"),
    ("bpd_test", False, "likelihood"), ("bpd_test:iw_bpd", False, "likelihood"), ("acc_gen", True, "class_aware"),
    ("ifid_train", False, "class_aware"), ("recon_test", False, "encoder"), ("recon_test:ssim", True, "encoder"),
    ("translate_acc_test:identity_l1", False, "translation"), ("translate_fid_test", False, "translation"),
    ("edit_success:entanglement", False, "editing"), ("pr1k_train:f_score", True, "other"),
    ("someone_elses_metric", True, "other"),
])
def test_directions_and_tables(column, higher, table):
    assert higher_is_better(column) is higher and table_of(column) == table


def test_order_names_and_derived():
    cols = ["pr1k_train", "pr1k_train:recall", "kid1k_train", "fid1k_train", "pr1k_train:precision", "cas",
            "edit_success:identity_ssim", "edit_success", "edit_success:entanglement", "zzz"]
    assert sorted(cols, key=column_order) == ["fid1k_train", "kid1k_train", "pr1k_train:precision",
                                              "pr1k_train:recall", "pr1k_train", "cas", "edit_success",
                                              "edit_success:entanglement", "edit_success:identity_ssim", "zzz"]
    assert [header_name(c) for c in ("pr1k_train", "dc1k_train", "mem1k_train", "fid1k_train", "pr1k_train:recall")] \
        == ["F", "COVERAGE", "MEMORISED", "FID", "RECALL"]
    assert derived_columns("translate_acc_test") == {"identity_l1": "lower", "identity_ssim": "higher"}
    assert [n for n, _ in LEADERBOARD_TABLES][0] == "fidelity" and resolve_metric("fid1k_train").figure == "samples"


def _names() -> set[str]:
    specs = columns._all().values()
    return {s.family for s in specs} | {k for s in specs for k in s.derived}


def _code_strings(tree: ast.AST):
    """String constants of a module that are not docstrings."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


# figure file names: the edit sheets (edit_<model>.png) and the edit-success chart, not metrics
FIGURE_NAMES = {"edit", "edit_success_vs_strength"}


def test_no_other_module_names_a_metric():
    """No string constant in code outside columns.py is a metric family, a derived key or a protocol
    name (``fid``, ``acc_gen``, ``fid10k_train``, ``recall``); prose and docstrings may mention them."""
    names = "|".join(sorted(map(re.escape, _names()), key=len, reverse=True))
    ident = re.compile(rf"(?:{names})(?:\d+k?)?(?:_[a-z]+)*")
    hits = []
    for path in sorted(PKG.glob("*.py")):
        if path.name == "columns.py":
            continue
        for line, text in _code_strings(ast.parse(path.read_text())):
            if text not in FIGURE_NAMES and ident.fullmatch(text.strip()):
                hits.append(f"{path.name}:{line}: {text[:60]!r}")
    assert hits == []


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("exprbench.benchmarks."):
            out.add(node.module.split(".")[2])
    return out & {p.stem for p in PKG.glob("*.py")}


def test_benchmark_modules_import_one_way():
    graph = {p.stem: _imports(p) for p in PKG.glob("*.py")}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for n in graph.get(todo.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen

    assert [m for m in graph if m in reach(m)] == []  # no cycle
    assert "report" not in reach("figures") and "figures" not in reach("html")
    assert not reach("columns")  # the declarations import no other module of benchmarks/


def test_no_module_over_400_lines():
    assert {p.name: n for p in PKG.glob("*.py") if (n := len(p.read_text().splitlines())) > 400} == {}
