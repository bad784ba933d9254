"""Subscribers of import-svc: message in, service call, events out."""

from __future__ import annotations

from typing import Annotated, Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import Field, TypeAdapter

from import_svc.metrics import current_kind
from import_svc.queries import ImportQueries
from import_svc.service import ImportService
from jauge_shared.contracts import AnnounceImport, CancelImport, ImportFile, RequestImport
from jauge_shared.contracts.import_rpc import (
    ImportReport,
    ImportReportRequest,
    ImportRpcRequest,
    InboxCounts,
    InboxRequest,
    InvoiceList,
    RejectedFile,
    RejectedFileRequest,
)
from jauge_shared.mongo import store_unavailable, within_caller_deadline
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import IMPORT_FILES, IMPORT_REQUESTS, IMPORT_RPC

REQUEST: TypeAdapter[RequestImport | AnnounceImport | CancelImport] = TypeAdapter(
    Annotated[RequestImport | AnnounceImport | CancelImport, Field(discriminator="type")]
)

STORE_AWAY_REPLY = {
    "ok": False,
    "status": 503,
    "detail": "Service des imports momentanément indisponible : réessayez.",
}


def register(
    broker: RabbitBroker, settings: ServiceSettings, service: ImportService, queries: ImportQueries
) -> None:
    @broker.subscriber(
        IMPORT_REQUESTS.queue(settings.queue_type, settings.delivery_limit),
        exchange=IMPORT_REQUESTS.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=IMPORT_REQUESTS.name,
        description=(
            "Import requests and cancels from the gateway, queued behind the import lock; "
            "and the reconciler's import.announce."
        ),
    )
    async def on_import_requested(body: dict[str, Any]) -> None:
        # a body that is neither raises ValidationError: to the DLQ with the reason
        command = REQUEST.validate_python(body)
        if isinstance(command, AnnounceImport):
            await service.announce(command.job_id, "asked")
        elif isinstance(command, CancelImport):
            await service.cancel(command)
        else:
            current_kind.set(command.kind.value)  # for the metrics of what it announces
            await service.request(command)

    @broker.subscriber(
        IMPORT_FILES.queue(settings.queue_type, settings.delivery_limit),
        exchange=IMPORT_FILES.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=IMPORT_FILES.name,
        description="One message per file of the running import; replicas share them.",
    )
    async def on_import_file(command: ImportFile) -> None:
        current_kind.set(command.kind.value)
        await service.import_file(command)

    @broker.subscriber(
        IMPORT_RPC.queue(settings.queue_type, settings.delivery_limit),
        exchange=IMPORT_RPC.exchange,
        # a read is never redelivered: the caller has its own timeout and asks again
        ack_policy=AckPolicy.ACK,
        title=IMPORT_RPC.name,
        description="Reads asked by the gateway (import report, invoices, inbox counts, "
        "rejected files); the reply is the return value.",
    )
    async def on_rpc(
        request: ImportRpcRequest, message: RabbitMessage
    ) -> ImportReport | InvoiceList | InboxCounts | RejectedFile | dict[str, Any]:
        try:
            # bounded by the gateway's patience: an answer while it still waits
            with within_caller_deadline(message.raw_message.expiration):
                if isinstance(request, ImportReportRequest):
                    return await queries.report(request)
                if isinstance(request, InboxRequest):
                    return service.control.inbox()
                if isinstance(request, RejectedFileRequest):
                    return await service.control.rejected_file(request)
                return await queries.invoices(request)
        except Exception as e:
            if not store_unavailable(e):
                raise
            # the gateway's 503 rather than its 504 after a silence (gateway.rpc)
            return STORE_AWAY_REPLY
