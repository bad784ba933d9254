"""The pieces of the gateway's request/reply client (gateway/rpc.py) that live with one
connection: the session (connection, channel, reply consumer and the requests waiting
on them), the echo that answers /readyz's round trip, and the client's series."""

from __future__ import annotations

import asyncio
import logging

import aio_pika
from prometheus_client import Counter, Gauge

logger = logging.getLogger("gateway.rpc")

RPC_CONNECTIONS = Counter(
    "jauge_gateway_rpc_connections_opened_total",
    "Connections the gateway opened for its requests to the services (1 + reconnections).",
)
RPC_CONNECTED = Gauge(
    "jauge_gateway_rpc_connected",
    "1 while the gateway's request/reply connection and its reply consumer are up.",
)
RPC_OUTCOMES = Counter(
    "jauge_gateway_rpc_requests_total",
    "Requests to the services, by outcome (ok, timeout, unavailable).",
    ["outcome"],
)
for _outcome in ("ok", "timeout", "unavailable"):
    RPC_OUTCOMES.labels(_outcome)
RPC_REFUSED = Counter(
    "jauge_gateway_rpc_refused_total",
    "Requests the broker refused (nack) and the gateway sent again.",
)
RPC_ASKED_AGAIN = Counter(
    "jauge_gateway_rpc_asked_again_total",
    "Reads asked a second time after half their deadline without a reply.",
)


class Session:
    """One connection, its channel, the reply consumer and the requests awaiting it."""

    def __init__(
        self,
        connection: aio_pika.abc.AbstractConnection,
        channel: aio_pika.abc.AbstractChannel,
        exchange: aio_pika.abc.AbstractExchange,
        echo_queue: str,
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.exchange = exchange
        self.echo_queue = echo_queue
        self.pending: dict[str, asyncio.Future[bytes]] = {}
        self.lost: BaseException | None = None

    @property
    def usable(self) -> bool:
        return self.lost is None and not self.channel.is_closed and not self.connection.is_closed

    def fail(self, exc: BaseException | None) -> None:
        """Direct Reply-To answers on the channel that asked: once it is gone no reply
        can come, so the callers get their 503 now rather than a 504 at the deadline."""
        if self.lost is None:
            self.lost = exc or ConnectionError("closed")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(
                    ConnectionError(f"connection to RabbitMQ lost before the reply: {exc}")
                )
        self.pending.clear()


async def echo(
    channel: aio_pika.abc.AbstractChannel, message: aio_pika.abc.AbstractIncomingMessage
) -> None:
    if message.reply_to:
        await channel.default_exchange.publish(
            aio_pika.Message(message.body, correlation_id=message.correlation_id),
            routing_key=message.reply_to,
            # RabbitMQ returns a mandatory reply to a reply-to address even as it delivers
            # it, and aio-pika logs every return as an error
            mandatory=False,
        )


async def close_quietly(connection: aio_pika.abc.AbstractConnection) -> None:
    try:
        await asyncio.wait_for(connection.close(), 2.0)
    except Exception as e:  # already gone: nothing to release but the object
        logger.debug("rpc connection close failed", extra={"error": repr(e)})
