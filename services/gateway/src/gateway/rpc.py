"""Request/reply to the other services over RabbitMQ's Direct Reply-To, with a deadline.

FastStream's `broker.request` holds one lock for the whole round trip, so a gateway
answering many forms at once would ask one question at a time. `RpcClient` keeps one
channel with one consumer on `amq.rabbitmq.reply-to` and matches replies by
correlation id, so any number of requests are in flight together.

No reply within `rpc_timeout_s` is a 504; a broker failure or a reply that cannot be
read is a 503. Both carry a French message naming the service that did not answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeVar
from uuid import uuid4

import aio_pika
from fastapi import HTTPException, status
from pydantic import BaseModel, ValidationError

from gateway.state import GatewayState
from jauge_shared.broker import connect_robust
from jauge_shared.topology import COMMANDS_EXCHANGE

logger = logging.getLogger("gateway.rpc")
Reply = TypeVar("Reply", bound=BaseModel)

REPLY_TO = "amq.rabbitmq.reply-to"


class RpcClient:
    """Concurrent request/reply; opened lazily, closed with the gateway."""

    def __init__(self, url: str, connection_name: str) -> None:
        self.url = url
        self.connection_name = connection_name
        self._lock = asyncio.Lock()
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._pending: dict[str, asyncio.Future[bytes]] = {}

    async def _ready(self) -> aio_pika.abc.AbstractExchange:
        async with self._lock:
            if self._exchange is None or self._channel is None or self._channel.is_closed:
                if self._connection is None:
                    self._connection = await connect_robust(
                        self.url, client_properties={"connection_name": self.connection_name}
                    )
                    self._connection.close_callbacks.add(self._on_connection_lost)
                self._channel = await self._connection.channel(publisher_confirms=False)
                replies = await self._channel.get_queue(REPLY_TO, ensure=False)
                await replies.consume(self._on_reply, no_ack=True)
                self._exchange = await self._channel.get_exchange(
                    COMMANDS_EXCHANGE.name, ensure=False
                )
            return self._exchange

    def _on_connection_lost(self, _: object, exc: BaseException | None = None) -> None:
        """Direct Reply-To answers on the connection that asked: once it is lost (a
        reset, or heartbeats that found it dead) no reply can come, so the callers get
        their 503 now rather than a 504 at the deadline. The channel is opened again on
        the next call: the robust channel aio-pika restores does not get the replies of
        Direct Reply-To back (every call timed out after a reconnection)."""
        self._exchange = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    ConnectionError(f"connection to RabbitMQ lost before the reply: {exc}")
                )

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(
        self, body: bytes, routing_key: str, deadline_s: float, **properties: Any
    ) -> bytes:
        exchange = await asyncio.wait_for(self._ready(), deadline_s)
        correlation_id = uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    correlation_id=correlation_id,
                    reply_to=REPLY_TO,
                    # a request nobody took in time is dropped instead of answered to no one
                    expiration=deadline_s,
                    **properties,
                ),
                routing_key=routing_key,
            )
            return await asyncio.wait_for(future, deadline_s)
        finally:
            self._pending.pop(correlation_id, None)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = self._channel = self._exchange = None


async def ask_raw(
    state: GatewayState, routing_key: str, body: bytes, service: str, **properties: Any
) -> bytes:
    """The raw reply; `service` names the one asked, for the user ("des imports")."""
    try:
        return await state.rpc.call(body, routing_key, state.settings.rpc_timeout_s, **properties)
    except TimeoutError as e:
        logger.warning("rpc timed out", extra={"routing_key": routing_key})
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            detail=f"Le service {service} n'a pas répondu à temps : réessayez dans un instant.",
        ) from e
    except Exception as e:
        logger.warning("rpc failed", extra={"routing_key": routing_key, "error": str(e)})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=unavailable(service)) from e


def unavailable(service: str) -> str:
    return (
        f"Service {service} momentanément indisponible : la demande n'a pas abouti, "
        "réessayez dans un instant."
    )


def parse_reply(raw: bytes, reply_model: type[Reply], routing_key: str, service: str) -> Reply:
    try:
        return reply_model.model_validate_json(raw)
    except ValidationError as e:
        logger.error("rpc reply not understood", extra={"routing_key": routing_key})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=unavailable(service)) from e


async def ask(
    state: GatewayState, routing_key: str, request: BaseModel, reply_model: type[Reply]
) -> Reply:
    """A question to import-svc, answered with `reply_model`."""
    service = "des imports"
    raw = await ask_raw(state, routing_key, request.model_dump_json().encode(), service)
    return parse_reply(raw, reply_model, routing_key, service)
