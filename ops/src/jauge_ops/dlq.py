"""Dead-letter queues from a terminal: list them, read them, send messages back.

`jauge dlq list|show|replay` (see cli.py and docs/operations.md). Everything goes
through AMQP on `JAUGE_AMQP_URL`, so it needs no management plugin:

- list: each `<queue>.dlq` of the topology with its message count (passive declare),
  and how many consumers its original queue has;
- show: the first N messages with their reason, without losing or reordering them:
  the whole queue is fetched unacked on one channel, then returned at once with
  `basic.nack(multiple, requeue)` (a classic queue puts each back where it was; a
  quorum queue on RabbitMQ 3.x appends them at the tail, in order, so a full turn
  keeps the order; a message dead-lettered during that turn lands before them);
- replay: each message, oldest first, is published again to its original queue
  through the default exchange (only that queue gets it, not every subscriber of the
  original routing key), with publisher confirms; the DLQ copy is acked only once
  the broker has confirmed the new one. A crash in between leaves a duplicate, never
  a loss, and the consumers are idempotent on `message_id`.

Over 300 lines on purpose: list, show and replay share the channel discipline above (fetch
unacked, give back with one nack, ack a copy only once confirmed), so they read together.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from jauge_shared.identity import connection_name
from jauge_shared.settings import split_amqp_urls
from jauge_shared.topology import (
    ALL_QUEUES,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_ROUTING_KEY_HEADER,
    DLQ_SUFFIX,
)

REPLAYED_FROM_HEADER = "x-jauge-replayed-from"
REPLAY_COUNT_HEADER = "x-jauge-replay-count"
DEAD_LETTER_HEADERS = (
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_ROUTING_KEY_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


class DlqError(Exception):
    """Something the operator must fix (unknown queue, broker away): one line to print."""


@dataclass(frozen=True)
class DlqStatus:
    queue: str
    messages: int | None  # None: not declared on this broker (the service never started)
    original_queue: str
    original_messages: int | None
    original_consumers: int | None


@dataclass
class DeadLetter:
    position: int
    message_id: str | None
    type: str | None
    original_queue: str
    original_routing_key: str | None
    reason: str
    redelivered: bool
    timestamp: str | None
    headers: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    body_base64: bool = False

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReplayResult:
    queue: str
    replayed: list[tuple[str | None, str]]  # (message_id, target queue)
    remaining: int


def original_queue_of(dlq: str, headers: dict[str, Any]) -> str:
    """Where a dead-lettered message came from: our header, RabbitMQ's, or the name."""
    value = headers.get(DEAD_LETTER_QUEUE_HEADER)
    if value:
        return _text(value)
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        queue = deaths[0].get("queue")
        if queue:
            return _text(queue)
    return dlq.removesuffix(DLQ_SUFFIX)


