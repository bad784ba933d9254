"""`jauge dlq list|show|replay` on messages that a running progress-svc dead-lettered."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import aio_pika
import pytest
from stack import ROOT

pytestmark = pytest.mark.system

QUEUE = "progress-svc.events"
DLQ = QUEUE + ".dlq"


def jauge(test_env, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **test_env.env()},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def dlq_count(test_env) -> int | None:
    listed = json.loads(jauge(test_env, "dlq", "list", "--json").stdout)
    return next(s["messages"] for s in listed if s["queue"] == DLQ)


@pytest.mark.parametrize(
    "queue_type",
    [
        # quorum queues are what `make run` and production use; classic behind -m slow
        pytest.param("classic", marks=pytest.mark.slow),
        "quorum",
    ],
)
async def test_dead_letters_are_listed_shown_in_order_and_replayed(
    make_stack, test_env, queue_type
) -> None:
    stack = make_stack(JAUGE_QUEUE_TYPE=queue_type)
    progress = stack.start("progress-svc")
    stack.wait_ready()
    ids = [f"poison-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        events = await channel.get_exchange("jauge.events")
        for message_id in ids:
            # valid JSON, but not a file.imported event: progress-svc dead-letters it
            body = json.dumps({"type": "file.imported", "job_id": message_id}).encode()
            await events.publish(
                aio_pika.Message(body, content_type="application/json", message_id=message_id),
                routing_key="file.imported",
            )
        dlq = await channel.declare_queue(DLQ, passive=True)
        deadline = time.monotonic() + 30
        while dlq.declaration_result.message_count < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            dlq = await channel.declare_queue(DLQ, passive=True)
    assert dlq_count(test_env) == 3
    assert "colis-svc.tasks.dlq" in jauge(test_env, "dlq", "list").stdout

    # look in full, then at the first one only, then in full again: nothing is lost or
    # reordered by looking (quorum queues on RabbitMQ 3.x return messages at the tail)
    first = json.loads(jauge(test_env, "dlq", "show", DLQ, "--limit", "1", "--json").stdout)
    assert [m["message_id"] for m in first] == ids[:1]
    shown = json.loads(jauge(test_env, "dlq", "show", DLQ, "--json").stdout)
    assert [m["message_id"] for m in shown] == ids
    for message in shown:
        assert message["original_queue"] == QUEUE
        assert message["original_routing_key"] == "file.imported"
        assert "schema validation failed" in message["reason"]
    text = jauge(test_env, "dlq", "show", DLQ, "--limit", "2").stdout
    assert "reason: schema validation failed" in text and ids[1] in text and ids[2] not in text

    # with the consumer stopped, replayed messages stay in the original queue to be seen
    stack.stop(progress)
    replayed = jauge(test_env, "dlq", "replay", DLQ, "--limit", "2").stdout
    assert f"replayed {ids[0]} -> {QUEUE}" in replayed
    assert "2 replayed, 1 left" in replayed
    assert "1 replayed, 0 left" in jauge(test_env, "dlq", "replay", DLQ).stdout
    assert dlq_count(test_env) == 0

    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(QUEUE, passive=True)
        back: list[aio_pika.abc.AbstractIncomingMessage] = []
        # a consumer, not basic.get: quorum queues with single active consumer refuse get
        async with queue.iterator(timeout=10) as messages:
            async for message in messages:
                back.append(message)
                if len(back) == len(ids):
                    break
        assert [m.message_id for m in back] == ids
        for message in back:
            headers = message.headers or {}
            assert "x-jauge-dead-letter-reason" not in headers
            assert headers["x-jauge-replayed-from"] == DLQ
            assert headers["x-jauge-replay-count"] == 1
            assert message.content_type == "application/json"
            await message.ack()

    # a dead letter whose original queue is gone stays where it is
    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(b"{}", headers={"x-jauge-original-queue": "gone.queue"}),
            routing_key=DLQ,
        )
    stuck = jauge(test_env, "dlq", "replay", DLQ, check=False)
    assert stuck.returncode == 1 and "'gone.queue' does not exist" in stuck.stderr
    assert dlq_count(test_env) == 1

    # wrong names are refused with a message, not a traceback
    refused = jauge(test_env, "dlq", "show", QUEUE, check=False)
    assert refused.returncode == 1 and "not a dead-letter queue" in refused.stderr
    missing = jauge(test_env, "dlq", "replay", "nope.dlq", check=False)
    assert missing.returncode == 1 and "no queue" in missing.stderr
