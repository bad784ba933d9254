"""Issue 17's size targets for production code: no module over 400 lines, and none over
300 without a line in its docstring saying why ("Over 300 lines on purpose: …"). A module
that grows past either is split along its seams or says why it should not be."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("shared/src", "services/*/src", "ops/src", "tools/src")
REASON = "Over 300 lines on purpose"


def production_modules() -> list[Path]:
    return sorted(path for pattern in PRODUCTION for path in ROOT.glob(f"{pattern}/**/*.py"))


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_there_are_production_modules_to_check() -> None:
    assert len(production_modules()) > 100


def test_no_production_module_is_over_400_lines() -> None:
    too_long = {str(p.relative_to(ROOT)): lines(p) for p in production_modules()}
    assert {name: n for name, n in too_long.items() if n > 400} == {}


def test_a_module_over_300_lines_says_why_in_its_docstring() -> None:
    silent = [
        str(path.relative_to(ROOT))
        for path in production_modules()
        if lines(path) > 300
        and REASON not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert silent == []
