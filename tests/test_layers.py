"""Layering: no import cycle between the modules of exprbench, models, metrics and benchmarks, and no
module over 400 lines.

The import graph is read statically (``ast``): every ``import`` / ``from ... import`` in a module,
including the lazy ones inside functions, is an edge to the module it names (``from pkg import name``
is an edge to ``pkg.name`` when that is a module, else to ``pkg``), and to the ``__init__`` of every
package above it that the importer is not in (Python runs those first: importing ``models.base`` from
the harness runs ``models/__init__.py``, which imports every plugin). Imports under
``if TYPE_CHECKING:`` are not edges (they never run). A package ``__init__`` that lists
``BUILTIN_MODULES`` (models/: plugins imported by name on first ``get_model``) has an edge to each. ``exprbench.models`` / ``.metrics`` / ``.benchmarks`` are the folders
``models/``, ``metrics/``, ``benchmarks/`` (pyproject's package-dir).

The allow-lists below name what is known to be wrong on main; the goal is to empty them. An entry that
no longer applies fails :func:`test_allow_lists_are_current`, so the lists only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"exprbench": "exprbench", "models": "models", "metrics": "metrics", "benchmarks": "benchmarks"}
MAX_LINES = 400

# Imports that close a cycle, as (importing file, imported file). Each is a lazy (function-level) import
# unless marked; removing these edges leaves the graph acyclic.
ALLOWED_CYCLE_EDGES: set[tuple[str, str]] = set()

# Modules over MAX_LINES lines (file: its length when listed).
ALLOWED_LONG: dict[str, int] = {}


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _files() -> dict[str, Path]:
    out = {}
    for top in PACKAGES.values():
        for p in sorted((REPO / top).rglob("*.py")):
            out[_module_name(p)] = p
    return out


def _canonical(name: str) -> str:
    """``exprbench.models.x`` -> ``models.x`` (the folder the module lives in)."""
    for sub in ("models", "metrics", "benchmarks"):
        if name == f"exprbench.{sub}" or name.startswith(f"exprbench.{sub}."):
            return name[len("exprbench."):]
    return name


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` over the four packages (modules outside them are dropped)."""
    files = _files()
    known = set(files)
    graph: dict[str, dict[str, int]] = {m: {} for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [_canonical(a.name) for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                src = _canonical(src)
                for a in node.names:
                    sub = _canonical(f"{src}.{a.name}")
                    targets.append(sub if sub in known else src)
            own = _ancestors(mod) | {mod}
            for t in targets:
                while t and t not in known:  # `import a.b.c` of a name inside a module: the module
                    t = t.rpartition(".")[0]
                # importing a module of another package runs that package's __init__ first
                for u in [t, *sorted(_ancestors(t))]:
                    if u and u in known and u not in own:
                        graph[mod].setdefault(u, node.lineno)
        if is_pkg:  # a lazy plugin registry: its modules are imported by name on first use
            names, line = _builtin_modules(path)
            for name in names:
                if f"{mod}.{name}" in known:
                    graph[mod].setdefault(f"{mod}.{name}", line)
    return graph


def _builtin_modules(path: Path) -> tuple[list[str], int]:
    """The literal ``BUILTIN_MODULES = (...)`` of a package ``__init__`` (models/: the plugins that
    ``get_model`` imports with importlib) and its line, else ([], 0)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "BUILTIN_MODULES" for t in node.targets):
            try:
                return list(ast.literal_eval(node.value)), node.lineno
            except ValueError:
                return [], 0
    return [], 0


def _sccs(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _a_cycle(graph: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """One cycle through the first module of ``comp`` (breadth-first, shortest), as a module path."""
    start, members = comp[0], set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def _file(files: dict[str, Path], mod: str) -> str:
    return files[mod].relative_to(REPO).as_posix()


def _describe(graph, files, cycle: list[str]) -> str:
    steps = [f"{_file(files, a)}:{graph[a][b]} imports {_file(files, b)}" for a, b in zip(cycle, cycle[1:])]
    return "\n    ".join(steps)


def _graph_without_allowed(graph, files):
    out = {}
    for a, deps in graph.items():
        out[a] = {b: ln for b, ln in deps.items() if (_file(files, a), _file(files, b)) not in ALLOWED_CYCLE_EDGES}
    return out


def test_no_import_cycles():
    files = _files()
    graph = _graph_without_allowed(import_graph(), files)
    problems = [_describe(graph, files, _a_cycle(graph, comp)) for comp in _sccs(graph)]
    assert not problems, "import cycles (break them, or as a last resort list the edge in ALLOWED_CYCLE_EDGES):\n  " + \
        "\n  ".join(f"cycle {i + 1}:\n    {p}" for i, p in enumerate(problems))


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_over_400_lines():
    files = _files()
    long = {_file(files, m): _lines(p) for m, p in files.items() if _lines(p) > MAX_LINES}
    new = {f: n for f, n in long.items() if f not in ALLOWED_LONG}
    grown = {f: n for f, n in long.items() if f in ALLOWED_LONG and n > ALLOWED_LONG[f]}
    assert not new, f"modules over {MAX_LINES} lines (split them): {new}"
    assert not grown, f"allow-listed long modules grew (split them instead): {grown}"


def test_allow_lists_are_current():
    files = _files()
    graph = import_graph()
    full_sccs = [set(c) for c in _sccs(graph)]
    stale = []
    for a, b in sorted(ALLOWED_CYCLE_EDGES):
        ma = next((m for m, p in files.items() if _file(files, m) == a), None)
        mb = next((m for m, p in files.items() if _file(files, m) == b), None)
        if ma is None or mb is None or mb not in graph[ma] or not any(ma in c and mb in c for c in full_sccs):
            stale.append(f"{a} -> {b}")
    long_stale = [f for f, n in ALLOWED_LONG.items() if not (REPO / f).exists() or _lines(REPO / f) <= MAX_LINES]
    assert not stale, f"ALLOWED_CYCLE_EDGES entries that no longer close a cycle (remove them): {stale}"
    assert not long_stale, f"ALLOWED_LONG entries now within {MAX_LINES} lines (remove them): {long_stale}"


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    # relative, module level: exprbench/harness.py `from .rundir import ...`
    assert "exprbench.rundir" in graph["exprbench.harness"]
    # lazy, inside a function: exprbench/config.py `from .models import get_model`
    assert "models" in graph["exprbench.config"]
    # a package's submodule through `from pkg import module`
    assert "exprbench.data.fer2013_csv" in graph["exprbench.data"]