def reason_of(headers: dict[str, Any]) -> str:
    """Our reason header; else RabbitMQ's own (delivery limit, rejected, expired)."""
    value = headers.get(DEAD_LETTER_REASON_HEADER)
    if value:
        return _text(value)
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        death = deaths[0]
        return f"rabbitmq: {_text(death.get('reason', '?'))} (count {death.get('count', '?')})"
    return "(no reason recorded)"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _plain(value: Any) -> Any:
    """Header values as JSON-friendly values (AMQP tables hold bytes and datetimes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check_dlq_name(queue: str) -> None:
    if not queue.endswith(DLQ_SUFFIX):
        raise DlqError(f"{queue!r} is not a dead-letter queue (its name ends with {DLQ_SUFFIX})")


async def _connect(amqp_url: str) -> AbstractConnection:
    """The first node of JAUGE_AMQP_URL (one URL, or a cluster's, commas between) that
    answers."""
    error: BaseException | None = None
    for url in split_amqp_urls(amqp_url):
        try:
            return await aio_pika.connect(
                url, client_properties={"connection_name": connection_name("jauge-cli")}
            )
        except (aiormq.exceptions.AMQPError, OSError) as exc:
            error = exc
    raise DlqError(f"cannot reach RabbitMQ: {error}") from error


async def _passive(connection: AbstractConnection, name: str) -> tuple[int, int] | None:
    """(messages, consumers) of a queue, or None when it does not exist."""
    # a failed passive declare closes its channel: one channel per question
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()
    result = queue.declaration_result
    return int(result.message_count or 0), int(result.consumer_count or 0)


async def list_dlqs(amqp_url: str) -> list[DlqStatus]:
    connection = await _connect(amqp_url)
    async with connection:
        statuses = []
        for spec in ALL_QUEUES:
            dlq = await _passive(connection, spec.dlq_name)
            original = await _passive(connection, spec.name)
            statuses.append(
                DlqStatus(
                    queue=spec.dlq_name,
                    messages=None if dlq is None else dlq[0],
                    original_queue=spec.name,
                    original_messages=None if original is None else original[0],
                    original_consumers=None if original is None else original[1],
                )
            )
        return statuses


def _dead_letter(position: int, queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    headers = dict(message.headers or {})
    try:
        body, is_base64 = message.body.decode("utf-8"), False
    except UnicodeDecodeError:
        body, is_base64 = base64.b64encode(message.body).decode("ascii"), True
    return DeadLetter(
        position=position,
        message_id=message.message_id,
        type=message.type,
        original_queue=original_queue_of(queue, headers),
        original_routing_key=_text(headers[DEAD_LETTER_ROUTING_KEY_HEADER])
        if headers.get(DEAD_LETTER_ROUTING_KEY_HEADER)
        else message.routing_key,
        reason=reason_of(headers),
        redelivered=bool(message.redelivered),
        timestamp=message.timestamp.isoformat() if message.timestamp else None,
        headers=_plain(headers),
        body=body,
        body_base64=is_base64,
    )


async def _open_queue(
    connection: AbstractConnection, queue: str, *, confirms: bool = False
) -> tuple[AbstractChannel, aio_pika.abc.AbstractQueue]:
    if await _passive(connection, queue) is None:
        raise DlqError(f"no queue {queue!r} on this broker (vhost)")
    # on_return_raises: a mandatory message that no queue takes fails its publish
    channel = await connection.channel(publisher_confirms=confirms, on_return_raises=confirms)
    return channel, await channel.declare_queue(queue, passive=True)


async def show(amqp_url: str, queue: str, limit: int) -> list[DeadLetter]:
    """The first `limit` messages, oldest first, left in the queue as they were."""
    _check_dlq_name(queue)
    connection = await _connect(amqp_url)
    async with connection:
        channel, dlq = await _open_queue(connection, queue)
        # The whole queue (as counted now) is held, not only `limit` messages: classic
        # queues put a returned message back where it was, but quorum queues before
        # RabbitMQ 4.0 append it at the tail, so only a full turn keeps their order.
        whole = int(dlq.declaration_result.message_count or 0)
        held: list[AbstractIncomingMessage] = []
        try:
            while len(held) < max(limit, whole):
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                held.append(message)
            return [_dead_letter(i + 1, queue, m) for i, m in enumerate(held[:limit])]
        finally:
            if held:
                # one nack for all, in delivery order: back in their original order
                await held[-1].nack(multiple=True, requeue=True)
            await channel.close()


async def replay(amqp_url: str, queue: str, limit: int | None) -> ReplayResult:
    """Send up to `limit` messages (all when None) back to their original queue."""
    _check_dlq_name(queue)
    connection = await _connect(amqp_url)
    async with connection:
        channel, dlq = await _open_queue(connection, queue, confirms=True)
        replayed: list[tuple[str | None, str]] = []
        known_targets: set[str] = set()
        try:
            while limit is None or len(replayed) < limit:
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                headers = dict(message.headers or {})
                target = original_queue_of(queue, headers)
                if target not in known_targets:
                    if target.endswith(DLQ_SUFFIX) or await _passive(connection, target) is None:
                        await message.nack(requeue=True)
                        raise DlqError(
                            f"message {message.message_id!r}: its original queue {target!r} "
                            f"does not exist; stopped after {len(replayed)} replayed"
                        )
                    known_targets.add(target)
                clean = {k: v for k, v in headers.items() if k not in DEAD_LETTER_HEADERS}
                clean[REPLAYED_FROM_HEADER] = queue
                previous = headers.get(REPLAY_COUNT_HEADER)
                clean[REPLAY_COUNT_HEADER] = (previous if isinstance(previous, int) else 0) + 1
                again = aio_pika.Message(
                    message.body,
                    headers=clean,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    priority=message.priority,
                    correlation_id=message.correlation_id,
                    message_id=message.message_id,
                    timestamp=message.timestamp,
                    type=message.type,
                    user_id=None,
                    app_id=message.app_id,
                )
                # confirms on: this returns once the broker has stored the new copy;
                # mandatory: an unroutable copy raises instead of vanishing
                try:
                    await channel.default_exchange.publish(
                        again, routing_key=target, mandatory=True
                    )
                except aio_pika.exceptions.DeliveryError as exc:
                    # the DLQ copy is not acked: it goes back when the channel closes
                    raise DlqError(
                        f"message {message.message_id!r} was not accepted by {target!r} "
                        f"({exc}); stopped after {len(replayed)} replayed"
                    ) from exc
                await message.ack()
                replayed.append((message.message_id, target))
        finally:
            await channel.close()
        after = await _passive(connection, queue)
        return ReplayResult(queue, replayed, 0 if after is None else after[0])


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)
