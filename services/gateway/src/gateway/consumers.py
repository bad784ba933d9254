"""The gateway's event subscribers. Thin: the message validated, the read model's
module called, the sockets told.

- Durable, one active consumer among the replicas (`register`): what an agent is told,
  kept in their notifications; the productivity counters.
- Each replica's own exclusive queues (`register_replica`): every progress.updated, to
  the live views and sockets; and what an agent is told, pushed to the sockets this
  replica holds. Pushed from here rather than by the replica that keeps it: an agent
  connected to another replica would otherwise see it only at the bell's next reading.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Annotated, Any

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.rabbit.fastapi import RabbitRouter
from pydantic import Field, TypeAdapter

from gateway.hub import Hub
from gateway.live import LiveUpdates
from gateway.notifications import NotificationStore, from_failure, from_request
from gateway.productivity import Productivity
from gateway.settings import GatewaySettings
from jauge_shared.contracts import (
    ColisStepChanged,
    NotificationRequested,
    ProgressStatus,
    ProgressUpdated,
)
from jauge_shared.topology import (
    COMMANDS_EXCHANGE,
    EVENTS_EXCHANGE,
    GATEWAY_NOTIFICATIONS,
    GATEWAY_PRODUCTIVITY,
    gateway_notices_queue,
    gateway_progress_queue,
)

logger = logging.getLogger("gateway")

TOLD: TypeAdapter[NotificationRequested | ProgressUpdated] = TypeAdapter(
    Annotated[NotificationRequested | ProgressUpdated, Field(discriminator="type")]
)


def register(
    rabbit: RabbitRouter,
    settings: GatewaySettings,
    notifications: NotificationStore,
    productivity: Productivity,
) -> None:
    @rabbit.subscriber(
        GATEWAY_NOTIFICATIONS.queue(settings.queue_type, settings.delivery_limit),
        exchange=GATEWAY_NOTIFICATIONS.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=GATEWAY_NOTIFICATIONS.name,
        description=(
            "notification.requested, and progress.updated for the tasks and imports that "
            "fail: kept in the owner's notifications (each replica pushes them)."
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
        await notifications.add(owner, notification)

    @rabbit.subscriber(
        GATEWAY_PRODUCTIVITY.queue(settings.queue_type, settings.delivery_limit),
        exchange=GATEWAY_PRODUCTIVITY.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=GATEWAY_PRODUCTIVITY.name,
        description="colis.step_changed: the daily productivity counters, by deltas.",
    )
    async def on_step(body: dict[str, Any]) -> None:
        await productivity.apply(ColisStepChanged.model_validate(body))


def register_replica(rabbit: RabbitRouter, live: LiveUpdates, hub: Hub) -> None:
    """This replica's own queues, and its views rebuilt when the broker connection
    comes back (the queues are exclusive: what was published meanwhile is lost; the
    notifications are kept by the durable queue and read again by the bell)."""
    replica = f"{socket.gethostname()}.{os.getpid()}"

    @rabbit.subscriber(
        gateway_progress_queue(replica),
        exchange=EVENTS_EXCHANGE,
        ack_policy=AckPolicy.ACK_FIRST,
        title="gateway.progress.<replica>",
        description="Every progress.updated, pushed to this replica's sockets; a failure "
        "also to its owner's notifications topic.",
    )
    async def on_progress_updated(event: ProgressUpdated) -> None:
        job = event.job.model_dump(mode="json", by_alias=True)
        live.receive(job)
        failure = from_failure(job)
        if failure is not None:
            hub.notify(event.job.owner, failure)

    @rabbit.subscriber(
        gateway_notices_queue(replica),
        exchange=EVENTS_EXCHANGE,
        ack_policy=AckPolicy.ACK_FIRST,
        title="gateway.notices.<replica>",
        description="Every notification.requested, pushed to its owner's sockets here.",
    )
    async def on_notice(event: NotificationRequested) -> None:
        hub.notify(event.user_id, from_request(event))

    rebuilding: set[asyncio.Task[None]] = set()

    @rabbit.after_startup
    async def declare_exchanges(_app: FastAPI) -> None:
        await rabbit.broker.declare_exchange(COMMANDS_EXCHANGE)
        await rabbit.broker.declare_exchange(EVENTS_EXCHANGE)
        # FastStream's RabbitRouter takes no `on_reconnected`: the hook goes on the connection
        connection = getattr(rabbit.broker, "_connection", None)
        if connection is None:
            logger.warning("no broker connection to watch: views not rebuilt on reconnect")
            return

        def reconnected(_: object) -> None:
            task = asyncio.create_task(live.rebuild())
            rebuilding.add(task)
            task.add_done_callback(rebuilding.discard)

        connection.reconnect_callbacks.add(reconnected)
