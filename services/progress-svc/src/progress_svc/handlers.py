"""Subscribers of progress-svc: message in, service call, event out."""

from __future__ import annotations

from typing import Annotated, Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from pydantic import Field, TypeAdapter

from jauge_shared.contracts import (
    ColisStepChanged,
    FileImported,
    ImportCleanupStarted,
    ImportFinished,
    ImportQueued,
    ImportStarted,
)
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import PROGRESS_EVENTS
from progress_svc.service import ProgressService

ProgressEvent = Annotated[
    ImportQueued
    | ImportStarted
    | ImportCleanupStarted
    | FileImported
    | ImportFinished
    | ColisStepChanged,
    Field(discriminator="type"),
]
_parse_event: TypeAdapter[Any] = TypeAdapter(ProgressEvent)


def register(broker: RabbitBroker, settings: ServiceSettings, service: ProgressService) -> None:
    queue = PROGRESS_EVENTS.queue(settings.queue_type, settings.delivery_limit)

    @broker.subscriber(
        queue,
        exchange=PROGRESS_EVENTS.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="progress-svc.events",
        description="Every progress-bearing event; each one updates a progress document.",
    )
    async def on_progress_event(body: dict[str, Any]) -> None:
        await service.handle(_parse_event.validate_python(body))
