"""progress-svc: the broker, the app, and the wiring of handlers, in one place."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream
from prometheus_client import REGISTRY

from jauge_shared.broker import declare_topology, make_broker, prometheus_middleware
from jauge_shared.consumer import DirectConsumer, metrics_container
from jauge_shared.contracts import (
    AnnounceColisTask,
    AnnounceImport,
    AnnounceState,
    ProgressUpdated,
    message_type,
)
from jauge_shared.faults import fault_points
from jauge_shared.logging import configure_logging
from jauge_shared.messaging import FailurePolicy, publish
from jauge_shared.metrics import expose_reconciler_metrics
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.ops import run_service, worker_app
from jauge_shared.topology import (
    COMMANDS_EXCHANGE,
    EVENTS_EXCHANGE,
    PROGRESS_EVENTS,
    RK,
    progress_partitions,
)
from progress_svc import handlers, reconciler
from progress_svc.aggregate import Limits
from progress_svc.partitions import Rebalancer, retire_single_queue
from progress_svc.reconciler import Reconciler
from progress_svc.repository import ProgressRepository
from progress_svc.service import ProgressService
from progress_svc.settings import DB_SUFFIX, SERVICE, ProgressSettings

logger = logging.getLogger("progress_svc")


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
    announce_commands = {
        message_type(model): broker.publisher(
            message_type(model),
            exchange=COMMANDS_EXCHANGE,
            schema=model,
            title=message_type(model),
            description=(model.__doc__ or "").strip(),
        )
        for model in (AnnounceImport, AnnounceColisTask)
    }
    expose_reconciler_metrics()  # every repair kind at zero before the first repair
    mongo = make_mongo_client(settings, SERVICE)
    repository = ProgressRepository(
        mongo,
        database_name(settings, DB_SUFFIX),
        faults=fault_points(settings.fault_points, settings.data_dir),
    )

    async def announce(event: ProgressUpdated) -> None:
        await publish(progress_updated, event)

    async def ask(command: AnnounceState) -> None:
        await publish(announce_commands[command.type], command)

    reconcile = Reconciler(repository, ask, after_s=settings.reconcile_after_s, producer=SERVICE)
    reconciler.start_at_zero()

    async def reconcile_forever() -> None:
        while True:
            await asyncio.sleep(settings.reconcile_interval_s)
            try:
                await reconcile.run_once()
            except Exception as e:  # the broker or the store away: the next pass retries
                reconciler.PASSES.labels("failed").inc()
                logger.warning("reconciler pass failed", extra={"error": repr(e)})
            else:
                reconciler.PASSES.labels("ok").inc()

    service = ProgressService(
        repository,
        announce,
        Limits(recent=settings.recent_limit, errors=settings.errors_limit),
        concurrent_writes=settings.concurrent_writes,
    )
    # the hot queues are read with aio-pika directly (docs/performance.md); the broker
    # publishes progress.updated and serves the health checks. Every replica consumes
    # every partition; single active consumer gives each partition one of them
    partitions = progress_partitions(settings.progress_partitions)
    policy = FailurePolicy.from_settings(settings)
    metrics = metrics_container(prometheus)

    def consumer_of(queue: str) -> DirectConsumer:
        return DirectConsumer(
            settings,
            SERVICE,
            queue,
            handlers.on_progress_event(service, repository, queue),
            policy=policy,
            metrics=metrics,
            # the dashboards' series stay one, whatever the number of partitions
            metrics_handler=PROGRESS_EVENTS.name,
            # another replica may have been this partition's active consumer meanwhile
            on_new_channel=functools.partial(repository.forget, queue),
        )

    consumers = [consumer_of(spec.name) for spec in partitions]

    def consuming() -> bool:
        return all(consumer.is_consuming() for consumer in consumers)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await repository.ensure_indexes()
        await repository.list_open_documents()
        await repository.list_documents()
        await declare_topology(broker, settings, partitions)
        if partitions != (PROGRESS_EVENTS,) and await retire_single_queue(settings, SERVICE):
            consumers.append(consumer_of(PROGRESS_EVENTS.name))
        tasks = [asyncio.create_task(reconcile_forever())]
        if len(partitions) > 1:
            rebalancer = Rebalancer(consumers[: len(partitions)], settings.rebalance_interval_s)
            tasks.append(asyncio.create_task(rebalancer.run_forever()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await mongo.close()

    app = worker_app(broker, mongo, lifespan, consuming=consuming)

    @app.after_startup
    async def consume() -> None:
        for consumer in consumers:
            await consumer.start()

    @app.on_shutdown
    async def stop_consuming() -> None:
        # before the broker stops: the events in hand still announce their updates
        await asyncio.gather(*(c.stop(settings.graceful_timeout_s) for c in consumers))

    return app


def run() -> None:
    settings = ProgressSettings()
    run_service(create_app(settings), settings)
