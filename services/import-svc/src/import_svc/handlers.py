"""Subscribers of import-svc: message in, service call, events out."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker

from import_svc.service import ImportService
from jauge_shared.contracts import ImportFile, RequestImport
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import IMPORT_FILES, IMPORT_REQUESTS


def register(broker: RabbitBroker, settings: ServiceSettings, service: ImportService) -> None:
    @broker.subscriber(
        IMPORT_REQUESTS.queue(settings.queue_type, settings.delivery_limit),
        exchange=IMPORT_REQUESTS.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=IMPORT_REQUESTS.name,
        description="Import requests from the gateway; queued behind the import lock.",
    )
    async def on_import_requested(command: RequestImport) -> None:
        await service.request(command)

    @broker.subscriber(
        IMPORT_FILES.queue(settings.queue_type, settings.delivery_limit),
        exchange=IMPORT_FILES.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=IMPORT_FILES.name,
        description="One message per file of the running import; replicas share them.",
    )
    async def on_import_file(command: ImportFile) -> None:
        await service.import_file(command)
