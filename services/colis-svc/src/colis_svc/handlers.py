"""Subscribers of colis-svc: message in, service call, events out."""

from __future__ import annotations

from typing import Annotated, Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import Field, TypeAdapter

from colis_svc import photos
from colis_svc.runs import Emit, store_errors_are_transient
from colis_svc.service import ColisService
from jauge_shared.contracts import (
    AnnounceColisTask,
    CancelColisTask,
    ColisRpcRequest,
    CreateColis,
    PhotoReady,
    RetryColisTask,
    UpdateColis,
)
from jauge_shared.mongo import within_caller_deadline
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import COLIS_ACCEPTED, COLIS_CONTROL, COLIS_RPC, COLIS_TASKS

TASK_COMMAND: TypeAdapter[CreateColis | UpdateColis] = TypeAdapter(
    Annotated[CreateColis | UpdateColis, Field(discriminator="type")]
)
CONTROL_COMMAND: TypeAdapter[RetryColisTask | CancelColisTask | PhotoReady | AnnounceColisTask] = (
    TypeAdapter(
        Annotated[
            RetryColisTask | CancelColisTask | PhotoReady | AnnounceColisTask,
            Field(discriminator="type"),
        ]
    )
)


def register(
    broker: RabbitBroker, settings: ServiceSettings, service: ColisService, republish: Emit
) -> None:
    @broker.subscriber(
        COLIS_TASKS.queue(settings.queue_type, settings.delivery_limit),
        exchange=COLIS_TASKS.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=COLIS_TASKS.name,
        description="colis.create and colis.update: one parcel task's pipeline each.",
    )
    async def on_task(body: dict[str, Any]) -> None:
        # a body that is no task command raises ValidationError: to the DLQ with the reason
        await service.pipeline.run_task(TASK_COMMAND.validate_python(body))

    @broker.subscriber(
        COLIS_ACCEPTED.queue(settings.queue_type, settings.delivery_limit),
        exchange=COLIS_ACCEPTED.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=COLIS_ACCEPTED.name,
        description=(
            "colis.create and colis.update, again: the task is stored and its first "
            "colis.step_changed (seq 0, pending) announced at once, so the dashboard "
            "shows it while the workers are busy."
        ),
    )
    async def on_accepted(body: dict[str, Any]) -> None:
        async with store_errors_are_transient():
            await service.pipeline.accept(TASK_COMMAND.validate_python(body))

    @broker.subscriber(
        COLIS_CONTROL.queue(settings.queue_type, settings.delivery_limit),
        exchange=COLIS_CONTROL.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=COLIS_CONTROL.name,
        description=(
            "colis.retry and colis.cancel (answered when sent as a request), "
            "colis.photo_ready (a task waiting for its photo runs on), and the "
            "reconciler's colis.announce."
        ),
    )
    async def on_control(body: dict[str, Any]) -> dict[str, Any] | None:
        command = CONTROL_COMMAND.validate_python(body)
        async with store_errors_are_transient():
            if isinstance(command, RetryColisTask):
                return await service.control.retry(command, republish)
            if isinstance(command, PhotoReady):
                await photos.photo_ready(service.tasks, command, republish)
                return {"ok": True, "result": None}
            if isinstance(command, AnnounceColisTask):
                await service.pipeline.announce(command)
                return None
            return await service.control.cancel(command)

    @broker.subscriber(
        COLIS_RPC.queue(settings.queue_type, settings.delivery_limit),
        exchange=COLIS_RPC.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=COLIS_RPC.name,
        description="Reads and lot/client changes asked by the gateway (request/reply).",
    )
    async def on_rpc(request: ColisRpcRequest, message: RabbitMessage) -> dict[str, Any]:
        # a store away or silent: the 503 reply of `rpc` while the gateway still waits
        with within_caller_deadline(message.raw_message.expiration):
            return await service.queries.rpc(request)
