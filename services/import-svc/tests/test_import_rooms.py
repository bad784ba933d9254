"""The service works through its repository's and file store's public methods: it never
reaches into a collection (`self.repo.jobs.update_one`) nor calls another object's
private method (`files._claim`), so each rule about the data lives in one room."""

from __future__ import annotations

import ast
from pathlib import Path

import import_svc

PACKAGE = Path(import_svc.__file__).parent
ROOMS = ("service.py", "processing.py", "queries.py", "handlers.py")


def reaches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        # self.repo.<collection>.<anything>: past the repository
        if (
            isinstance(owner, ast.Attribute)
            and isinstance(owner.value, ast.Attribute)
            and isinstance(owner.value.value, ast.Name)
            and owner.value.value.id == "self"
            and owner.value.attr == "repo"
        ):
            found.append(f"{path.name}:{node.lineno} self.repo.{owner.attr}.{node.attr}")
        # <object>._private, other than self's own
        is_self = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
        if node.attr.startswith("_") and not node.attr.startswith("__") and not is_self:
            found.append(f"{path.name}:{node.lineno} ._{node.attr.lstrip('_')}")
    return found


def test_the_service_stays_out_of_the_repository_and_the_file_store() -> None:
    assert [hit for room in ROOMS for hit in reaches(PACKAGE / room)] == []
