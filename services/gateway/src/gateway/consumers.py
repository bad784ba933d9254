"""The gateway's durable event subscribers (besides each replica's progress.updated
queue in main.py): what an agent is told, and the productivity counters. Thin: the
message validated, the read model's module called, the sockets told."""

from __future__ import annotations

from typing import Annotated, Any

from faststream import AckPolicy
from faststream.rabbit.fastapi import RabbitRouter
from pydantic import Field, TypeAdapter

from gateway.hub import Hub
from gateway.notifications import NotificationStore, from_failure, from_request
from gateway.productivity import Productivity
from gateway.settings import GatewaySettings
from jauge_shared.contracts import (
    ColisStepChanged,
    NotificationRequested,
    ProgressStatus,
    ProgressUpdated,
)
from jauge_shared.topology import GATEWAY_NOTIFICATIONS, GATEWAY_PRODUCTIVITY

TOLD: TypeAdapter[NotificationRequested | ProgressUpdated] = TypeAdapter(
    Annotated[NotificationRequested | ProgressUpdated, Field(discriminator="type")]
)


def register(
    rabbit: RabbitRouter,
    settings: GatewaySettings,
    notifications: NotificationStore,
    productivity: Productivity,
    hub: Hub,
) -> None:
    @rabbit.subscriber(
        GATEWAY_NOTIFICATIONS.queue(settings.queue_type, settings.delivery_limit),
        exchange=GATEWAY_NOTIFICATIONS.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=GATEWAY_NOTIFICATIONS.name,
        description=(
            "notification.requested, and progress.updated for the tasks and imports that "
            "fail: kept in the owner's notifications and pushed to their sockets."
        ),
    )
    async def on_told(body: dict[str, Any]) -> None:
        job = body.get("job")
        if (
            body.get("type") == "progress.updated"
            and isinstance(job, dict)
            and job.get("status") != ProgressStatus.FAILED.value
        ):
            # most of them: dropped before the whole document is validated (the
            # gateway's time, at a thousand updates a second)
            return
        # a body that is neither raises ValidationError: to the DLQ with the reason
        event = TOLD.validate_python(body)
        if isinstance(event, NotificationRequested):
            owner, notification = event.user_id, from_request(event)
        else:
            job = event.job.model_dump(mode="json", by_alias=True)
            failure = from_failure(job)
            if failure is None:
                return
            owner, notification = event.job.owner, failure
        if await notifications.add(owner, notification):
            hub.notify(owner, notification)

    @rabbit.subscriber(
        GATEWAY_PRODUCTIVITY.queue(settings.queue_type, settings.delivery_limit),
        exchange=GATEWAY_PRODUCTIVITY.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=GATEWAY_PRODUCTIVITY.name,
        description="colis.step_changed: the daily productivity counters, by deltas.",
    )
    async def on_step(body: dict[str, Any]) -> None:
        await productivity.apply(ColisStepChanged.model_validate(body))
