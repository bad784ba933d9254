from __future__ import annotations

from pathlib import Path

from jauge_shared.asyncapi import render

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_the_committed_asyncapi_document_matches_the_contracts() -> None:
    assert COMMITTED.read_text() == render(), (
        "docs/asyncapi.json is stale: python -m jauge_shared.asyncapi > docs/asyncapi.json"
    )
