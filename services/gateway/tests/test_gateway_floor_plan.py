"""The gateway's floor plan holds (docs/decisions.md, "Floor plan: the gateway"): no
router imports another, no route takes the whole state, no import circle, no module
over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

ROOT = Path(gateway.__file__).parent


def modules() -> dict[str, tuple[Path, set[str]]]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("gateway", *parts)).removesuffix(".__init__")
        imports = {
            node.module
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gateway")
        }
        found[name] = (path, {m for m in imports if m is not None})
    return found


def test_no_router_imports_another() -> None:
    for name, (_, imports) in modules().items():
        if name.startswith("gateway.routers."):
            assert not {m for m in imports if m.startswith("gateway.routers")}, name


def test_only_the_wiring_knows_the_whole_state() -> None:
    for name, (path, _) in modules().items():
        if name not in ("gateway.main", "gateway.state"):
            assert "GatewayState" not in path.read_text(), name


def test_there_is_no_import_circle() -> None:
    graph = {name: imports for name, (_, imports) in modules().items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for imported in graph.get(name, ()):
            if imported in graph:
                visit(imported, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_no_module_is_over_400_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, (path, _) in modules().items()}
    assert max(sizes.values()) <= 400, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
