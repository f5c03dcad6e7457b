"""The static reading behind ``tests/test_layers.py``: the dependency graph of the four packages, their layer
order, and the size and cyclomatic complexity of every function.

Edges are read with ``ast``, never by importing: every ``import`` / ``from ... import`` (module level or lazy,
inside a function), the literal target of ``importlib.import_module("...")``, and any other string constant
that names a module of the tree (``"exprbench.runs.loader"`` or ``"exprbench.runs.loader:load_trained"``: a
dependency by string, the service-locator pattern). Docstrings are not edges. ``from pkg import name`` is an
edge to ``pkg.name`` when that is a module, else to ``pkg``. Importing a module of another package also runs
that package's ``__init__`` (an *implicit* edge, used for cycles, not for the layer order). Imports under
``if TYPE_CHECKING:`` are not edges. ``exprbench.models`` / ``.metrics`` / ``.benchmarks`` are the folders
``models/``, ``metrics/``, ``benchmarks/`` (pyproject's package-dir).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import mccabe

REPO = Path(__file__).resolve().parents[1]
TOPS = ("exprbench", "models", "metrics", "benchmarks")

#: the layer order, lowest first: a module may depend on its own layer and the layers below it. A module
#: belongs to the layer of its longest matching prefix; the package root, the Python API and
#: ``python -m exprbench`` sit with the CLI at the top.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("exprbench.core",)),
    ("data", ("exprbench.data",)),
    ("models", ("models",)),
    ("runs", ("exprbench.runs",)),
    ("metrics", ("metrics",)),
    ("benchmarks", ("benchmarks",)),
    ("cli", ("exprbench.cli", "exprbench.api", "exprbench.__main__", "exprbench")),
)


@dataclass
class Graph:
    """``edges[a][b] = line`` of a's first dependency on b; ``implicit`` the package ``__init__`` edges that
    Python adds (importing ``models.base`` runs ``models/__init__.py``); ``lazy_init`` the function-level
    edges of package ``__init__`` files (PEP 562 facades, not run when the package is imported)."""

    root: Path
    files: dict[str, Path]
    edges: dict[str, dict[str, int]] = field(default_factory=dict)
    implicit: dict[str, dict[str, int]] = field(default_factory=dict)
    lazy_init: set[tuple[str, str]] = field(default_factory=set)

    def path(self, mod: str) -> str:
        return self.files[mod].relative_to(self.root).as_posix()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def files(root: Path = REPO) -> dict[str, Path]:
    """``{module: path}`` of every ``.py`` file under the four top folders of ``root``."""
    out = {}
    for top in TOPS:
        for p in sorted((root / top).rglob("*.py")):
            out[module_name(p, root)] = p
    return out


def canonical(name: str) -> str:
    """``exprbench.models.x`` -> ``models.x`` (the folder the module lives in)."""
    for sub in ("models", "metrics", "benchmarks"):
        if name == f"exprbench.{sub}" or name.startswith(f"exprbench.{sub}."):
            return name[len("exprbench."):]
    return name


def ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def layer(mod: str) -> int:
    """The index in :data:`LAYERS` of ``mod`` (canonical name)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise ValueError(f"module {mod} is in no layer of tests/layering.py:LAYERS")
    return best


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _nodes(tree: ast.AST):
    """``(node, in_function)`` for every node, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [(tree, False)]
    while stack:
        node, lazy = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend((n, lazy) for n in node.orelse)
            continue
        yield node, lazy
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((n, inner) for n in ast.iter_child_nodes(node))


def _string_target(node: ast.AST, docs: set[int], known: set[str]) -> str | None:
    """The module a string constant names exactly (``a.b`` or ``a.b:attr``, at least one dot), else None."""
    if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docs:
        return None
    text = canonical(node.value.split(":")[0].strip())
    return text if "." in text and text in known else None


def _targets(node: ast.AST, package: str, known: set[str], docs: set[int]) -> list[str]:
    if isinstance(node, ast.Import):
        return [canonical(a.name) for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            src = ".".join(base + ([node.module] if node.module else []))
        else:
            src = node.module or ""
        src = canonical(src)
        return [sub if (sub := canonical(f"{src}.{a.name}")) in known else src for a in node.names]
    target = _string_target(node, docs, known)
    return [target] if target else []


def read_graph(root: Path = REPO) -> Graph:
    """The dependency graph of the tree at ``root`` (module docstring)."""
    g = Graph(root, files(root))
    known = set(g.files)
    for mod, path in g.files.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstrings(tree)
        g.edges[mod], g.implicit[mod] = {}, {}
        own = ancestors(mod) | {mod}
        for node, lazy in _nodes(tree):
            for t in _targets(node, package, known, docs):
                while t and t not in known:  # `import a.b.c` of a name inside a module: the module
                    t = t.rpartition(".")[0]
                if t and t not in own:
                    g.edges[mod].setdefault(t, node.lineno)
                    if is_pkg and lazy:
                        g.lazy_init.add((mod, t))
                for u in sorted(ancestors(t)) if t else []:  # importing a module runs its packages' __init__
                    if u in known and u not in own:
                        g.implicit[mod].setdefault(u, node.lineno)
        if is_pkg:
            for name, line in _builtin_modules(tree):
                if f"{mod}.{name}" in known:
                    g.edges[mod].setdefault(f"{mod}.{name}", line)
                    g.lazy_init.add((mod, f"{mod}.{name}"))
    return g


def _builtin_modules(tree: ast.Module) -> list[tuple[str, int]]:
    """The literal ``BUILTIN_MODULES = (...)`` of a package ``__init__`` (models/: the plugins registered
    lazily, imported on first ``get_model``), with its line."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "BUILTIN_MODULES" for t in node.targets):
            try:
                return [(n, node.lineno) for n in ast.literal_eval(node.value)]
            except ValueError:
                return []
    return []


