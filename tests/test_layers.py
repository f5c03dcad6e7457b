"""Layering: the folders are the layers (``tests/layering.py:LAYERS``, lowest first: core < data < models <
runs < metrics < benchmarks < cli), no module depends on a higher layer (by import, lazy import,
``import_module`` or a string naming a module), no import cycle, no module over 400 lines, no function over
60 lines or above cyclomatic complexity 20.

The allow-lists below name what is known to be wrong on main; the goal is to empty them. An entry that no
longer applies fails :func:`test_allow_lists_are_current`, so the lists only shrink.
"""

from __future__ import annotations

import pytest

from .layering import REPO, a_cycle, cycle_graph, files, functions, read_graph, sccs, upward_edges

MAX_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 20

#: (importer file, imported file) dependencies on a higher layer, each with the reason it is still there
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

#: (importer file, imported file) edges that close an import cycle, each with the reason it is still there
ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {}

#: functions over MAX_FUNCTION_LINES lines or above MAX_COMPLEXITY: "path:qualname" -> (lines, complexity) when listed
ALLOWED_LONG_FUNCTIONS: dict[str, tuple[int, int]] = {}


def _describe(g, graph, cycle: list[str]) -> str:
    steps = [f"{g.path(a)}:{graph[a][b]} imports {g.path(b)}" for a, b in zip(cycle, cycle[1:])]
    return "\n    ".join(steps)


def _upward(g) -> list[str]:
    return [f"{g.path(a)}:{ln} depends on {g.path(b)}" for a, b, ln in upward_edges(g)
            if (g.path(a), g.path(b)) not in ALLOWED_UPWARD]


def _over(fns) -> dict[str, tuple[int, int]]:
    return {f.where: (f.lines, f.complexity) for f in fns if f.lines > MAX_FUNCTION_LINES or f.complexity > MAX_COMPLEXITY}


def test_no_dependency_on_a_higher_layer():
    problems = _upward(read_graph())
    assert not problems, "dependencies on a higher layer (tests/layering.py:LAYERS; move the code down, or pass " \
        "the dependency in from the caller):\n  " + "\n  ".join(problems)


def _cycle_graph(g):
    return {a: {b: ln for b, ln in deps.items() if (g.path(a), g.path(b)) not in ALLOWED_CYCLE_EDGES}
            for a, deps in cycle_graph(g).items()}


def test_no_import_cycles():
    g = read_graph()
    graph = _cycle_graph(g)
    problems = [_describe(g, graph, a_cycle(graph, comp)) for comp in sccs(graph)]
    assert not problems, "import cycles:\n  " + "\n  ".join(f"cycle {i + 1}:\n    {p}" for i, p in enumerate(problems))


