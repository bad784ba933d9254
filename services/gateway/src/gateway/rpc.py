"""Request/reply to the other services over RabbitMQ's Direct Reply-To, with a deadline.

FastStream's `broker.request` holds one lock for the whole round trip, so a gateway
answering many forms at once would ask one question at a time. `RpcClient` keeps one
channel with one consumer on `amq.rabbitmq.reply-to` and matches replies by
correlation id, so any number of requests are in flight together.

The connection is a plain one, opened when first needed and opened again by the next
request once it is lost; it is not aio-pika's robust connection. A robust connection
restores only the queues and consumers it declared itself, and the pseudo-queue
`amq.rabbitmq.reply-to` cannot be declared: after a broker restart the channel came
back without its reply consumer, every request was published and never answered, and
the gateway answered 504 until it was restarted (issue 14, A). Here the connection,
its channel, the reply consumer and the requests waiting on them live and die
together (`Session`): nothing half-restored can remain.

No reply within `deadline_s` (the setting `rpc_timeout_s`) is a 504; a broker failure
or a reply that cannot be read is a 503. Both carry a French message naming the service
that did not answer.

Over 300 lines on purpose: the connection's life and the requests waiting on it are one
piece of state, easier to get right read together (the session itself, its echo and
its series are in gateway/rpc_session.py); what a route calls is at the end (`ask_raw`,
`ask`). A request the broker refuses is sent again; a read unanswered is asked again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeVar
from uuid import uuid4

import aio_pika
from fastapi import HTTPException, status
from pydantic import BaseModel, ValidationError

from gateway.rpc_session import (
    RPC_ASKED_AGAIN,
    RPC_CONNECTED,
    RPC_CONNECTIONS,
    RPC_OUTCOMES,
    RPC_REFUSED,
    Session,
    close_quietly,
    echo,
)
from jauge_shared.broker import connect_to_any_node
from jauge_shared.messaging import confirmed
from jauge_shared.topology import COMMANDS_EXCHANGE

logger = logging.getLogger("gateway.rpc")
Reply = TypeVar("Reply", bound=BaseModel)

REPLY_TO = "amq.rabbitmq.reply-to"
# /readyz asks the broker this often at most: a probe every second costs nothing more
PING_CACHE_S = 2.0
# opening the connection, its channel and consumers; longer is a broker out of reach
CONNECT_TIMEOUT_S = 3.0
# after a failed attempt, requests are refused this long without trying again
RETRY_CONNECT_AFTER_S = 1.0
# a request the broker refused is sent again this often, until this long before its
# deadline: then the caller gets the 503, not a 504 for a service that never heard it
REFUSED_AGAIN_AFTER_S = 0.5
REFUSED_GIVE_UP_S = 1.0


class RpcClient:
    """Concurrent request/reply; connects on demand, again after any loss."""

    def __init__(self, url: str, connection_name: str, deadline_s: float) -> None:
        self.url = url
        self.connection_name = connection_name
        self.deadline_s = deadline_s  # every request's, unless answered sooner
        self._lock = asyncio.Lock()
        self._session: Session | None = None
        self._last_round_trip = -PING_CACHE_S
        self._failed_at = -RETRY_CONNECT_AFTER_S
        self._closed = False

    @property
    def _pending(self) -> dict[str, asyncio.Future[bytes]]:
        return self._session.pending if self._session is not None else {}

    async def _ready(self) -> Session:
        session = self._session
        if session is not None and session.usable:
            return session
        async with self._lock:
            session = self._session
            if session is not None and session.usable:
                return session
            if self._closed:
                raise ConnectionError("the gateway is stopping")
            self._session = None
            if session is not None:
                RPC_CONNECTED.set(0)
                await close_quietly(session.connection)
            loop = asyncio.get_running_loop()
            if loop.time() - self._failed_at < RETRY_CONNECT_AFTER_S:
                # the broker refused or ignored us a moment ago: the callers waiting
                # behind that attempt get their 503 now rather than one attempt each
                raise ConnectionError("RabbitMQ was unreachable a moment ago")
            try:
                self._session = await asyncio.wait_for(self._open(), CONNECT_TIMEOUT_S)
            except Exception as e:
                self._failed_at = loop.time()
                # unreachable is a 503, even when the attempt timed out (a silent network
                # accepts the connection and never answers): not the service's 504
                raise ConnectionError(f"cannot connect to RabbitMQ: {e!r}") from e
            RPC_CONNECTED.set(1)
            return self._session

    async def _open(self) -> Session:
        connection = await connect_to_any_node(
            self.url, client_properties={"connection_name": self.connection_name}
        )
        try:
            # confirms make the broker track each request: a channel opened while a
            # quorum queue elects a new leader would otherwise send its untracked
            # requests to the dead leader for good (seen on a cluster losing a node:
            # every request lost for 20 s and more, colis-svc idle, the queue empty)
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(COMMANDS_EXCHANGE.name, ensure=False)
            # the health probe's own queue: a round trip that needs no other service
            echo_queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            session = Session(connection, channel, exchange, echo_queue.name)
            replies = await channel.get_queue(REPLY_TO, ensure=False)
            await replies.consume(lambda m: self._on_reply(session, m), no_ack=True)
            await echo_queue.consume(lambda m: echo(channel, m), no_ack=True)
        except BaseException:
            await close_quietly(connection)
            raise

        def lost(_: object, exc: BaseException | None = None) -> None:
            session.fail(exc)
            if self._session is session:
                RPC_CONNECTED.set(0)

        connection.close_callbacks.add(lost)
        channel.close_callbacks.add(lost)
        RPC_CONNECTIONS.inc()
        logger.info("rpc connection opened", extra={"connection": self.connection_name})
        return session

    def _on_connection_lost(self, _: object, exc: BaseException | None = None) -> None:
        if self._session is not None:
            self._session.fail(exc)

    async def _on_reply(
        self, session: Session, message: aio_pika.abc.AbstractIncomingMessage
    ) -> None:
        future = session.pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(
        self,
        body: bytes,
        routing_key: str,
        deadline_s: float,
        *,
        ask_again_after_s: float | None = None,
        **properties: Any,
    ) -> bytes:
        """One reply within `deadline_s`. A read (`ask_again_after_s` set) unanswered
        after that long is asked once more within the same deadline: a request or its
        reply lost with a broker node (the service's connection was on it) is never
        answered, and the service's new connection answers the second at once."""
        give_up_at = asyncio.get_running_loop().time() + deadline_s - REFUSED_GIVE_UP_S
        async with asyncio.timeout(deadline_s):
            if ask_again_after_s is not None and ask_again_after_s < deadline_s:
                try:
                    async with asyncio.timeout(ask_again_after_s):
                        return await self._ask_once(body, routing_key, properties, give_up_at)
                except TimeoutError:
                    RPC_ASKED_AGAIN.inc()
                    logger.info("rpc asked again", extra={"routing_key": routing_key})
            return await self._ask_once(body, routing_key, properties, give_up_at)

    async def _ask_once(
        self, body: bytes, routing_key: str, properties: dict[str, Any], give_up_at: float
    ) -> bytes:
        """One request. One the broker refuses (a nack: on a cluster that lost a node,
        the queue has no leader until the others elect one) was not enqueued, so it is
        sent again, on a new channel, every REFUSED_AGAIN_AFTER_S until it is taken, or
        until `give_up_at`, when the refusal is the caller's 503."""
        loop = asyncio.get_running_loop()
        while True:
            session = await self._ready()
            try:
                return await self._round_trip(
                    session, session.exchange, body, routing_key, properties
                )
            except aio_pika.exceptions.DeliveryError as e:
                # a channel that got a nack may keep its view of the old leader
                session.fail(e)
                RPC_REFUSED.inc()
                if loop.time() + REFUSED_AGAIN_AFTER_S >= give_up_at:
                    raise ConnectionError(f"RabbitMQ refused the request: {e}") from e
                await asyncio.sleep(REFUSED_AGAIN_AFTER_S)

    async def _round_trip(
        self,
        session: Session,
        exchange: aio_pika.abc.AbstractExchange,
        body: bytes,
        routing_key: str,
        properties: dict[str, Any],
    ) -> bytes:
        correlation_id = uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        session.pending[correlation_id] = future
        try:
            # confirmed: a connection found dead meanwhile cancels the confirm, which
            # must be this request's 503, not a 500 (seen behind a silent network)
            await confirmed(
                exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/json",
                        correlation_id=correlation_id,
                        reply_to=REPLY_TO,
                        **properties,
                    ),
                    routing_key=routing_key,
                ),
                f"the request {routing_key} was confirmed",
            )
            return await future
        finally:
            session.pending.pop(correlation_id, None)

    async def round_trip_works(self, timeout_s: float) -> bool:
        """/readyz: the reply consumer is there and a message sent through the broker
        comes back to it (to this client's own echo queue, so that the answer says
        whether this gateway can ask, not whether colis-svc is up). Cached briefly."""
        loop = asyncio.get_running_loop()
        session = self._session
        if (
            session is not None
            and session.usable
            and loop.time() - self._last_round_trip < PING_CACHE_S
        ):
            return True
        try:
            async with asyncio.timeout(timeout_s):
                session = await self._ready()
                echo = session.channel.default_exchange
                await self._round_trip(
                    session, echo, b"ping", session.echo_queue, {"expiration": timeout_s}
                )
        except Exception as e:
            logger.warning("rpc round trip failed", extra={"error": repr(e)})
            return False
        self._last_round_trip = loop.time()
        return True

    async def close(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            session.fail(ConnectionError("the gateway is stopping"))
            await close_quietly(session.connection)
        RPC_CONNECTED.set(0)


async def ask_raw(
    rpc: RpcClient,
    routing_key: str,
    body: bytes,
    service: str,
    *,
    read: bool = False,
    deadline_s: float | None = None,
    **properties: Any,
) -> bytes:
    """The raw reply; `service` names the one asked, for the user ("des imports").
    A `read` changes nothing, so it may be asked twice (see `RpcClient.call`).
    `deadline_s`: the client's own (`rpc_timeout_s`) unless the question needs longer."""
    deadline_s = deadline_s or rpc.deadline_s
    # a request nobody took in time is dropped instead of answered to no one
    properties.setdefault("expiration", deadline_s)
    try:
        raw = await rpc.call(
            body,
            routing_key,
            deadline_s,
            ask_again_after_s=deadline_s / 2 if read else None,
            **properties,
        )
    except TimeoutError as e:
        RPC_OUTCOMES.labels("timeout").inc()
        logger.warning("rpc timed out", extra={"routing_key": routing_key})
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            detail=f"Le service {service} n'a pas répondu à temps : réessayez dans un instant.",
        ) from e
    except Exception as e:
        RPC_OUTCOMES.labels("unavailable").inc()
        logger.warning("rpc failed", extra={"routing_key": routing_key, "error": str(e)})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=unavailable(service)) from e
    RPC_OUTCOMES.labels("ok").inc()
    return raw


