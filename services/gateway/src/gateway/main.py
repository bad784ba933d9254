"""gateway: the FastAPI app wired together, and nothing else.

What is where: the routes in `routers/` (one module per resource, none importing
another), their dependencies in `deps.py`, the progress read model in
`progress_view.py`, live updates and snapshots in `live.py` and `hub.py`, the
request/reply to the services in `rpc.py` and `colis_rpc.py`, errors in
`error_handlers.py`, the process in `server.py`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from faststream.rabbit import RabbitExchange
from faststream.rabbit.fastapi import RabbitRouter
from faststream.rabbit.publisher import RabbitPublisher
from prometheus_client import REGISTRY

from gateway import consumers
from gateway.body_limit import BodySizeLimit, UploadQuota, UploadRoute
from gateway.colis_rpc import LotChecks
from gateway.commands import Publishers
from gateway.deps import username_of_scope
from gateway.error_handlers import install_error_handlers
from gateway.handover import Buckets
from gateway.headers import SecurityHeaders
from gateway.http_metrics import HttpTimingMiddleware
from gateway.hub import Hub
from gateway.live import LiveUpdates
from gateway.notifications import COLLECTION as NOTIFICATIONS
from gateway.notifications import NotificationStore
from gateway.photo_handovers import PhotoHandovers
from gateway.productivity import FORGET_EVERY_S, Productivity
from gateway.progress_view import ProgressView
from gateway.routers import (
    audit,
    auth,
    clients,
    colis,
    import_control,
    imports,
    invoices,
    jobs,
    lots,
    notifications,
    ops,
    pages,
    search,
    stats,
    tariffs,
    tasks,
    uploads,
    ws,
)
from gateway.rpc import RpcClient
from gateway.security import PasswordWorkers
from gateway.sessions import SessionWatch
from gateway.settings import DB_SUFFIX, PROGRESS_DB_SUFFIX, SERVICE, GatewaySettings
from gateway.state import GatewayState
from gateway.tracing import HttpTracingMiddleware
from gateway.upload_store import UploadStore
from gateway.users import UserRepository
from jauge_shared.broker import (
    amqp_url,
    broker_options,
    connect_to_every_node,
    declare_topology,
)
from jauge_shared.contracts import (
    CancelImport,
    CreateColis,
    Message,
    PhotoReady,
    RequestImport,
    UpdateColis,
    message_type,
)
from jauge_shared.contracts.progress_lists import LISTS_COLLECTION
from jauge_shared.faults import fault_points
from jauge_shared.identity import connection_name
from jauge_shared.logging import configure_logging
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.ops import every
from jauge_shared.topology import (
    COMMANDS_EXCHANGE,
    QUEUES_BY_SERVICE,
)
from jauge_shared.tracing import tracer_provider

logger = logging.getLogger("gateway")
# commands only: the gateway produces no event (colis-svc alone announces a parcel task,
# its first colis.step_changed included; docs/decisions.md, "Floor plan: files")
COMMANDS = (RequestImport, CancelImport, CreateColis, UpdateColis, PhotoReady)
# in this order in the OpenAPI document
ROUTERS = (
    auth,
    imports,
    import_control,
    invoices,
    jobs,
    ws,
    ops,
    clients,
    tariffs,
    lots,
    colis,
    uploads,
    tasks,
    search,
    audit,
    notifications,
    stats,
)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    configure_logging(SERVICE, settings.log_level, json=settings.log_json)
    rabbit = RabbitRouter(**broker_options(settings, SERVICE, REGISTRY), include_in_schema=False)
    connect_to_every_node(rabbit.broker, settings)  # every node of JAUGE_AMQP_URL
    publishers = make_publishers(rabbit)
    mongo = make_mongo_client(settings, SERVICE)
    progress_db = mongo[database_name(settings, PROGRESS_DB_SUFFIX)]
    view = ProgressView(progress_db["progress"], progress_db[LISTS_COLLECTION])
    hub = Hub()
    live = LiveUpdates(hub, view)
    consumers.register_replica(rabbit, live, hub)
    own = mongo[database_name(settings, DB_SUFFIX)]
    told = NotificationStore(own[NOTIFICATIONS])
    productivity = Productivity(own)
    consumers.register(rabbit, settings, told, productivity)

    @rabbit.after_startup
    async def declare_own_queues(_app: FastAPI) -> None:
        # every binding of the gateway's durable queues (a subscriber binds one key)
        await declare_topology(rabbit.broker, settings, QUEUES_BY_SERVICE[SERVICE])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers = PasswordWorkers(settings.password_hash_concurrency, settings.password_hash_queue)
        users = UserRepository(
            mongo, database_name(settings, DB_SUFFIX), workers, cache_s=settings.user_cache_s
        )
        sessions = SessionWatch(users, settings.session_check_s)
        rpc = RpcClient(
            amqp_url(settings), connection_name(SERVICE) + "/rpc", settings.rpc_timeout_s
        )
        buckets = Buckets.open(mongo, settings)
        handovers = PhotoHandovers(
            UploadStore(settings.data_dir),
            buckets,
            publishers,
            faults=fault_points(settings.fault_points, settings.data_dir),
        )
        app.state.gateway = GatewayState(
            settings=settings,
            mongo=mongo,
            users=users,
            view=view,
            hub=hub,
            publishers=publishers,
            broker=rabbit.broker,
            rpc=rpc,
            sessions=sessions,
            buckets=buckets,
            handovers=handovers,
            notifications=told,
            productivity=productivity,
        )
        watch = asyncio.create_task(sessions.run(), name="session-watch")
        forget = asyncio.create_task(
            every(FORGET_EVERY_S, productivity.forget_all_closed, "productivity clocks"),
            name="productivity-forget",
        )
        handovers.start()
        try:
            yield
        finally:
            watch.cancel()
            forget.cancel()
            await handovers.close()
            await hub.close_all()
            await rpc.close()
            await mongo.close()
            workers.close()

    app = FastAPI(
        title="Jauge",
        summary="Live progress for back-office work that runs in the background.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.login_limiter = auth.LoginRateLimiter(settings.login_tracked_keys)
    app.state.lot_checks = LotChecks(settings.lot_check_cache_s)
    app.include_router(rabbit)
    for module in ROUTERS:
        app.include_router(module.router)
    app.include_router(pages.router)  # the web UI
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        uploads=upload_routes(settings),
        authenticate=username_of_scope,
        quota=UploadQuota(settings.upload_quota_user_bytes, settings.upload_quota_total_bytes),
    )
    app.add_middleware(SecurityHeaders)
    if tracer_provider(settings, SERVICE) is not None:
        app.add_middleware(HttpTracingMiddleware)
    app.add_middleware(HttpTimingMiddleware)  # outermost: the 413s and 401s are timed too
    return app


def make_publishers(rabbit: RabbitRouter) -> Publishers:
    """One publisher per message the gateway sends, named after its type."""

    def publisher(model: type[Message], exchange: RabbitExchange) -> RabbitPublisher:
        name = message_type(model)
        return rabbit.publisher(name, exchange=exchange, schema=model, title=name)

    return {message_type(m): publisher(m, COMMANDS_EXCHANGE) for m in COMMANDS}


_ITEM_ID = r"[A-Za-z0-9_-]{1,64}"
FORM_FIELDS_BYTES = 256 * 1024  # a parcel form's fields, next to its photo


def upload_routes(settings: GatewaySettings) -> tuple[UploadRoute, ...]:
    """The only routes that take a multipart body larger than `max_body_bytes`."""
    photo = settings.max_photo_bytes + FORM_FIELDS_BYTES
    return (
        UploadRoute("POST", re.compile(r"/api/imports/upload"), settings.max_upload_request_bytes),
        UploadRoute("POST", re.compile(rf"/api/lots/{_ITEM_ID}/colis"), photo),
        UploadRoute("PATCH", re.compile(rf"/api/colis/{_ITEM_ID}"), photo),
    )