def cycle_graph(g: Graph) -> dict[str, dict[str, int]]:
    """Edges that can close an import cycle: explicit and implicit ones, less the lazy edges of ``__init__``s."""
    out = {}
    for a in g.files:
        out[a] = {b: ln for b, ln in {**g.implicit[a], **g.edges[a]}.items() if (a, b) not in g.lazy_init}
    return out


def upward_edges(g: Graph) -> list[tuple[str, str, int]]:
    """``(importer, imported, line)`` of every explicit edge to a higher layer than the importer's."""
    return [(a, b, ln) for a, deps in g.edges.items() for b, ln in deps.items() if layer(b) > layer(a)]


def sccs(graph: dict[str, dict[str, int]]) -> list[list[str]]:
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


def a_cycle(graph: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """One shortest cycle through the first module of ``comp``, as a module path."""
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


@dataclass(frozen=True)
class Function:
    """A function or method: ``where`` is ``path:qualified.name``; ``lines`` its span without the docstring."""

    where: str
    line: int
    lines: int
    complexity: int


def functions(root: Path = REPO) -> list[Function]:
    """Every function of the four packages with its length and McCabe complexity (``mccabe``: a nested
    function counts towards the function that defines it)."""
    out = []
    for mod, path in files(root).items():
        tree = ast.parse(path.read_text(), str(path))
        visitor = mccabe.PathGraphingAstVisitor()
        visitor.preorder(tree, visitor)
        cc = {(gr.lineno, gr.entity.split(".")[-1]): gr.complexity() for gr in visitor.graphs.values()}
        rel = path.relative_to(root).as_posix()
        for qual, node in _defs(tree):
            body = node.body
            doc = 0
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                doc = body[0].end_lineno - body[0].lineno + 1
            n = node.end_lineno - node.lineno + 1 - doc
            out.append(Function(f"{rel}:{qual}", node.lineno, n, cc.get((node.lineno, node.name), 1)))
    return out


def _defs(tree: ast.AST, prefix: str = ""):
    """``(qualified name, node)`` of module-level functions and methods (not nested functions)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            yield from _defs(node, prefix + node.name + ".")
