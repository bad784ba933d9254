"""colis-svc: the broker, the app, and the wiring of handlers, in one place."""

from __future__ import annotations

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
)
from jauge_shared.logging import configure_logging
from jauge_shared.messaging import message_publishers, publish
from jauge_shared.metrics import expose_reannounce_metrics
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.ops import every, in_background, run_service, worker_app
from jauge_shared.topology import QUEUES_BY_SERVICE

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
    publishers = message_publishers(broker, (*COMMANDS, *EVENTS))

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

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await repository.ensure_indexes()
        await repository.list_open_tasks()
        await repository.lot_index.list_unlisted()
        await repository.client_names.list_unlisted()
        await repository.seed_demo_data(utc_now())
        await declare_topology(broker, settings, QUEUES_BY_SERVICE[SERVICE])
        try:
            async with in_background(every(settings.sweeper_interval_s, sweeper.sweep, "sweeper")):
                yield
        finally:
            await mongo.close()

    return worker_app(broker, mongo, lifespan)


def run() -> None:
    settings = ColisSettings()
    run_service(create_app(settings), settings)
