"""gateway: the FastAPI app, its broker connection and the wiring, in one place."""

from __future__ import annotations

import os
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
from prometheus_client import REGISTRY
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.body_limit import BodySizeLimit
from gateway.durations import RecentDurations
from gateway.hub import Hub
from gateway.recent import RecentJobs
from gateway.routers import (
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
    ws,
)
from gateway.routers.jobs import to_public
from gateway.rpc import RpcClient
from gateway.settings import DB_SUFFIX, PROGRESS_DB_SUFFIX, SERVICE, GatewaySettings
from gateway.state import GatewayState
from gateway.tracing import HttpTracingMiddleware
from gateway.users import UserRepository
from jauge_shared.broker import amqp_url, broker_options, connect_to_every_node
from jauge_shared.contracts import (
    ColisStepChanged,
    CreateColis,
    ProgressUpdated,
    RequestImport,
    UpdateColis,
    message_type,
)
from jauge_shared.identity import connection_name
from jauge_shared.logging import configure_logging
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, gateway_progress_queue
from jauge_shared.tracing import tracer_provider

COMMANDS = (RequestImport, CreateColis, UpdateColis)
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
        hub.dispatch(job)

    @rabbit.after_startup
    async def declare_exchanges(app: FastAPI) -> None:
        await rabbit.broker.declare_exchange(COMMANDS_EXCHANGE)
        await rabbit.broker.declare_exchange(EVENTS_EXCHANGE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        users = UserRepository(mongo, database_name(settings, DB_SUFFIX))
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
        )
        try:
            yield
        finally:
            await hub.close_all()
            await rpc.close()
            await mongo.close()

    app = FastAPI(
        title="Jauge",
        summary="Live progress for back-office work that runs in the background.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(rabbit)
    for module in (auth, imports, invoices, jobs, ws, ops, clients, tariffs, lots, colis, tasks):
        app.include_router(module.router)
    app.include_router(pages.router)  # the web UI
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if tracer_provider(settings, SERVICE) is not None:
        app.add_middleware(HttpTracingMiddleware)
    return app


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
        if unreadable_body(exc):
            return JSONResponse(
                {
                    "detail": "Requête invalide : le corps de la requête est illisible.",
                    "errors": [{"field": "body", "message": "corps illisible"}],
                },
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, HTTPException):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        return JSONResponse({"detail": "Erreur interne : l'incident a été enregistré."}, 500)


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
