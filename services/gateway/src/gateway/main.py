"""gateway: the FastAPI app, its broker connection and the wiring, in one place."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from faststream import AckPolicy
from faststream.rabbit.fastapi import RabbitRouter
from prometheus_client import REGISTRY, Counter
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from gateway.body_limit import BodySizeLimit, UploadQuota, UploadRoute
from gateway.deps import username_of_scope
from gateway.durations import RecentDurations
from gateway.errors import STORE_RETRY_AFTER_S, STORE_UNAVAILABLE
from gateway.headers import SecurityHeaders
from gateway.hub import Hub
from gateway.jobmetrics import FinishedJobs
from gateway.recent import RecentJobs
from gateway.routers import (
    audit,
    auth,
    clients,
    colis,
    imports,
    invoices,
    jobs,
    lots,
    ops,
    pages,
    tariffs,
    tasks,
    uploads,
    ws,
)
from gateway.routers.jobs import to_public
from gateway.rpc import RpcClient
from gateway.security import PasswordWorkers
from gateway.sessions import SessionWatch
from gateway.settings import DB_SUFFIX, PROGRESS_DB_SUFFIX, SERVICE, GatewaySettings
from gateway.state import GatewayState
from gateway.tracing import HttpTracingMiddleware
from gateway.users import UserRepository
from jauge_shared.broker import amqp_url, broker_options, connect_to_every_node
from jauge_shared.contracts import (
    ColisStepChanged,
    CreateColis,
    PhotoReady,
    ProgressUpdated,
    RequestImport,
    UpdateColis,
    message_type,
)
from jauge_shared.identity import connection_name
from jauge_shared.logging import configure_logging
from jauge_shared.mongo import database_name, make_mongo_client, store_unavailable
from jauge_shared.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, gateway_progress_queue
from jauge_shared.tracing import tracer_provider

logger = logging.getLogger("gateway")
COMMANDS = (RequestImport, CreateColis, UpdateColis, PhotoReady)
# the gateway announces a parcel task as pending (seq 0) when it queues it
EVENTS = (ColisStepChanged,)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    configure_logging(SERVICE, settings.log_level, json=settings.log_json)
    rabbit = RabbitRouter(**broker_options(settings, SERVICE, REGISTRY), include_in_schema=False)
    connect_to_every_node(rabbit.broker, settings)  # every node of JAUGE_AMQP_URL
    publishers = {
        message_type(model): rabbit.publisher(
            message_type(model), exchange=COMMANDS_EXCHANGE, schema=model, title=message_type(model)
        )
        for model in COMMANDS
    } | {
        message_type(model): rabbit.publisher(
            message_type(model), exchange=EVENTS_EXCHANGE, schema=model, title=message_type(model)
        )
        for model in EVENTS
    }
    hub = Hub()
    mongo = make_mongo_client(settings, SERVICE)
    progress = mongo[database_name(settings, PROGRESS_DB_SUFFIX)]["progress"]

    async def newest_stored(query: dict[str, Any], n: int) -> list[dict[str, Any]]:
        cursor = progress.find(query).sort("updated_at", -1).limit(n)
        return [to_public(doc) async for doc in cursor]

    recent = RecentJobs(newest_stored, limit=ws.JOBS_SNAPSHOT_LIMIT)
    durations = RecentDurations(
        tasks.KINDS,
        lambda kind, n: tasks.stored_durations(progress, kind, n),
        sample=tasks.ETA_SAMPLE,
    )
    finished = FinishedJobs()
    replica = f"{socket.gethostname()}.{os.getpid()}"

    @rabbit.subscriber(
        gateway_progress_queue(replica),
        exchange=EVENTS_EXCHANGE,
        ack_policy=AckPolicy.ACK_FIRST,
        title="gateway.progress.<replica>",
        description="Every progress.updated, pushed to this replica's sockets.",
    )
    async def on_progress_updated(event: ProgressUpdated) -> None:
        job = event.job.model_dump(mode="json", by_alias=True)
        recent.update(job)
        durations.update(job)
        finished.update(job)
        hub.dispatch(job)

    refreshing: set[asyncio.Task[None]] = set()

    async def refresh(app: FastAPI) -> None:
        """What this replica keeps from progress.updated, read again from the store,
        and every socket's snapshots sent again (issue 14, 7a)."""
        recent.forget()
        durations.forget()
        try:
            offered = await ws.resend_snapshots(app.state.gateway)
        except Exception:
            logger.exception("snapshots not sent again after the broker came back")
            return
        REFRESHES.inc()
        logger.info("broker back: views rebuilt", extra={"snapshots": offered})

    @rabbit.after_startup
    async def declare_exchanges(app: FastAPI) -> None:
        await rabbit.broker.declare_exchange(COMMANDS_EXCHANGE)
        await rabbit.broker.declare_exchange(EVENTS_EXCHANGE)
        # this replica's progress.updated queue is exclusive: it is gone while the
        # connection is, and what was published meanwhile with it. FastStream's
        # RabbitRouter takes no `on_reconnected`, so the hook goes on the connection.
        connection = getattr(rabbit.broker, "_connection", None)
        if connection is None:
            logger.warning("no broker connection to watch: views not rebuilt on reconnect")
            return

        def reconnected(_: object) -> None:
            task = asyncio.create_task(refresh(app))
            refreshing.add(task)
            task.add_done_callback(refreshing.discard)

        connection.reconnect_callbacks.add(reconnected)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers = PasswordWorkers(settings.password_hash_concurrency, settings.password_hash_queue)
        users = UserRepository(mongo, database_name(settings, DB_SUFFIX), workers)
        sessions = SessionWatch(users, settings.session_check_s)
        rpc = RpcClient(amqp_url(settings), connection_name(SERVICE) + "/rpc")
        app.state.gateway = GatewayState(
            settings=settings,
            mongo=mongo,
            users=users,
            progress=progress,
            hub=hub,
            recent=recent,
            durations=durations,
            publishers=publishers,
            broker=rabbit.broker,
            rpc=rpc,
            sessions=sessions,
        )
        watch = asyncio.create_task(sessions.run(), name="session-watch")
        try:
            yield
        finally:
            watch.cancel()
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
    app.include_router(rabbit)
    for module in (
        auth,
        imports,
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
        audit,
    ):
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
    return app


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


