"""progress-svc's handler on FastStream's in-memory broker (TestRabbitBroker): events in
(the bytes its DirectConsumer hands over), `progress.updated` out on jauge.events, as
docs/asyncapi.json describes it; no broker, store or process (issue 17, point 6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue, TestRabbitBroker

from jauge_shared.contracts import (
    FileImported,
    ImportFinished,
    ImportKind,
    ImportStarted,
    ImportStatus,
    ProgressUpdated,
    stable_event_id,
)
from jauge_shared.messaging import publish
from jauge_shared.topology import EVENTS_EXCHANGE, RK
from progress_svc.aggregate import Document, Limits
from progress_svc.handlers import on_progress_event
from progress_svc.service import ProgressService

ASYNCAPI = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json"


class MemoryRepository:
    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self.repairs: list[dict[str, Any]] = []

    async def change(self, job_id: str, compute: Any, partition: str = "") -> Any:
        new = compute(self.docs.get(job_id))
        if new is None:
            return self.docs.get(job_id), False
        self.docs[job_id] = new
        return new, True

    async def record_repair(self, repair: dict[str, Any]) -> None:
        self.repairs.append(repair)


def file(name: str, ok: bool = True) -> FileImported:
    return FileImported(
        event_id=stable_event_id("j1", "file", name),
        producer="import-svc",
        job_id="j1",
        item=name,
        ok=ok,
        error=None if ok else "illisible",
    )


@pytest.fixture
def validator() -> Any:
    document = json.loads(ASYNCAPI.read_text("utf-8"))
    return jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/components/schemas/ProgressUpdated",
            "components": document["components"],
        }
    )


async def test_events_in_progress_updated_out_as_the_asyncapi_document_says(validator) -> None:
    broker = RabbitBroker()
    updates = broker.publisher(RK.PROGRESS_UPDATED, exchange=EVENTS_EXCHANGE)
    heard: list[dict[str, Any]] = []

    @broker.subscriber(
        RabbitQueue("listener", routing_key=RK.PROGRESS_UPDATED), exchange=EVENTS_EXCHANGE
    )
    async def listener(body: dict[str, Any]) -> None:
        heard.append(body)

    async def announce(event: ProgressUpdated) -> None:
        await publish(updates, event)

    repository = MemoryRepository()
    service = ProgressService(repository, announce, Limits())  # type: ignore[arg-type]
    handle = on_progress_event(service, repository)  # type: ignore[arg-type]
    events = [
        ImportStarted(
            producer="import-svc", job_id="j1", kind=ImportKind.EDI, user_id="a", title="t", total=2
        ),
        file("a.edi"),
        file("a.edi").again(),  # a duplicate: nothing changes, the snapshot is sent again
        file("b.edi", ok=False),
        ImportFinished(producer="import-svc", job_id="j1", status=ImportStatus.COMPLETED),
    ]
    async with TestRabbitBroker(broker):
        for event in events:
            await handle(event.model_dump_json().encode())

    jobs = [body["job"] for body in heard]
    assert [(j["status"], j["processed"], j["failed"], j["seq"]) for j in jobs] == [
        ("running", 0, 0, 1),
        ("running", 1, 0, 2),
        ("running", 1, 0, 2),
        ("running", 2, 1, 3),
        ("completed", 2, 1, 4),
    ]
    assert {j["id"] for j in jobs} == {"j1"}
    for body in heard:
        assert [e.message for e in validator.iter_errors(body)] == []
    assert repository.repairs == []  # an announced-again duplicate repaired nothing


async def test_a_body_that_is_no_progress_event_is_refused_and_nothing_goes_out() -> None:
    repository = MemoryRepository()
    sent: list[ProgressUpdated] = []

    async def announce(event: ProgressUpdated) -> None:
        sent.append(event)

    service = ProgressService(repository, announce, Limits())  # type: ignore[arg-type]
    handle = on_progress_event(service, repository)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="validation error"):
        await handle(b'{"type": "import.started", "job_id": "j1"}')
    assert sent == [] and repository.docs == {}
