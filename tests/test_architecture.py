"""The shape of the code: engine/ knows no screen, no module imports itself in a circle, none is huge."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "afr", "afr_tui")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, known: set[str]) -> set[str]:
    """First-party modules a file imports anywhere (functions included), except under TYPE_CHECKING."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import submodule` depends on the submodule, `from pkg import name` on pkg.
            subs = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [s for s in subs if s in known] or [node.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    # A package's __init__ is imported by its submodules implicitly; only explicit edges count.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


def test_engine_never_imports_the_cockpit():
    modules = _modules()
    offenders = {
        name: sorted(i for i in _imports(path, set(modules)) if i.startswith(("afr_tui", "afr.", "afr")))
        for name, path in modules.items()
        if name.startswith("engine")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    for name, path in modules.items():
        if name.startswith("engine"):
            assert "textual" not in path.read_text(), name


def test_importing_every_engine_module_loads_no_textual_nor_afr_tui(tmp_path):
    code = (
        "import importlib, json, pkgutil, sys, engine\n"
        "for module in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    importlib.import_module(module.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'afr_tui'))\n"
        "import afr.cli\n"
        "afr.cli.build_parser()\n"
        "bad += sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "print(json.dumps(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_no_module_is_over_500_lines():
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
