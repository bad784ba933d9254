"""import-svc: the broker, the app, and the wiring of handlers, in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream
from prometheus_client import REGISTRY

from import_svc import handlers, metrics
from import_svc.files import FileStore
from import_svc.lock import ImportLock
from import_svc.queries import ImportQueries
from import_svc.repository import ImportRepository
from import_svc.service import ImportService
from import_svc.settings import DB_SUFFIX, SERVICE, ImportSettings
from jauge_shared.blobs import IMPORT_UPLOADS, Blobs
from jauge_shared.broker import declare_topology, make_broker
from jauge_shared.contracts import (
    FileImported,
    ImportCleanupStarted,
    ImportFile,
    ImportFinished,
    ImportQueued,
    ImportStarted,
    Message,
)
from jauge_shared.faults import fault_points
from jauge_shared.logging import configure_logging
from jauge_shared.messaging import message_publishers, publish
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.ops import every, in_background, run_service, worker_app
from jauge_shared.topology import QUEUES_BY_SERVICE

logger = logging.getLogger("import_svc")


def create_app(settings: ImportSettings | None = None) -> AsgiFastStream:
    settings = settings or ImportSettings()
    configure_logging(SERVICE, settings.log_level, json=settings.log_json)
    broker = make_broker(settings, SERVICE, REGISTRY)
    publishers = message_publishers(
        broker,
        (
            ImportFile,
            ImportQueued,
            ImportStarted,
            ImportCleanupStarted,
            FileImported,
            ImportFinished,
        ),
    )

    async def emit(message: Message) -> None:
        await publish(publishers[message.type], message)
        metrics.announced(message)

    metrics.expose(SERVICE)

    mongo = make_mongo_client(settings, SERVICE)
    db_name = database_name(settings, DB_SUFFIX)
    repository = ImportRepository(mongo, db_name)
    files = FileStore(settings.data_dir)
    lock = ImportLock(repository.lock, settings.lock_lease_s)
    service = ImportService(
        repository,
        lock,
        files,
        emit,
        deadline_s=settings.job_deadline_s,
        max_file_bytes=settings.max_file_bytes,
        faults=fault_points(settings.fault_points, settings.data_dir),
        uploads=Blobs(mongo[db_name], IMPORT_UPLOADS),
        file_delay_s=settings.test_file_delay_s,
    )
    handlers.register(broker, settings, service, ImportQueries(repository, files))

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        files.ensure_layout()
        await repository.ensure_indexes()
        await lock.ensure_indexes()
        await declare_topology(broker, settings, QUEUES_BY_SERVICE[SERVICE])
        try:
            async with in_background(
                every(settings.scheduler_interval_s, service.schedule, "scheduler")
            ):
                yield
        finally:
            await mongo.close()

    return worker_app(broker, mongo, lifespan)


def run() -> None:
    settings = ImportSettings()
    run_service(create_app(settings), settings)