def unavailable(service: str) -> str:
    return (
        f"Service {service} momentanément indisponible : la demande n'a pas abouti, "
        "réessayez dans un instant."
    )


def parse_reply(raw: bytes, reply_model: type[Reply], routing_key: str, service: str) -> Reply:
    try:
        return reply_model.model_validate_json(raw)
    except ValidationError as e:
        if _is_refusal(raw):  # the service answered that it cannot (its store is away)
            logger.warning("rpc refused", extra={"routing_key": routing_key})
        else:
            logger.error("rpc reply not understood", extra={"routing_key": routing_key})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=unavailable(service)) from e


class _Refusal(BaseModel):
    """`{"ok": false, "status": 503, ...}`: what a service answers instead of its reply
    when it cannot read its store (import-svc; colis-svc's replies all have this shape)."""

    ok: bool
    status: int


def _is_refusal(raw: bytes) -> bool:
    try:
        refusal = _Refusal.model_validate_json(raw)
    except ValidationError:
        return False
    return not refusal.ok


async def ask(
    rpc: RpcClient,
    routing_key: str,
    request: BaseModel,
    reply_model: type[Reply],
    deadline_s: float | None = None,
) -> Reply:
    """A question to import-svc (a read), answered with `reply_model`."""
    service = "des imports"
    body = request.model_dump_json().encode()
    raw = await ask_raw(rpc, routing_key, body, service, read=True, deadline_s=deadline_s)
    return parse_reply(raw, reply_model, routing_key, service)
