"""Publishing with the envelope's properties, and what happens to a message that fails.

- Validation failures and poison: copied to the queue's `.dlq` with the reason in a
  header, then acked (the copy is confirmed before the ack, so nothing is lost).
- Transient failures (store or broker away): retried after an exponential, jittered
  delay, by nacking with requeue once the delay has passed.
- Anything else is a bug; the message is dead-lettered with the error so that it can be
  replayed once fixed, instead of spinning forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import aiormq
from faststream import BaseMiddleware
from faststream.exceptions import FastStreamException
from faststream.rabbit import RabbitBroker
from faststream.rabbit.publisher import RabbitPublisher
from prometheus_client import Counter
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure

from jauge_shared.contracts import Command, Message, message_type
from jauge_shared.errors import BROKER_RESTARTING, PoisonMessageError, TransientError
from jauge_shared.errors import is_transient as is_transient  # its home before errors.py
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import (
    COMMANDS_EXCHANGE,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_ROUTING_KEY_HEADER,
    DLQ_SUFFIX,
    EVENTS_EXCHANGE,
)

logger = logging.getLogger("jauge.messaging")

# the exceptions that are transient by their class alone (colis-svc re-raises any other
# that `is_transient` accepts as a TransientError); the rule itself is
# `jauge_shared.errors.is_transient`, for every service
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionFailure,
    asyncio.TimeoutError,
    ConnectionError,
    aiormq.exceptions.AMQPConnectionError,
    *BROKER_RESTARTING,
)

POISON_ERRORS: tuple[type[BaseException], ...] = (
    PoisonMessageError,
    ValidationError,
    json.JSONDecodeError,
    UnicodeDecodeError,
)

DEAD_LETTERED = Counter(
    "jauge_messages_dead_lettered_total",
    "Messages sent to a dead-letter queue, by queue and reason class.",
    ["queue", "reason"],
)
RETRIED = Counter(
    "jauge_messages_retried_total",
    "Messages requeued after a transient failure, by queue.",
    ["queue"],
)


def message_publishers(
    broker: RabbitBroker, models: Iterable[type[Message]]
) -> dict[str, RabbitPublisher]:
    """One publisher per message a service sends, by its type: a command on
    `jauge.commands`, an event on `jauge.events`, described in the service's AsyncAPI page
    by its model (schema, and the first line of its docstring)."""
    return {
        message_type(model): broker.publisher(
            message_type(model),
            exchange=COMMANDS_EXCHANGE if issubclass(model, Command) else EVENTS_EXCHANGE,
            schema=model,
            title=message_type(model),
            description=(model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else None,
        )
        for model in models
    }


async def publish(publisher: RabbitPublisher, message: Message) -> None:
    """Publish one command or event on its named publisher, confirmed by the broker.

    When heartbeats find the connection dead, aiormq cancels the confirms it was still
    waiting for: the caller would get a CancelledError it never asked for, which slips
    past every `except Exception` (the gateway answered 500 instead of 503, a handler
    skipped the retry policy). It is raised as the broker failure it is.
    """
    await confirmed(
        publisher.publish(message, **message.amqp_properties()), f"{message.type} was confirmed"
    )


async def confirmed(publishing: Awaitable[Any], what: str) -> None:
    """Await a confirmed publish, a lost connection's cancelled confirm raised as the
    broker failure it is (`ConnectionError`); the caller's own cancellation stays one."""
    try:
        await publishing
    except asyncio.CancelledError as exc:
        caller = asyncio.current_task()
        if caller is not None and caller.cancelling():
            raise
        raise ConnectionError(f"the connection to RabbitMQ was lost before {what}") from exc


