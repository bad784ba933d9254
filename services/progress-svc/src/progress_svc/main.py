"""progress-svc: the broker, the app, and the wiring of handlers, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream
from prometheus_client import REGISTRY

from jauge_shared.broker import declare_topology, make_broker, prometheus_middleware
from jauge_shared.consumer import DirectConsumer, metrics_container
from jauge_shared.contracts import ProgressUpdated
from jauge_shared.logging import configure_logging
from jauge_shared.messaging import FailurePolicy, publish
from jauge_shared.metrics import expose_reconciler_metrics
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.ops import run_service, worker_app
from jauge_shared.topology import EVENTS_EXCHANGE, PROGRESS_EVENTS, QUEUES_BY_SERVICE, RK
from progress_svc import handlers
from progress_svc.aggregate import Limits
from progress_svc.repository import ProgressRepository
from progress_svc.service import ProgressService
from progress_svc.settings import DB_SUFFIX, SERVICE, ProgressSettings


def create_app(settings: ProgressSettings | None = None) -> AsgiFastStream:
    settings = settings or ProgressSettings()
    configure_logging(SERVICE, settings.log_level, json=settings.log_json)
    prometheus = prometheus_middleware(SERVICE, REGISTRY)
    broker = make_broker(settings, SERVICE, REGISTRY, prometheus=prometheus)
    progress_updated = broker.publisher(
        RK.PROGRESS_UPDATED,
        exchange=EVENTS_EXCHANGE,
        schema=ProgressUpdated,
        title="progress.updated",
        description="The whole progress document after each change.",
    )
    expose_reconciler_metrics()  # every repair kind at zero before the first repair
    mongo = make_mongo_client(settings, SERVICE)
    repository = ProgressRepository(mongo, database_name(settings, DB_SUFFIX))

    async def announce(event: ProgressUpdated) -> None:
        await publish(progress_updated, event)

    service = ProgressService(
        repository,
        announce,
        Limits(recent=settings.recent_limit, errors=settings.errors_limit),
        concurrent_writes=settings.concurrent_writes,
    )
    # the hot queue is read with aio-pika directly (docs/performance.md); the broker
    # publishes progress.updated and serves the health checks
    events = DirectConsumer(
        settings,
        SERVICE,
        PROGRESS_EVENTS.name,
        handlers.on_progress_event(service),
        policy=FailurePolicy.from_settings(settings),
        metrics=metrics_container(prometheus),
        # another replica may have been the active consumer while this one was away
        on_new_channel=repository.forget_all,
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await repository.detect_store()
        await repository.ensure_indexes()
        await declare_topology(broker, settings, QUEUES_BY_SERVICE[SERVICE])
        try:
            yield
        finally:
            await mongo.close()

    app = worker_app(broker, mongo, lifespan, consuming=events.is_consuming)

    @app.after_startup
    async def consume() -> None:
        await events.start()

    @app.on_shutdown
    async def stop_consuming() -> None:
        # before the broker stops: the events in hand still announce their updates
        await events.stop(settings.graceful_timeout_s)

    return app


def run() -> None:
    settings = ProgressSettings()
    run_service(create_app(settings), settings)
