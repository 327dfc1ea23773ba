"""The house rules of imports, checked on the source: no cycle, no import up a layer, no cross-file private name.

Every module is found from the file tree (the folders ``pyproject.toml`` maps to packages), so a module
another change adds is checked without editing this file; its imports are read with :mod:`ast`, nothing is
imported. What counts as an import edge:

* every ``import`` / ``from ... import`` of a package module, wherever it stands: at module level, inside a
  function (deferred so that ``mbench --help`` stays light, or a heavy library loads late), and under
  ``if TYPE_CHECKING:``. A deferred import still runs when the function does, and a type-only import still
  ties the two files together, so all three count for the cycle check and the layers: deferring an import
  never hides a loop;
* ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg`` itself;
* importing ``a.b.c`` is not counted as importing ``a`` and ``a.b`` too (Python runs their ``__init__``
  first, but a package's ``__init__`` importing its own modules is not a loop);
* string-based lazy tables (``cli/main.py``'s command table, ``importlib.import_module`` in a package's
  ``__getattr__``) are not edges; they only ever point down.

The layers between folders are :data:`LAYERS` (the one table; a new folder gets a row here). The order of
the files inside each folder is the table in ``docs/architecture.md`` ("Import order inside each folder");
this test reads it, so the documentation and the code cannot drift apart.
"""
from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

#: Layers between folders, highest first: a module may import from a *lower* layer only (and from its own
#: unit, in the order docs/architecture.md gives). A unit is a package (with all its sub-packages) or one
#: module; the longest unit that contains a module is its unit. A new folder needs a row here.
LAYERS: dict[str, int] = {
    "multiid_bench": 100,  # the package root (__init__ only): lazy mb.evaluate / mb.score
    "multiid_bench.cli": 100,
    "multiid_bench.study": 95,  # the user study (mbench study): reads runs through leaderboard/ and runner/
    "multiid_bench.identity_score": 95,  # mb.IdentityScore / mb.score_images: the runner's chunk scorer in memory
    "multiid_bench.api": 92,  # mb.load_run reads hf:// runs through leaderboard/hub.py
    "multiid_bench.model_calls": 85,  # what a model may be (function, diffusers pipeline) and return
    "multiid_bench.run_views": 85,  # Run.metrics() / Run.headline() over results.json
    "multiid_bench.leaderboard": 90,  # reads run folders through the runner's run_folder
    "multiid_bench.runner": 80,
    "multiid_bench.adapters": 70,
    "multiid_bench.scorers": 70,
    "multiid_bench.judge": 70,  # the VLM judge (OmniContext): read by the runner, reads weights/_io
    "multiid_bench.reference_model": 60,
    # weights checks that read the face registries (doctor's per-model table, the training preflight)
    "multiid_bench.weights.doctor": 55,
    "multiid_bench.weights.requirements": 55,
    "multiid_bench.faces": 50,
    "multiid_bench.data": 50,
    "multiid_bench.weights": 40,
    "multiid_bench.images": 30,
    "multiid_bench.metrics": 30,
    "multiid_bench._io": 20,
    "multiid_bench.entry_points": 20,  # plug-ins declared by other packages (face models, metrics)
    "multiid_bench._version": 10,
    "multiid_bench.errors": 10,
}

#: Rule breaks that another open change removes, each with that change; an entry that no longer matches
#: a break fails the test, so this list only shrinks. (kind, importer, imported module, name or "").
PENDING: dict[tuple[str, str, str, str], str] = {
}