def describe_error(exc: BaseException) -> str:
    """A one-line reason for the DLQ header (pydantic's errors are many lines)."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors()[:10]
        ]
        return f"schema validation failed: {'; '.join(parts)}"
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text}"[:1000]


class RetryBackoff:
    """Exponential delay with full jitter, counted per message id."""

    def __init__(self, base_s: float, max_s: float, memory: int = 10_000) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self._attempts: OrderedDict[str, int] = OrderedDict()
        self._memory = memory

    def next_delay(self, message_id: str) -> float:
        attempt = self._attempts.pop(message_id, 0) + 1
        self._attempts[message_id] = attempt
        while len(self._attempts) > self._memory:
            self._attempts.popitem(last=False)
        ceiling = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def forget(self, message_id: str) -> None:
        self._attempts.pop(message_id, None)


class FailurePolicy:
    """What becomes of a message its handler failed on: the module's rules above.

    Shared by the FastStream middleware below and by consumers that read a queue with
    aio-pika directly (progress-svc's events), so both settle failures alike.
    """

    def __init__(self, backoff: RetryBackoff) -> None:
        self.backoff = backoff

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> FailurePolicy:
        return cls(RetryBackoff(settings.retry_base_delay_s, settings.retry_max_delay_s))

    def succeeded(self, message_id: str) -> None:
        """The message went through: its retry count starts again from zero."""
        self.backoff.forget(message_id)

    async def settle(
        self,
        raw: Any,
        queue: str,
        exc: BaseException,
        *,
        before_delay: Callable[[], None] | None = None,
    ) -> bool:
        """Dead-letters `raw` (True: ack the original) or waits out the retry delay of a
        transient failure (False: requeue it now)."""
        message_id = message_id_of(raw)
        if is_transient(exc):
            delay = self.backoff.next_delay(message_id)
            logger.warning(
                "transient failure, retrying",
                extra={
                    "queue": queue,
                    "message_id": message_id,
                    "delay_s": round(delay, 3),
                    "error": describe_error(exc),
                },
            )
            RETRIED.labels(queue).inc()
            if before_delay is not None:
                before_delay()
            await asyncio.sleep(delay)
            return False
        reason_class = "poison" if isinstance(exc, POISON_ERRORS) else "error"
        if isinstance(exc, FastStreamException) and exc.__cause__ is not None:
            exc = exc.__cause__
        reason = describe_error(exc)
        await dead_letter(raw, queue, reason)
        DEAD_LETTERED.labels(queue, reason_class).inc()
        self.backoff.forget(message_id)
        log = logger.warning if reason_class == "poison" else logger.error
        log(
            "message dead-lettered",
            extra={"queue": queue, "message_id": message_id, "reason": reason},
            exc_info=reason_class == "error",
        )
        return True


def message_id_of(raw: Any) -> str:
    return str(getattr(raw, "message_id", "") or "")


async def dead_letter(raw: Any, queue: str, reason: str) -> None:
    """A copy of the aio-pika message `raw` in `queue`'s DLQ, with the reason."""
    headers = dict(raw.headers or {})
    headers[DEAD_LETTER_REASON_HEADER] = reason
    headers[DEAD_LETTER_QUEUE_HEADER] = queue
    headers[DEAD_LETTER_ROUTING_KEY_HEADER] = raw.routing_key or ""
    properties = aiormq.spec.Basic.Properties(
        content_type=raw.content_type,
        content_encoding=raw.content_encoding,
        headers=headers,
        delivery_mode=2,
        message_id=raw.message_id,
        message_type=raw.type,
        timestamp=raw.timestamp,
        correlation_id=raw.correlation_id,
        app_id=raw.app_id,
    )
    # the consumer's channel has publisher confirms: this returns once it is stored
    await raw.channel.basic_publish(
        raw.body, exchange="", routing_key=queue + DLQ_SUFFIX, properties=properties
    )


class DeadLetterMiddleware(BaseMiddleware):
    """Applies the failure policy above to every subscriber of a broker."""

    policy: FailurePolicy

    @classmethod
    def factory(cls, settings: ServiceSettings) -> Callable[..., DeadLetterMiddleware]:
        policy = FailurePolicy.from_settings(settings)

        def build(msg: Any, /, *, context: Any) -> DeadLetterMiddleware:
            middleware = cls(msg, context=context)
            middleware.policy = policy
            return middleware

        return build

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        if exc_val is None:
            self.policy.succeeded(message_id_of(self.msg))
            return False
        queue = self._queue_name()
        if queue is None or getattr(self.msg, "reply_to", None):
            # exclusive queues and RPC requests have no DLQ: the caller sees the error
            return False
        # False: the subscriber's NACK_ON_ERROR policy requeues it; True: acked
        return await self.policy.settle(self.msg, queue, exc_val)

    def _queue_name(self) -> str | None:
        subscriber = self.context.get("handler_")
        queue = getattr(subscriber, "queue", None)
        name = getattr(queue, "name", None)
        if not name or getattr(queue, "exclusive", False):
            return None
        return str(name)
