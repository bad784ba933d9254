from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs

from jauge_shared.asyncapi import build_document, render
from jauge_shared.contracts import ProgressDocument, ProgressUpdated

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_the_committed_asyncapi_document_matches_the_contracts() -> None:
    assert COMMITTED.read_text() == render(), (
        "docs/asyncapi.json is stale: python -m jauge_shared.asyncapi > docs/asyncapi.json"
    )


def test_a_progress_update_as_sent_matches_the_document() -> None:
    """The document is generated from the validation schema, the wire from the
    serialization: with `_id` as the field's one alias, they disagreed (issue 17)."""
    document = build_document()
    validator = jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/components/schemas/ProgressUpdated",
            "components": document["components"],
        }
    )
    # as progress-svc builds it: from the stored document, keyed by `_id`
    stored = ProgressDocument(id="j1", kind="import.edi", owner="alice", status="queued").stored()
    assert stored["_id"] == "j1" and "id" not in stored
    event = ProgressUpdated(
        producer="progress-svc", job_id="j1", job=ProgressDocument.model_validate(stored)
    )
    sent = json.loads(event.model_dump_json(by_alias=True))
    assert sent["job"]["id"] == "j1"
    assert [e.message for e in validator.iter_errors(sent)] == []
