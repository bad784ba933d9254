"""The service works through its repository's and file store's public methods: it never
reaches into a collection (`self.repo.jobs.update_one`) nor calls another object's
private method (`files._claim`), so each rule about the data lives in one room. Every
module but the repository and the file store themselves is checked, so a new room is too."""

from __future__ import annotations

import ast
from pathlib import Path

import import_svc

PACKAGE = Path(import_svc.__file__).parent
ROOMS = tuple(p.name for p in PACKAGE.glob("*.py") if p.name not in ("repository.py", "files.py"))


def is_repository(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "repo") or (
        isinstance(node, ast.Attribute) and node.attr == "repo"
    )


def reaches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        # repo.<collection>.<anything>, through self.repo, flow.repo or a local: past
        # the repository
        if isinstance(owner, ast.Attribute) and is_repository(owner.value):
            found.append(f"{path.name}:{node.lineno} repo.{owner.attr}.{node.attr}")
        # <object>._private, other than self's own
        is_self = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
        if node.attr.startswith("_") and not node.attr.startswith("__") and not is_self:
            found.append(f"{path.name}:{node.lineno} ._{node.attr.lstrip('_')}")
    return found


def test_the_service_stays_out_of_the_repository_and_the_file_store() -> None:
    assert [hit for room in ROOMS for hit in reaches(PACKAGE / room)] == []
