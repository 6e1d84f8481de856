"""The package's import graph is layered and has no cycles.

Every import statement of every module under ``ssv2_fixtures/`` counts: module level, inside functions,
under ``if TYPE_CHECKING:``, in ``try`` blocks, plus ``importlib.import_module("…")`` with a literal name
and the package root's lazy ``_EXPORTS`` table. ``from X import name`` is an edge to the module ``X.name``
when that is a module, else to ``X``. Importing a module runs its parent packages' ``__init__`` too; that
implicit step is not an edge (a package ``__init__`` that imports its own children would otherwise
always close a cycle).

The layers, lowest first; a module may import its own layer and the layers below it, never one above:

==========  =====  ==========================================================================
layer       rank   what
==========  =====  ==========================================================================
data        0      annotations, clips, decoding, the loader, factories, synthetic sets
run         1      one isolated run: child, runner, monitor, records and the results schema
watch       1.5    the in-training watch: stands on data and run only (report renders its log)
options     2      the Settings record and the option table: read by stress and above
stress      3      the stress campaign: budgets, plans, probes, verdicts, the session
report      4      reports from results.json (and a watch log)
top         5      what only pytest or a user imports: ``plugin``, ``suite`` (the shipped
                   stress tests), ``rootdir`` (the plugin's rootdir repair), the package root
                   ``ssv2_fixtures/__init__.py`` (lazy public exports), and the re-export
                   shims ``recipes.py`` (``--dataset-factory ssv2_fixtures.recipes:…``) and
                   ``synth.py`` (``python -m ssv2_fixtures.synth``)
==========  =====  ==========================================================================

Within the top layer, nothing imports ``plugin`` or ``suite``, and nothing below the top imports a
shim or the package root: package code imports a name from the module where it lives. A new top-level
module or package has no layer until one is written into :data:`LAYERS` (the test says so).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "ssv2_fixtures"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

LAYERS: dict[str, float] = {
    "data": 0,
    "run": 1,
    "watch": 1.5,
    "options": 2,
    "stress": 3,
    "report": 4,
    "plugin": 5,
    "suite": 5,
    "rootdir": 5,
    "recipes": 5,
    "synth": 5,
    "": 5,  # the package root, ssv2_fixtures/__init__.py
}
LAYER_NAMES = {0: "data", 1: "run", 1.5: "watch", 2: "options", 3: "stress", 4: "report", 5: "top"}
NOT_IMPORTED = ("plugin", "suite")  # entry points: pytest loads them, package code never does


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Module name → (file, is a package ``__init__``)."""
    out: dict[str, tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _absolute(module: str, is_pkg: bool, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imported_names(module: str, is_pkg: bool, source: str) -> list[tuple[str, int]]:
    """Every (absolute dotted name, line) ``source`` imports, wherever the statement is."""
    tree = ast.parse(source)
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_pkg, node.module, node.level)
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.args[0].value, node.lineno))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            # the package root's lazy exports: name -> "sub.module" relative to the package
            if isinstance(node.value, ast.Dict):
                for v in node.value.values:
                    if isinstance(v, ast.Constant) and isinstance(v.value, str):
                        out.append((_absolute(module, is_pkg, v.value, 1), node.lineno))
    return out


def edges(mods: Mapping[str, tuple[Path, bool]], package: str = PACKAGE) -> list[Edge]:
    """The import graph between the package's modules (``mods``), one edge per statement."""
    out: list[Edge] = []
    for mod, (path, is_pkg) in mods.items():
        for name, line in imported_names(mod, is_pkg, path.read_text()):
            if name != package and not name.startswith(package + "."):
                continue
            while name not in mods and "." in name:  # X.attr -> X; a dotted name down to its module
                name = name.rsplit(".", 1)[0]
            if name in mods and name != mod:
                out.append(Edge(mod, name, line))
    return out


def layer_of(module: str, package: str = PACKAGE) -> str:
    """The key of :data:`LAYERS` a module belongs to (its first name under the package)."""
    rest = module[len(package) + 1 :] if module != package else ""
    return rest.split(".")[0]


def upward(graph: Iterable[Edge], layers: Mapping[str, float], package: str = PACKAGE) -> list[str]:
    """One sentence per import of a higher layer, or of an entry point (:data:`NOT_IMPORTED`) from
    outside it."""
    name = {k: LAYER_NAMES.get(v, k) for k, v in layers.items()}
    bad = []
    for e in graph:
        src, dst = layer_of(e.src, package), layer_of(e.dst, package)
        if layers[dst] > layers[src]:
            bad.append(f"{e.src} imports {e.dst} (line {e.line}): {name[src]} < {name[dst]}")
        elif dst in NOT_IMPORTED and dst != src:
            bad.append(f"{e.src} imports {e.dst} (line {e.line}): nothing imports {dst}")
    return sorted(set(bad))