def install_error_handlers(app: FastAPI) -> None:
    """Errors are `{"detail": ...}` with the right status, never a stack trace."""

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"][1:]) or "body", "message": err["msg"]}
            for err in exc.errors()[:20]
        ]
        return JSONResponse(
            {"detail": "Requête invalide : vérifiez les champs indiqués.", "errors": problems},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return JSONResponse(
                {"detail": "Méthode non permise sur cette ressource."},
                status_code=405,
                headers={"Allow": ", ".join(allowed_methods(app, request.scope))},
            )
        if unreadable_body(exc):
            return JSONResponse(
                {
                    "detail": "Requête invalide : le corps de la requête est illisible.",
                    "errors": [{"field": "body", "message": "corps illisible"}],
                },
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(PyMongoError)
    async def on_store_error(request: Request, exc: PyMongoError) -> JSONResponse:
        """The store away (killed, unreachable, or holding the connection without an
        answer until the driver's timeouts) is a 503 the client may retry, from any
        route and from the authentication that runs before it; not a 500."""
        if store_unavailable(exc):
            STORE_ERRORS.labels(type(exc).__name__).inc()
            logger.warning(
                "store unavailable", extra={"path": request.url.path, "error": repr(exc)[:300]}
            )
            return store_unavailable_response()
        logger.error("store error", exc_info=exc, extra={"path": request.url.path})
        return JSONResponse({"detail": INTERNAL_ERROR}, 500)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, HTTPException):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        return JSONResponse({"detail": INTERNAL_ERROR}, 500)


INTERNAL_ERROR = "Erreur interne : l'incident a été enregistré."
REFRESHES = Counter(
    "jauge_gateway_refreshes_total",
    "Times the broker connection came back and the gateway rebuilt its views from the store.",
)
STORE_ERRORS = Counter(
    "jauge_gateway_store_unavailable_total",
    "Requests answered 503 because the store was away or too slow, by driver error.",
    ["error"],
)


def store_unavailable_response() -> JSONResponse:
    return JSONResponse(
        {"detail": STORE_UNAVAILABLE},
        503,
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route takes at this path: Starlette's 405 names only those of
    the first route that matched the path (GET /api/lots and POST /api/lots are two).
    Asked of the routes themselves (`matches`), whatever the way they were included."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed


# What FastAPI raises, in English and as an undocumented 400, when a body cannot even be
# decoded (bytes that are not UTF-8 under a JSON content type, a broken multipart).
_FASTAPI_UNREADABLE_BODY = "There was an error parsing the body"


def unreadable_body(exc: StarletteHTTPException) -> bool:
    """A body that cannot be decoded is a 422 like malformed JSON (FastAPI's json_invalid),
    with the same French shape, rather than FastAPI's English 400 that no route documents."""
    return exc.status_code == 400 and exc.detail == _FASTAPI_UNREADABLE_BODY


def listening_socket(config: uvicorn.Config, stall_timeout_s: float) -> socket.socket:
    """uvicorn's listening socket, with TCP_USER_TIMEOUT so a peer that stops reading goes.

    A WebSocket client that keeps its connection open but never reads (zero receive
    window) is otherwise never let go: the hub's 1013 close and uvicorn's keepalive
    close both wait for the buffered frames to drain first, which never happens, so the
    socket, megabytes of kernel buffers and the handler stay until the peer goes away.
    With this option (Linux; accepted sockets inherit it) the kernel resets a
    connection whose sent data could not be delivered for twice `stall_timeout_s`:
    twice, so that the hub gives up first and counts the socket as a slow client.
    """
    sock = config.bind_socket()
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, round(stall_timeout_s * 2000))
        )
    return sock


def run() -> None:
    settings = GatewaySettings()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # X-Forwarded-For is believed from the trusted proxies only (uvicorn's own
        # default trusts 127.0.0.1: anyone on the host could pick their address)
        proxy_headers=bool(settings.trusted_proxies.strip()),
        forwarded_allow_ips=settings.trusted_proxies.strip() or None,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s) + 1,
        loop=settings.event_loop,
    )
    server = uvicorn.Server(config)
    with suppress(KeyboardInterrupt):
        server.run(sockets=[listening_socket(config, settings.ws_stall_timeout_s)])
    if not server.started:  # as uvicorn.run: a failed startup is a failed exit
        sys.exit(3)