@dataclass(frozen=True)
class Edge:
    """One import: ``importer`` imports ``target`` (a module), optionally one ``name`` from it."""

    importer: str
    target: str
    name: str | None
    line: int
    where: str  # "module", "function" or "type-checking"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the distribution, from pyproject's package folders."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dirs: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    found: dict[str, Path] = {}
    for package, folder in package_dirs.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if not all((base.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(len(parts))):
                continue  # a script folder, not a package
            name = ".".join([package, *parts]).removesuffix(".__init__")
            if any(name == p or name.startswith(p + ".") for p in package_dirs if p != package and p.startswith(package)):
                continue  # mapped to another folder
            found[name] = path
    return found


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


@lru_cache(maxsize=1)
def edges() -> tuple[Edge, ...]:
    """Every import of a package module by a package module (see the module docstring for what counts)."""
    mods = modules()
    out: list[Edge] = []
    for importer, path in mods.items():
        tree = _tree(path)

        def visit(node: ast.AST, where: str) -> None:
            for child in ast.iter_child_nodes(node):
                here = where
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and where == "module":
                    here = "function"
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    here = "type-checking"
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        if alias.name in mods:
                            out.append(Edge(importer, alias.name, None, child.lineno, here))
                elif isinstance(child, ast.ImportFrom):
                    base = _resolve(importer, child)
                    if base in mods:
                        for alias in child.names:
                            sub = f"{base}.{alias.name}"
                            out.append(Edge(importer, sub, None, child.lineno, here) if sub in mods
                                       else Edge(importer, base, alias.name, child.lineno, here))
                visit(child, here)

        visit(tree, "module")
    return tuple(out)


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    if not _is_package(importer):
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def unit_of(module: str) -> str | None:
    """The longest :data:`LAYERS` unit containing ``module`` (the package root matches only itself)."""
    best = None
    for unit in LAYERS:
        inside = module == unit or (unit != "multiid_bench" and module.startswith(unit + "."))
        if inside and (best is None or len(unit) > len(best)):
            best = unit
    return best


def folder_of(module: str) -> str:
    """The package a module's file sits in (a package's ``__init__`` sits in itself)."""
    return module if _is_package(module) else module.rsplit(".", 1)[0]


def short(module: str) -> str:
    """A module's name inside its folder (``__init__`` for the package itself)."""
    return "__init__" if _is_package(module) else module.rsplit(".", 1)[1]


def folder_path(package: str) -> str:
    """``multiid_bench.adapters.workers`` -> ``adapters/workers/`` (the folder as the tree has it)."""
    return modules()[package].parent.relative_to(ROOT).as_posix() + "/"


def cycles() -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges():
        if e.importer != e.target:
            graph[e.importer].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
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
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(modules()):
        if v not in index:
            strongconnect(v)
    return groups


def computed_tiers() -> dict[str, list[list[str]]]:
    """``{folder package: tiers bottom first}`` from the imports: a file's tier is one above its highest
    same-folder import (what ``docs/architecture.md`` should show; printed when it does not)."""
    inside: dict[str, set[str]] = defaultdict(set)
    for e in edges():
        if e.importer != e.target and folder_of(e.importer) == folder_of(e.target):
            inside[e.importer].add(e.target)
    tier: dict[str, int] = {}

    def tier_of(m: str, seen: tuple[str, ...] = ()) -> int:
        if m not in tier:
            tier[m] = 0 if m in seen else 1 + max((tier_of(d, (*seen, m)) for d in inside[m]), default=-1)
        return tier[m]

    folders: dict[str, list[list[str]]] = defaultdict(list)
    for m in sorted(modules()):
        t = tier_of(m)
        rows = folders[folder_of(m)]
        while len(rows) <= t:
            rows.append([])
        rows[t].append(short(m))
    return {f: [sorted(r) for r in rows if r] for f, rows in sorted(folders.items())}


def render_order_table() -> str:
    """The docs table of every folder's tiers (the test's expected form of that section)."""
    lines = ["| folder | files, bottom tier first (a file imports only files of lower tiers) |", "| --- | --- |"]
    for package, tiers in computed_tiers().items():
        if sum(len(t) for t in tiers) < 2:
            continue
        shown = " → ".join(", ".join(f"`{m}`" for m in t) for t in tiers)
        lines.append(f"| `{folder_path(package)}` | {shown} |")
    return "\n".join(lines)


def documented_tiers() -> dict[str, list[list[str]]]:
    """The per-folder order of ``docs/architecture.md``: ``{folder path: tiers bottom first}``."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Import order inside each folder", 1)
    assert len(section) == 2, f"{DOC} has no '## Import order inside each folder' section"
    out: dict[str, list[list[str]]] = {}
    for line in section[1].splitlines():
        m = re.match(r"^\| `([^`]+/)` \| (.+) \|$", line.strip())
        if m:
            out[m.group(1)] = [re.findall(r"`([^`]+)`", tier) for tier in m.group(2).split("→")]
    return out


def _pending(kind: str, importer: str, target: str, name: str = "") -> bool:
    return (kind, importer, target, name) in PENDING


def _breaks() -> list[tuple[str, str, str, str, str]]:
    """Every rule break as ``(kind, importer, target, name, message)``, pending ones included."""
    found: list[tuple[str, str, str, str, str]] = []
    for e in edges():
        if e.importer == e.target:
            continue
        a, b = unit_of(e.importer), unit_of(e.target)
        if a is not None and b is not None and a != b and LAYERS[a] <= LAYERS[b]:
            found.append(("up-layer", e.importer, e.target, "",
                          f"{e.importer} (line {e.line}, {e.where}) imports {e.target}: layer {a} ({LAYERS[a]}) "
                          f"may import only lower layers, {b} is {LAYERS[b]}"))
        if e.name is not None and _private(e.name):
            found.append(("private", e.importer, e.target, e.name,
                          f"{e.importer} (line {e.line}) imports the private name {e.name} from {e.target}; "
                          "give it a public name and a docstring"))
        last = e.target.rsplit(".", 1)[-1]
        owner = e.target.rsplit(".", 1)[0]
        if _private(last) and not (e.importer == owner or e.importer.startswith(owner + ".")):
            found.append(("private", e.importer, e.target, "",
                          f"{e.importer} (line {e.line}) imports the private module {e.target} from outside "
                          f"its package {owner}"))
    found += _private_attributes()
    return found


def _private_attributes() -> list[tuple[str, str, str, str, str]]:
    """``module._name`` where ``module`` is a package module bound by an import (``from x import hub``)."""
    mods = modules()
    found = []
    for importer, path in mods.items():
        tree = _tree(path)
        bound: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(importer, node)
                for alias in node.names:
                    if f"{base}.{alias.name}" in mods:
                        bound[alias.asname or alias.name] = f"{base}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in mods:
                        bound[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and bound[node.value.id] != importer):
                target = bound[node.value.id]
                found.append(("private", importer, target, node.attr,
                              f"{importer} (line {node.lineno}) uses the private name {target}.{node.attr}"))
    return found


# ------------------------------------------------------------------------------------------------ tests
def test_modules_are_found_in_every_package_folder() -> None:
    mods = modules()
    for expected in ("multiid_bench.api", "multiid_bench.data.records", "multiid_bench.adapters.base",
                     "multiid_bench.leaderboard", "multiid_bench.reference_model.pipeline"):
        assert expected in mods
    assert len(mods) > 150
    assert any(e.where == "function" for e in edges()) and any(e.where == "type-checking" for e in edges())


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in modules() if unit_of(m) is None)
    assert not missing, (f"modules without a layer: {missing}; add their folder to LAYERS in {__file__} "
                         "and to the layer drawing of docs/architecture.md")


def test_no_import_cycle() -> None:
    groups = cycles()
    detail = []
    for group in groups:
        members = set(group)
        detail += sorted({f"  {e.importer} -> {e.target} (line {e.line}, {e.where})" for e in edges()
                          if e.importer in members and e.target in members and e.importer != e.target})
    assert not groups, "import cycles (move what both sides need into a lower module):\n" + "\n".join(detail)


def test_no_import_up_a_layer() -> None:
    bad = [msg for kind, a, b, name, msg in _breaks() if kind == "up-layer" and not _pending(kind, a, b, name)]
    assert not bad, "\n".join(bad)


def test_no_private_name_across_files() -> None:
    bad = [msg for kind, a, b, name, msg in _breaks() if kind == "private" and not _pending(kind, a, b, name)]
    assert not bad, "\n".join(bad)


def test_pending_breaks_still_exist() -> None:
    """A break listed in PENDING that is gone must leave the list (it only shrinks)."""
    present = {(kind, a, b, name) for kind, a, b, name, _ in _breaks()}
    stale = [f"{key}: {why}" for key, why in PENDING.items() if key not in present]
    assert not stale, "fixed; remove from PENDING:\n" + "\n".join(stale)


def test_docs_give_every_folder_its_file_order() -> None:
    """docs/architecture.md lists every file of every folder in tiers; each file imports only lower tiers."""
    documented = documented_tiers()
    problems = []
    rank: dict[str, int] = {}
    for package, tiers in computed_tiers().items():
        if sum(len(t) for t in tiers) < 2:
            continue
        folder = folder_path(package)
        rows = documented.get(folder)
        if rows is None:
            problems.append(f"{folder} has no row")
            continue
        listed = [m for row in rows for m in row]
        actual = sorted(m for t in tiers for m in t)
        if sorted(listed) != actual:
            problems.append(f"{folder}: documented files {sorted(listed)} != files {actual}")
            continue
        for i, row in enumerate(rows):
            for m in row:
                rank[package if m == "__init__" else f"{package}.{m}"] = i
    for e in edges():
        if e.importer == e.target or folder_of(e.importer) != folder_of(e.target):
            continue
        if e.importer in rank and e.target in rank and rank[e.target] >= rank[e.importer]:
            problems.append(f"{e.importer} (line {e.line}) imports {e.target}, which the docs put at the same "
                            "tier or above it")
    assert not problems, ("docs/architecture.md's '## Import order inside each folder' is out of date:\n"
                          + "\n".join(problems) + "\n\nThe table as the imports are now:\n" + render_order_table())


@pytest.mark.parametrize("source, expected", [
    ("from multiid_bench.data.hub import _dataset_rows\n", "private"),
    ("from multiid_bench.runner.cache import FeatureCache\n", "up-layer"),
])
def test_the_checks_catch_a_break(tmp_path, monkeypatch, source, expected) -> None:
    """The rules fail on a planted break (so this file cannot pass vacuously)."""
    fake = tmp_path / "planted.py"
    fake.write_text(source, encoding="utf-8")
    planted = {**modules(), "multiid_bench.faces.planted": fake}
    monkeypatch.setattr(sys.modules[__name__], "modules", lambda: planted)
    edges.cache_clear()
    try:
        kinds = {kind for kind, a, _b, _n, _m in _breaks() if a == "multiid_bench.faces.planted"}
    finally:
        edges.cache_clear()
    assert expected in kinds


def test_a_planted_cycle_is_found(tmp_path, monkeypatch) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from multiid_bench.metrics import planted_b\n", encoding="utf-8")
    b.write_text("from multiid_bench.metrics import planted_a\n", encoding="utf-8")
    planted = {**modules(), "multiid_bench.metrics.planted_a": a, "multiid_bench.metrics.planted_b": b}
    monkeypatch.setattr(sys.modules[__name__], "modules", lambda: planted)
    edges.cache_clear()
    try:
        groups = cycles()
    finally:
        edges.cache_clear()
    assert ["multiid_bench.metrics.planted_a", "multiid_bench.metrics.planted_b"] in groups
