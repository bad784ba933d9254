"""The gateway's event consumers on the real broker and store (issue 16, points 9, 10):
a notification redelivered is kept and pushed once, by every replica to the sockets it
holds, a failed document's republished snapshot is one notification, a malformed
message goes to the DLQ, and the productivity counters ignore redelivered steps."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import aio_pika
import httpx
import pytest
from stack import Stack, add_user
from system_client import Socket, login

from jauge_shared.contracts import (
    ColisStepChanged,
    Message,
    NotificationRequested,
    ProgressDocument,
    ProgressStatus,
    ProgressUpdated,
)
from jauge_shared.contracts.colis import ColisOperation, TaskStatus
from jauge_shared.topology import EVENTS_EXCHANGE, GATEWAY_NOTIFICATIONS

pytestmark = pytest.mark.system


async def publish(env: dict[str, str], *messages: Message | bytes, key: str = "") -> None:
    connection = await aio_pika.connect(env["JAUGE_AMQP_URL"])
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE.name)
        for message in messages:
            if isinstance(message, bytes):
                body = aio_pika.Message(message, content_type="application/json")
                await exchange.publish(body, routing_key=key)
                continue
            body = aio_pika.Message(
                message.model_dump_json().encode(),
                content_type="application/json",
                message_id=str(message.event_id),
            )
            await exchange.publish(body, routing_key=message.type)


async def until(check: Any, timeout_s: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.2)
    return result


async def test_told_once_per_event_and_counted_once_per_step(make_stack, test_env) -> None:
    stack: Stack = make_stack()
    replicas = [stack.start("gateway"), stack.start("gateway")]
    stack.wait_ready()
    env = test_env.env()
    add_user(env, "alice", "agent", "alice-password")
    base = replicas[0].url
    token = await login(base, "alice", "alice-password")
    headers = {"Authorization": f"Bearer {token}"}
    # one socket on each replica: only one of them keeps the notifications (the durable
    # queue's single active consumer), each must push them
    sockets = [await Socket.open(replica.url, token) for replica in replicas]
    for socket in sockets:
        await socket.subscribe("notifications")

    told = NotificationRequested(
        producer="colis-svc", job_id="t1", user_id="alice", message="Colis C1 enregistré."
    )
    failed = ProgressUpdated(
        producer="progress-svc",
        job_id="t2",
        job=ProgressDocument(
            id="t2",
            kind="colis.create",
            owner="alice",
            title="Colis pour Awa",
            status=ProgressStatus.FAILED,
            message="Poids invalide",
            seq=4,
        ),
    )
    # each twice (a redelivery; a snapshot published again), and one malformed body
    await publish(
        env,
        told,
        told,
        failed,
        failed.model_copy(update={"event_id": uuid4()}),
    )
    await publish(
        env, b'{"type": "notification.requested", "user_id": 3}', key="notification.requested"
    )

    for socket in sockets:
        first = await socket.until(lambda f: f.get("type") == "notification")
        assert first["notification"]["message"] in (
            "Colis C1 enregistré.",
            "La tâche « Colis pour Awa » a échoué : Poids invalide",
        )
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:

        async def listed() -> Any:
            page = (await http.get("/api/notifications")).json()
            return page if len(page["items"]) >= 2 else None

        page = await until(listed)
        await asyncio.sleep(1.0)  # the duplicates, had they been kept, would be there now
        page = (await http.get("/api/notifications")).json()
        assert sorted(n["kind"] for n in page["items"]) == ["colis", "failure"]
        assert page["unread"] == 2
        for socket in sockets:  # each replica pushed each notification once
            with contextlib.suppress(TimeoutError):  # every frame that came, read
                await socket.until(lambda f: False, timeout_s=0.5)
            pushed = [
                f["notification"]["id"] for f in socket.frames if f.get("type") == "notification"
            ]
            assert sorted(pushed) == sorted(n["id"] for n in page["items"]), pushed

        # the malformed one went to the gateway's DLQ, with the reason
        connection = await aio_pika.connect(env["JAUGE_AMQP_URL"])
        async with connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue(GATEWAY_NOTIFICATIONS.dlq_name, passive=True)

            async def dead() -> Any:
                return await dlq.get(no_ack=True, fail=False)

            message = await until(dead)
            assert message.headers.get("x-jauge-dead-letter-reason")

        # productivity: a parcel's steps, each delivered twice
        t0 = datetime.now(UTC) - timedelta(seconds=10)
        steps = [
            ColisStepChanged(
                producer="colis-svc",
                job_id="t3",
                task_id="t3",
                user_id="alice",
                lot_id="l1",
                operation=ColisOperation.CREATE,
                status=status,
                step=status.value,
                percent=0,
                seq=seq,
                occurred_at=t0 + timedelta(seconds=2 * seq),
            )
            for seq, status in enumerate(
                (
                    TaskStatus.PENDING,
                    TaskStatus.VALIDATION,
                    TaskStatus.CREATION,
                    TaskStatus.COMPLETED,
                )
            )
        ]
        await publish(env, *steps, *steps)

        async def counted() -> Any:
            figures = (await http.get("/api/stats/productivity?period=today")).json()
            return figures if figures["agents"] and figures["agents"][0]["steps"] else None

        figures = await until(counted)
        await asyncio.sleep(1.0)
        figures = (await http.get("/api/stats/productivity?period=today")).json()
        (alice,) = figures["agents"]
        assert alice["parcels"] == 1
        assert [(s["step"], s["count"], s["avg_s"]) for s in alice["steps"]] == [
            ("pending", 1, 2.0),
            ("validation", 1, 2.0),
            ("creation", 1, 2.0),
        ]
    for socket in sockets:
        await socket.close()
