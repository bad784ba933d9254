"""The dev-only members (jauge-testkit, jauge-tools) stay out of the services: no
production package depends on them or imports them, and the image build never receives
their code (issue 17, point 5)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = [ROOT / "shared", *sorted((ROOT / "services").iterdir())]
DEV_ONLY = {"jauge-testkit": "jauge_testkit", "jauge-tools": "jauge_tools"}


def test_no_production_package_depends_on_or_imports_a_dev_only_member() -> None:
    assert len(PRODUCTION) == 5
    for package in PRODUCTION:
        manifest = tomllib.loads((package / "pyproject.toml").read_text("utf-8"))
        for dependency in manifest["project"]["dependencies"]:
            assert not dependency.startswith(tuple(DEV_ONLY)), (package.name, dependency)
        for source in (package / "src").rglob("*.py"):
            text = source.read_text("utf-8")
            for module in DEV_ONLY.values():
                assert not re.search(rf"^\s*(from|import) {module}\b", text, re.M), source


def test_the_image_build_context_holds_their_manifests_only() -> None:
    ignore = (ROOT / "deploy/docker/Dockerfile.dockerignore").read_text("utf-8").splitlines()
    sent = [line[1:] for line in ignore if line.startswith("!")]
    for member in ("tools", "testkit"):
        assert f"{member}/pyproject.toml" in sent  # uv reads the whole workspace
        assert not any(path.startswith(f"{member}/src") for path in sent), sent
    assert "*" in ignore  # everything else is left out
