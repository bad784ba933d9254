"""The one way services open RabbitMQ, and declare what they consume."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import CollectorRegistry
from yarl import URL

from jauge_shared.identity import connection_name
from jauge_shared.messaging import DeadLetterMiddleware
from jauge_shared.settings import ServiceSettings, split_amqp_urls
from jauge_shared.topology import (
    COMMANDS_EXCHANGE,
    EVENTS_EXCHANGE,
    QueueSpec,
)
from jauge_shared.tracing import tracer_provider

logger = logging.getLogger("jauge.broker")

# how long a client waits before opening again a connection it lost, when it has
# other nodes to go to (see ClusterConnection)
RECONNECT_GRACE_S = 1.5


def _with_heartbeat(url: str, heartbeat_s: int) -> str:
    parts = urlsplit(url)
    if any(key == "heartbeat" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    query = "&".join(filter(None, (parts.query, f"heartbeat={heartbeat_s}")))
    return urlunsplit(parts._replace(query=query))


def amqp_urls(settings: ServiceSettings) -> tuple[str, ...]:
    """Every node's URL with `heartbeat_s` as its heartbeat, unless the URL sets its own.

    aiormq reads the heartbeat from the URL's query and defaults to 60 s: a connection
    behind a silent network (no RST, no FIN) would look alive for three minutes, its
    messages unacked and its publishes waiting for their confirms.
    """
    return tuple(
        _with_heartbeat(url, settings.heartbeat_s) for url in split_amqp_urls(settings.amqp_url)
    )


def amqp_url(settings: ServiceSettings) -> str:
    """`amqp_urls` as one string, commas between nodes: what `connect_robust` takes."""
    return ",".join(amqp_urls(settings))


class ClusterConnection(aio_pika.RobustConnection):
    """A robust connection that knows every node of the cluster.

    aio-pika reconnects to the one URL it was given; a node that is down would keep a
    client away until it came back. This one moves to the next URL of the list at each
    connection attempt (after a connection was lost, or an attempt failed), and its
    first connection tries them all before giving up.
    """

    def __init__(self, url: Any, *args: Any, urls: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(url, *args, **kwargs)
        # the query of the URL given (heartbeat, the name FastStream puts there) is what
        # aiormq reads: every node gets it, under its own keys
        nodes = (URL(u) for u in urls)
        self._urls = tuple(n.with_query({**self.url.query, **n.query}) for n in nodes)
        self._urls = self._urls or (self.url,)
        self._next = 0
        self._lost_at_attempt = False

    async def _on_connected(self) -> None:
        await super()._on_connected()
        self._lost_at_attempt = False

    def _move_to_next_node(self) -> None:
        self.url = self._urls[self._next % len(self._urls)]
        self._next += 1

    async def _RobustConnection__connect_transport(self) -> None:
        # the hook of aio-pika's reconnection loop (name-mangled `__connect_transport`):
        # each call is one attempt; shared/tests/test_shared_broker.py fails if it moves
        attempt = getattr(super(), "_RobustConnection__connect_transport")  # noqa: B009
        if self.connection_attempt and len(self._urls) > 1 and not self._lost_at_attempt:
            # the first attempt after a lost connection waits a moment: the nodes left
            # must first see the lost node down and delete the exclusive queues of its
            # connections (a gateway's `gateway.progress.<replica>`); redeclared at once
            # on another node, it was still locked and the restore failed
            self._lost_at_attempt = True
            await asyncio.sleep(RECONNECT_GRACE_S)
        tries = len(self._urls) if self.connection_attempt == 0 else 1
        for remaining in range(tries - 1, -1, -1):
            self._move_to_next_node()
            try:
                await attempt()
                return
            except Exception as e:
                if not remaining:
                    raise
                logger.warning(
                    "broker node unreachable", extra={"node": str(self), "error": repr(e)}
                )


def cluster_connection_class(urls: Sequence[str]) -> Any:
    return functools.partial(ClusterConnection, urls=tuple(urls))


async def connect_robust(url: str, **kwargs: Any) -> AbstractRobustConnection:
    """aio-pika's `connect_robust`, for `url` holding one or several nodes (commas)."""
    urls = split_amqp_urls(url)
    connection: AbstractRobustConnection = await aio_pika.connect_robust(
        urls[0], connection_class=cluster_connection_class(urls), **kwargs
    )
    return connection


_next_node = itertools.count()


