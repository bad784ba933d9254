"""import-svc's subscribers on FastStream's in-memory broker (TestRabbitBroker): each
message reaches the right service call, and each read gets its reply, with no broker,
store or process (issue 17, point 6; the system tests keep the real ones)."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.rabbit import RabbitBroker, TestRabbitBroker
from pymongo.errors import ServerSelectionTimeoutError

from import_svc.handlers import STORE_AWAY_REPLY, register
from jauge_shared.contracts import AnnounceImport, ImportFile, ImportKind, RequestImport
from jauge_shared.contracts.import_rpc import (
    ImportReport,
    ImportReportRequest,
    InvoiceList,
    InvoiceSearchRequest,
)
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import COMMANDS_EXCHANGE, QUEUES_BY_SERVICE, RK


class FakeService:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def request(self, command: RequestImport) -> None:
        self.calls.append(("request", command))

    async def announce(self, job_id: str, reason: str) -> None:
        self.calls.append(("announce", (job_id, reason)))

    async def import_file(self, command: ImportFile) -> None:
        self.calls.append(("import_file", command))


class FakeQueries:
    def __init__(self) -> None:
        self.store_away = False

    async def report(self, request: ImportReportRequest) -> ImportReport:
        if self.store_away:
            raise ServerSelectionTimeoutError("no server")
        return ImportReport(found=True, job_id=request.job_id, kind="edi")

    async def invoices(self, request: InvoiceSearchRequest) -> InvoiceList:
        return InvoiceList(invoices=[])


def route(routing_key: str) -> str:
    """The key the in-memory broker delivers `routing_key`'s messages by: it knows a queue
    by its first binding only (jauge_shared.broker binds the others at start-up), and the
    handler reads the body's `type`, not the key."""
    (spec,) = [q for q in QUEUES_BY_SERVICE["import-svc"] if routing_key in q.routing_keys]
    return spec.routing_keys[0]


@pytest.fixture
def wired() -> tuple[RabbitBroker, FakeService, FakeQueries]:
    broker = RabbitBroker()
    service, queries = FakeService(), FakeQueries()
    register(broker, ServiceSettings(), service, queries)  # type: ignore[arg-type]
    return broker, service, queries


async def test_commands_reach_the_service(wired) -> None:
    broker, service, _ = wired
    request = RequestImport(producer="gateway", job_id="j1", kind=ImportKind.EDI, user_id="a")
    announce = AnnounceImport(producer="progress-svc", job_id="j1")
    file = ImportFile(
        producer="import-svc", job_id="j1", kind=ImportKind.EDI, item="a.edi", index=0
    )
    async with TestRabbitBroker(broker) as test_broker:
        for message in (request, announce, file):
            await test_broker.publish(message, route(message.type), exchange=COMMANDS_EXCHANGE)
    assert service.calls == [
        ("request", request),
        ("announce", ("j1", "asked")),
        ("import_file", file),
    ]


async def test_a_body_that_is_no_request_reaches_no_service(wired) -> None:
    broker, service, _ = wired
    async with TestRabbitBroker(broker) as test_broker:
        with pytest.raises(Exception, match="validation error"):
            await test_broker.publish(
                {"type": "import.request", "job_id": "j1"},
                RK.IMPORT_REQUEST,
                exchange=COMMANDS_EXCHANGE,
            )
    assert service.calls == []


async def test_reads_are_answered_and_a_store_away_is_a_503_reply(wired) -> None:
    broker, _, queries = wired
    async with TestRabbitBroker(broker) as test_broker:
        ask = ImportReportRequest(job_id="j1")
        reply = await test_broker.request(ask, RK.IMPORT_RPC, exchange=COMMANDS_EXCHANGE)
        assert (await reply.decode())["found"] is True
        queries.store_away = True
        reply = await test_broker.request(ask, RK.IMPORT_RPC, exchange=COMMANDS_EXCHANGE)
        assert await reply.decode() == STORE_AWAY_REPLY
