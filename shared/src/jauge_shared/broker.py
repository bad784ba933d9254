"""The one way services open RabbitMQ, and declare what they consume."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import CollectorRegistry

from jauge_shared.identity import connection_name
from jauge_shared.messaging import DeadLetterMiddleware
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, QueueSpec
from jauge_shared.tracing import tracer_provider


def amqp_url(settings: ServiceSettings) -> str:
    """The broker URL with `heartbeat_s` as its heartbeat, unless the URL sets its own.

    aiormq reads the heartbeat from the URL's query and defaults to 60 s: a connection
    behind a silent network (no RST, no FIN) would look alive for three minutes, its
    messages unacked and its publishes waiting for their confirms.
    """
    url = str(settings.amqp_url)
    parts = urlsplit(url)
    if any(key == "heartbeat" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    query = "&".join(filter(None, (parts.query, f"heartbeat={settings.heartbeat_s}")))
    return urlunsplit(parts._replace(query=query))


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
        "url": amqp_url(settings),
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
    return RabbitBroker(
        **broker_options(
            settings, service, registry, middlewares=middlewares, prometheus=prometheus
        )
    )


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
        for routing_key in spec.routing_keys:
            await queue.bind(exchanges[spec.exchange.name], routing_key=routing_key)