async def connect_to_any_node(url: str, **kwargs: Any) -> AbstractConnection:
    """A plain (not robust) connection to a node of `url` (one or several, commas) that
    answers, starting each time from the next node: its owner opens another when it is
    lost (the gateway's request/reply, gateway/rpc.py)."""
    urls = split_amqp_urls(url)
    start = next(_next_node)
    for tried in range(len(urls)):
        node = urls[(start + tried) % len(urls)]
        try:
            connection: AbstractConnection = await aio_pika.connect(node, **kwargs)
        except Exception as e:
            if tried == len(urls) - 1:
                raise
            logger.warning("broker node unreachable", extra={"node": node, "error": repr(e)})
        else:
            return connection
    raise ConnectionError("no broker node given")


def connect_to_every_node(broker: RabbitBroker, settings: ServiceSettings) -> RabbitBroker:
    """FastStream's broker connects to one URL: it is handed `ClusterConnection` too (the
    keyword arguments it keeps for aio-pika's `connect_robust`)."""
    broker._connection_kwargs["connection_class"] = cluster_connection_class(amqp_urls(settings))
    return broker


def prometheus_middleware(service: str, registry: CollectorRegistry) -> RabbitPrometheusMiddleware:
    return RabbitPrometheusMiddleware(registry=registry, app_name=service)


def broker_options(
    settings: ServiceSettings,
    service: str,
    registry: CollectorRegistry,
    *,
    middlewares: Sequence[Any] = (),
    prometheus: RabbitPrometheusMiddleware | None = None,
) -> dict[str, Any]:
    """Publisher confirms on, prefetch bounded, heartbeats, named connection, poison to
    the DLQ.

    Shared by `make_broker` and the gateway's FastAPI `RabbitRouter`.
    """
    telemetry: tuple[Any, ...] = ()
    if (provider := tracer_provider(settings, service)) is not None:
        telemetry = (RabbitTelemetryMiddleware(tracer_provider=provider),)
    return {
        # the first node; `connect_to_every_node` gives the broker the others
        "url": amqp_urls(settings)[0],
        # FastStream turns client properties into URL query keys, and aiormq reads the
        # connection name from `name` (shown as connection_name in the management UI)
        "client_properties": {"name": connection_name(service)},
        "default_channel": Channel(prefetch_count=settings.prefetch, publisher_confirms=True),
        "graceful_timeout": settings.graceful_timeout_s,
        "app_id": service,
        # FastStream logs every message received and processed; at INFO that was 16% of
        # progress-svc's time under load (profiled). They stay available at DEBUG.
        "log_level": logging.DEBUG,
        "middlewares": (
            *telemetry,
            prometheus or prometheus_middleware(service, registry),
            DeadLetterMiddleware.factory(settings),
            *middlewares,
        ),
    }


def make_broker(
    settings: ServiceSettings,
    service: str,
    registry: CollectorRegistry,
    *,
    middlewares: Sequence[Any] = (),
    prometheus: RabbitPrometheusMiddleware | None = None,
) -> RabbitBroker:
    broker = RabbitBroker(
        **broker_options(
            settings, service, registry, middlewares=middlewares, prometheus=prometheus
        )
    )
    return connect_to_every_node(broker, settings)


async def declare_topology(
    broker: RabbitBroker, settings: ServiceSettings, queues: Iterable[QueueSpec]
) -> None:
    """Exchanges, each queue with its DLQ, and every binding, before anything consumes.

    Declarations are idempotent, so every replica does this at start-up.
    """
    await broker.connect()
    exchanges = {
        COMMANDS_EXCHANGE.name: await broker.declare_exchange(COMMANDS_EXCHANGE),
        EVENTS_EXCHANGE.name: await broker.declare_exchange(EVENTS_EXCHANGE),
    }
    for spec in queues:
        await broker.declare_queue(spec.dead_letter_queue(settings.queue_type))
        queue = await broker.declare_queue(spec.queue(settings.queue_type, settings.delivery_limit))
        if spec.hash_weight is None:
            for routing_key in spec.routing_keys:
                await queue.bind(exchanges[spec.exchange.name], routing_key=routing_key)
            continue
        # a partition: jauge.events -> the consistent-hash exchange -> this queue
        if spec.exchange.name not in exchanges:
            partitioner = exchanges[spec.exchange.name] = await broker.declare_exchange(
                spec.exchange
            )
            for routing_key in spec.routing_keys:
                await partitioner.bind(exchanges[spec.routed_from.name], routing_key=routing_key)
        await queue.bind(exchanges[spec.exchange.name], routing_key=str(spec.hash_weight))