def cycles(graph: Iterable[Edge]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), as the path ``[a, b, ..., a]``."""
    succ: dict[str, set[str]] = {}
    for e in graph:
        succ.setdefault(e.src, set()).add(e.dst)
        succ.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # recursion depth is bounded by the package's module count
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in succ[v]:
                groups.append(sorted(group))

    for v in sorted(succ):
        if v not in index:
            connect(v)
    return [_one_cycle(g, succ) for g in groups]


def _one_cycle(group: list[str], succ: Mapping[str, set[str]]) -> list[str]:
    """A shortest cycle through the group's first module, staying inside the group (breadth first)."""
    start, inside = group[0], set(group)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(succ[v] & inside):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start, start]


# --- the package ------------------------------------------------------------------------------------

MODULES = modules()
GRAPH = edges(MODULES)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({m for m in MODULES if layer_of(m) not in LAYERS})
    assert not unplaced, f"no layer for {unplaced}: add it to LAYERS in {Path(__file__).name} (and its docstring)"


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_module_imports_a_higher_layer() -> None:
    bad = upward(GRAPH, LAYERS)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_walk_sees_the_real_graph() -> None:
    # a few edges the package really has, of each kind the walk must see: module level, inside a
    # function, and the root's lazy exports; if these vanish the walk (not the package) is wrong
    pairs = {(e.src, e.dst) for e in GRAPH}
    assert ("ssv2_fixtures.run.record", "ssv2_fixtures.run.schema") in pairs
    assert ("ssv2_fixtures", "ssv2_fixtures.data.clips") in pairs


# --- the checker, on made-up modules -----------------------------------------------------------------


def test_the_walk_counts_lazy_type_checking_and_dynamic_imports() -> None:
    src = """
from typing import TYPE_CHECKING
import os
from . import sibling
from .. import other
from ..stress.probe import PipelineProbe, pipeline_probe
if TYPE_CHECKING:
    from ..report.model import Run
def f():
    import ssv2_fixtures.watch.core
    from .record import write_atomic
    try:
        import importlib
        importlib.import_module("ssv2_fixtures.report.watch")
    except ImportError:
        pass
"""
    got = {name for name, _ in imported_names("ssv2_fixtures.run.x", False, src)}
    assert {
        "ssv2_fixtures.run.sibling",
        "ssv2_fixtures.other",
        "ssv2_fixtures.stress.probe.PipelineProbe",
        "ssv2_fixtures.report.model.Run",
        "ssv2_fixtures.watch.core",
        "ssv2_fixtures.run.record.write_atomic",
        "ssv2_fixtures.report.watch",
        "os",
    } <= got
    root = imported_names("ssv2_fixtures", True, '_EXPORTS = {"watch": "watch", "Launch": "run.launch"}')
    assert {n for n, _ in root} == {"ssv2_fixtures.watch", "ssv2_fixtures.run.launch"}


def _tree(tmp_path: Path, files: Mapping[str, str]) -> list[Edge]:
    for rel, text in files.items():
        p = tmp_path / "pkg" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return edges(modules(tmp_path / "pkg", "pkg"), "pkg")


def test_the_checker_names_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "data/__init__.py": "",
            "data/a.py": "def f():\n    from .b import x\n",  # a lazy import closes the cycle
            "data/b.py": "from ..data.c import y\n",
            "data/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import z\n",
            "run/__init__.py": "",
            "run/record.py": "from ..stress.probe import PipelineProbe\nfrom ..data import a\n",
            "stress/__init__.py": "",
            "stress/probe.py": "from ..run.record import thing\n",
        },
    )
    found = cycles(graph)
    assert ["pkg.data.a", "pkg.data.b", "pkg.data.c", "pkg.data.a"] in found
    assert ["pkg.run.record", "pkg.stress.probe", "pkg.run.record"] in found
    assert len(found) == 2
    layers = {"": 5, "data": 0, "run": 1, "stress": 3}
    assert upward(graph, layers, "pkg") == ["pkg.run.record imports pkg.stress.probe (line 1): run < stress"]


def test_the_checker_passes_a_layered_acyclic_tree(tmp_path: Path) -> None:
    graph = _tree(
        tmp_path,
        {
            "__init__.py": '_EXPORTS = {"f": "run.record"}\n',
            "data/__init__.py": "",
            "data/a.py": "import os\n",
            "run/__init__.py": "",
            "run/record.py": "from ..data.a import os\nfrom . import schema\n",
            "run/schema.py": "",
            "plugin.py": "from .run import record\n",
        },
    )
    assert cycles(graph) == []
    assert upward(graph, {"": 5, "data": 0, "run": 1, "plugin": 5}, "pkg") == []


def test_importing_the_plugin_is_refused_even_from_the_top(tmp_path: Path) -> None:
    graph = _tree(tmp_path, {"__init__.py": "", "plugin.py": "", "rootdir.py": "from . import plugin\n"})
    assert upward(graph, {"": 5, "plugin": 5, "rootdir": 5}, "pkg") == [
        "pkg.rootdir imports pkg.plugin (line 1): nothing imports plugin"
    ]


@pytest.mark.parametrize("layer", sorted(k for k in LAYERS if k))
def test_every_layer_named_in_the_table_exists(layer: str) -> None:
    # a layer that no longer exists is a stale rule: the table says what the package is
    assert any(layer_of(m) == layer for m in MODULES), f"LAYERS names {layer!r}, which is not in the package"
