"""colis-svc: the broker, the app, and the wiring of handlers, in one place.

The parcel pipeline's handlers are not wired yet (see the parcel issue): the service
declares its queues so commands wait there durably, and serves its health endpoints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream
from prometheus_client import REGISTRY

from colis_svc.settings import SERVICE, ColisSettings
from jauge_shared.broker import declare_topology, make_broker
from jauge_shared.logging import configure_logging
from jauge_shared.mongo import make_mongo_client
from jauge_shared.ops import ops_routes, serve, store_is_reachable
from jauge_shared.topology import QUEUES_BY_SERVICE


def create_app(settings: ColisSettings | None = None) -> AsgiFastStream:
    settings = settings or ColisSettings()
    configure_logging(SERVICE, settings.log_level, json=settings.log_json)
    broker = make_broker(settings, SERVICE, REGISTRY)
    mongo = make_mongo_client(settings, SERVICE)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await declare_topology(broker, settings, QUEUES_BY_SERVICE[SERVICE])
        try:
            yield
        finally:
            await mongo.close()

    return AsgiFastStream(
        broker,
        lifespan=lifespan,
        asgi_routes=ops_routes(
            {"broker": lambda: broker.ping(timeout=2.0), "store": lambda: store_is_reachable(mongo)}
        ),
        asyncapi_path="/asyncapi",
    )


def run() -> None:
    settings = ColisSettings()
    serve(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        graceful_timeout_s=settings.graceful_timeout_s,
    )
