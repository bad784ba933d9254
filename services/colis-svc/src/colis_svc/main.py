"""colis-svc: the broker, the app, and the wiring of handlers, in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream
from prometheus_client import REGISTRY

from colis_svc import handlers
from colis_svc.files import FileStore
from colis_svc.repository import ColisRepository
from colis_svc.runs import TASK_RUNS, utc_now
from colis_svc.service import ColisService
from colis_svc.settings import DB_SUFFIX, SERVICE, ColisSettings
from colis_svc.sweeper import Sweeper
from jauge_shared.blobs import PHOTO_UPLOADS, PHOTOS, Blobs
from jauge_shared.broker import declare_topology, make_broker
from jauge_shared.contracts import (
    ColisCreated,
    ColisOperation,
    ColisStepChanged,
    ColisTaskStalled,
    ColisUpdated,
    CreateColis,
    LotCreated,
    Message,
    NotificationRequested,
    UpdateColis,
    message_type,
)
from jauge_shared.logging import configure_logging
from jauge_shared.messaging import publish
from jauge_shared.metrics import expose_reannounce_metrics
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.ops import ops_routes, serve, store_is_reachable
from jauge_shared.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, QUEUES_BY_SERVICE

logger = logging.getLogger("colis_svc")
COMMANDS = (CreateColis, UpdateColis)
EVENTS = (
    ColisStepChanged,
    ColisCreated,
    ColisUpdated,
    LotCreated,
    NotificationRequested,
    ColisTaskStalled,
)


# every outcome of `Pipeline.run_task`, at zero before the first task (issue 14, 6)
TASK_OUTCOMES = (
    "completed",
    "cancelled",
    "failed_permanent",
    "failed_transient",
    "timeout",
    "error",
)


def expose_metrics() -> None:
    for op in ColisOperation:
        for outcome in TASK_OUTCOMES:
            TASK_RUNS.labels(op.value, outcome)
    expose_reannounce_metrics(SERVICE)


def create_app(settings: ColisSettings | None = None) -> AsgiFastStream:
    settings = settings or ColisSettings()
    configure_logging(SERVICE, settings.log_level, json=settings.log_json)
    broker = make_broker(settings, SERVICE, REGISTRY)
    publishers = {
        message_type(model): broker.publisher(
            message_type(model),
            exchange=COMMANDS_EXCHANGE if model in COMMANDS else EVENTS_EXCHANGE,
            schema=model,
            title=message_type(model),
            description=(model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else None,
        )
        for model in (*COMMANDS, *EVENTS)
    }

    async def emit(message: Message) -> None:
        await publish(publishers[message.type], message)

    expose_metrics()
    mongo = make_mongo_client(settings, SERVICE)
    db_name = database_name(settings, DB_SUFFIX)
    repository = ColisRepository(mongo, db_name)
    files = FileStore(Blobs(mongo[db_name], PHOTO_UPLOADS), Blobs(mongo[db_name], PHOTOS))
    service = ColisService.build(repository, files, emit, settings)
    sweeper = Sweeper(repository, service.tasks, service.control, settings, emit, emit)
    handlers.register(broker, settings, service, emit)

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(settings.sweeper_interval_s)
            try:
                await sweeper.sweep()
            except Exception:
                logger.exception("sweeper pass failed")

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await repository.ensure_indexes()
        await repository.list_open_tasks()
        await repository.seed_demo_data(utc_now())
        await declare_topology(broker, settings, QUEUES_BY_SERVICE[SERVICE])
        task = asyncio.create_task(sweep_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