def _lines(path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_over_400_lines():
    long = {p.relative_to(REPO).as_posix(): _lines(p) for p in files().values() if _lines(p) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by what their parts are): {long}"


def test_no_module_name_is_used_twice():
    """A module's name says what it is, once: ``rundir``, ``registry`` or ``evaluate`` in two layers meant two things."""
    seen: dict[str, list[str]] = {}
    for p in files().values():
        if p.name not in ("__init__.py", "__main__.py"):
            seen.setdefault(p.stem, []).append(p.relative_to(REPO).as_posix())
    twice = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not twice, f"module names used more than once (rename by what each is): {twice}"


def test_functions_fit_on_a_screen():
    over = _over(functions())
    new = {w: v for w, v in over.items() if w not in ALLOWED_LONG_FUNCTIONS}
    grown = {w: v for w, v in over.items() if w in ALLOWED_LONG_FUNCTIONS and
             (v[0] > ALLOWED_LONG_FUNCTIONS[w][0] or v[1] > ALLOWED_LONG_FUNCTIONS[w][1])}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines or complexity {MAX_COMPLEXITY} (split them into " \
        f"named steps): {new}"
    assert not grown, f"allow-listed long functions grew (split them instead): {grown}"


def test_allow_lists_are_current():
    g = read_graph()
    up = {(g.path(a), g.path(b)) for a, b, _ in upward_edges(g)}
    stale = [f"{a} -> {b}" for a, b in ALLOWED_UPWARD if (a, b) not in up]
    full = cycle_graph(g)
    in_cycle = {(g.path(a), g.path(b)) for comp in sccs(full) for a in comp for b in full[a] if b in comp}
    stale += [f"{a} -> {b} (cycle)" for a, b in ALLOWED_CYCLE_EDGES if (a, b) not in in_cycle]
    over = _over(functions())
    stale_fns = [w for w in ALLOWED_LONG_FUNCTIONS if w not in over]
    assert not stale, f"ALLOWED_UPWARD entries that no longer apply (remove them): {stale}"
    assert not stale_fns, f"ALLOWED_LONG_FUNCTIONS entries now within the caps (remove them): {stale_fns}"


# -- tests of the test: a small tree with planted faults -----------------------------------------------------

def _tree(tmp_path, extra: dict[str, str]):
    base = {
        "exprbench/__init__.py": "import importlib\n\ndef __getattr__(name):\n    return importlib.import_module('exprbench.api')\n",
        "exprbench/api.py": "from exprbench.runs.loader import load\n",
        "exprbench/core/__init__.py": "",
        "exprbench/core/errors.py": "class E(Exception):\n    pass\n",
        "exprbench/runs/__init__.py": "",
        "exprbench/runs/loader.py": "from exprbench.core.errors import E\nimport models\n\ndef load():\n    pass\n",
        "exprbench/cli/__init__.py": "from exprbench.runs.loader import load\n",
        "exprbench/cli/app.py": "def main():\n    pass\n",
        "models/__init__.py": "BUILTIN_MODULES = ('gan',)\n",
        "models/gan.py": '"""exprbench.cli.app is named here in a docstring: not an edge."""\nfrom exprbench.core.errors import E\n',
        "metrics/__init__.py": "",
        "benchmarks/__init__.py": "",
    }
    for rel, text in {**base, **extra}.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return read_graph(tmp_path)


def test_the_clean_small_tree_passes(tmp_path):
    g = _tree(tmp_path, {})
    assert upward_edges(g) == []
    assert sccs(cycle_graph(g)) == []  # the root's lazy API facade closes no cycle


@pytest.mark.parametrize("planted", [
    "def f():\n    from exprbench.cli.app import main\n    return main\n",  # a lazy upward import
    "import importlib\n\ndef f():\n    return importlib.import_module('exprbench.cli.app')\n",  # by import_module
    "SERVICES = {'main': 'exprbench.cli.app:main'}\n",  # a service locator's string
    "from exprbench.runs import loader\n",  # models below runs
])
def test_a_planted_upward_dependency_in_a_model_fails(tmp_path, planted):
    g = _tree(tmp_path, {"models/vae.py": planted})
    found = [(g.path(a), g.path(b)) for a, b, _ in upward_edges(g)]
    assert found and all(a == "models/vae.py" for a, _ in found), found


def test_a_planted_cycle_is_found(tmp_path):
    g = _tree(tmp_path, {"exprbench/core/errors.py": "def f():\n    from exprbench.core import io\n",
                         "exprbench/core/io.py": "from exprbench.core.errors import f\n"})
    assert sccs(cycle_graph(g)) == [["exprbench.core.errors", "exprbench.core.io"]]


def test_long_and_complex_functions_are_measured(tmp_path):
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(25))
    _tree(tmp_path, {"models/vae.py": f"def f(x):\n    '''doc\n    more doc'''\n{branches}\n"})
    f = next(f for f in functions(tmp_path) if f.where == "models/vae.py:f")
    assert f.complexity == 26 and f.lines == 1 + 50 + 1 - 1  # def line + body + blank line, docstring excluded
