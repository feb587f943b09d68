"""The packages only look down: featurestore -> fusion -> reels_emotion, with reels_demo beside.

Every ``import`` of every module is read with :mod:`ast` (at module level, inside functions
and under ``TYPE_CHECKING`` alike: a lazy import is still a dependency), mapped to its
package, and checked against the layer order. A cycle between modules is an error too; an
import made inside a function or for type checking only breaks no import-time cycle, so the
module graph counts the imports that run when a module is imported (top level, including
``try`` and other ``if`` blocks).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parent.parent

#: Which packages each package may import, bottom to top. ``reels_demo`` (synthetic media)
#: sits beside the command line: only ``reels_emotion`` (and tests, benches) may use it.
ALLOWED: dict[str, frozenset[str]] = {
    "featurestore": frozenset(),
    "fusion": frozenset({"featurestore"}),
    "reels_demo": frozenset({"featurestore"}),
    "reels_emotion": frozenset({"featurestore", "fusion", "reels_demo"}),
}


@dataclass(frozen=True)
class Edge:
    """One import: module ``source`` (file ``path``, line ``line``) imports module ``target``;
    ``eager`` when it runs at import time (not inside a function body)."""

    source: str
    target: str
    path: str
    line: int
    eager: bool


def module_name(path: Path) -> str:
    """Dotted module name of a file under the repository (``pkg/__init__.py`` -> ``pkg``)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names imported by a ``from ... import ...``: the module itself, plus
    ``module.name`` for each name (it may be a submodule; non-modules are filtered later)."""
    if node.level:
        base = module.split(".")
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        root = ".".join(base + ([node.module] if node.module else []))
    else:
        root = node.module or ""
    return [root] + [f"{root}.{a.name}" for a in node.names if a.name != "*"]


def _edges_of(path: Path, known: set[str]) -> list[Edge]:
    """Every import of one file that names one of our modules (``known``)."""
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lazy: set[int] = set()      # ids of nodes that do not run on import: in a function body
    for fn in ast.walk(tree):   # or under `if TYPE_CHECKING:` (type annotations only)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lazy.update(id(n) for n in ast.walk(fn) if n is not fn)
        elif isinstance(fn, ast.If) and "TYPE_CHECKING" in ast.unparse(fn.test):
            lazy.update(id(n) for stmt in fn.body for n in ast.walk(stmt))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = _resolve(module, path.name == "__init__.py", node)
        else:
            continue
        for name in names:
            # `import a.b.c` and `from a.b import c` depend on the deepest module that exists.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.append(Edge(module, name, str(path.relative_to(REPO)), node.lineno,
                                eager=id(node) not in lazy))
    return out


def import_edges() -> list[Edge]:
    """The imports between the modules of the layered packages."""
    files = [f for pkg in ALLOWED for f in sorted((REPO / pkg).rglob("*.py"))]
    known = {module_name(f) for f in files}
    return [e for f in files for e in _edges_of(f, known)]


def package(module: str) -> str:
    return module.split(".")[0]


EDGES = import_edges()


def test_the_graph_sees_the_known_imports():
    """The parser is not vacuous: it finds imports we know exist, lazy ones included."""
    pairs = {(e.source, e.target) for e in EDGES}
    assert ("fusion.registry", "featurestore.modeltable") in pairs
    assert ("reels_emotion.demo", "reels_demo.corpus") in pairs
    assert any(not e.eager for e in EDGES if e.source == "reels_emotion.cli")


def test_no_package_imports_upward():
    upward = [e for e in EDGES
              if package(e.source) != package(e.target)
              and package(e.target) not in ALLOWED[package(e.source)]]
    assert not upward, "imports against the layer order (featurestore < fusion < reels_emotion; " \
        "reels_demo only for reels_emotion):\n" + "\n".join(
            f"  {e.path}:{e.line}: {e.source} imports {e.target}" for e in upward)


def test_no_cycle_between_packages():
    graph = nx.DiGraph()
    graph.add_edges_from((package(e.source), package(e.target)) for e in EDGES
                         if package(e.source) != package(e.target))
    assert list(nx.simple_cycles(graph)) == []


@pytest.mark.parametrize("pkg", sorted(ALLOWED))
def test_no_import_time_cycle_between_modules(pkg):
    """Within a package, the modules that import each other at import time form no cycle."""
    graph = nx.DiGraph()
    graph.add_edges_from((e.source, e.target) for e in EDGES
                         if e.eager and package(e.source) == pkg and not _is_parent(e.target, e.source))
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, f"import cycles in {pkg}: {cycles}"


def _is_parent(target: str, source: str) -> bool:
    """``featurestore.encoders.text`` importing ``featurestore.encoders`` runs the package's
    ``__init__``, which is how a subpackage works, not a cycle of our making."""
    return source.startswith(target + ".")
