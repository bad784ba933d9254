"""/healthz, /readyz and /metrics for the FastStream services, how they are served, and
the periodic passes their lifespans run beside the broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol

import pymongo
import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.rabbit import RabbitBroker
from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app
from pymongo import AsyncMongoClient

logger = logging.getLogger("jauge.ops")

ReadinessCheck = Callable[[], Awaitable[bool]]
STARTUP_FAILURE = 3  # uvicorn's exit code for a server that could not start
CHECK_TIMEOUT_S = 2.0
_JSON = {"content-type": "application/json"}


async def store_is_reachable(client: AsyncMongoClient[Any]) -> bool:
    """The driver's own deadline (`pymongo.timeout`), not a cancellation: a ping
    cancelled by `asyncio.wait_for` while it waits in server selection can leave the
    client's topology lock released under another task (pymongo 4.20: "Lock is not
    acquired" in a scheduler pass during a store outage, then that service never
    ready again after the store came back, in a CI run of test_faults_store)."""
    try:
        with pymongo.timeout(CHECK_TIMEOUT_S):
            await client.admin.command("ping")
    except Exception:
        return False
    return True


async def run_checks(checks: Mapping[str, ReadinessCheck]) -> dict[str, bool]:
    results = await asyncio.gather(*(check() for check in checks.values()), return_exceptions=True)
    return {name: result is True for name, result in zip(checks, results, strict=True)}


def ops_routes(
    checks: Mapping[str, ReadinessCheck], registry: CollectorRegistry = REGISTRY
) -> list[tuple[str, Any]]:
    """ASGI routes for `AsgiFastStream(asgi_routes=...)`."""

    @get(include_in_schema=False)
    async def healthz(scope: Any) -> AsgiResponse:
        return AsgiResponse(b'{"status":"ok"}', status_code=200, headers=_JSON)

    @get(include_in_schema=False)
    async def readyz(scope: Any) -> AsgiResponse:
        results = await run_checks(checks)
        ready = all(results.values())
        body = json.dumps({"ready": ready, "checks": results}).encode()
        return AsgiResponse(body, status_code=200 if ready else 503, headers=_JSON)

    return [("/healthz", healthz), ("/readyz", readyz), ("/metrics", make_asgi_app(registry))]


def serve(
    app: Any, *, host: str, port: int, graceful_timeout_s: float, event_loop: str = "auto"
) -> None:
    """Run an ASGI app the way every service runs: uvicorn, our logging, graceful stop.

    The port is bound before the app starts: uvicorn binds it after the lifespan has
    connected to the broker, and a port already taken then left the process alive and
    deaf for good (asyncio.run cancelling aio-pika's reconnection, which catches the
    cancellation and tries again). A port that cannot be bound is a startup failure,
    exit code 3, before anything else is opened.

    uvicorn turns SIGTERM into a lifespan shutdown; the broker then stops consuming and
    waits up to `graceful_timeout_s` for in-flight handlers, and unacked messages go
    back to their queue when the connection closes.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_timeout_s) + 1,
        access_log=False,
        loop=event_loop,
    )
    try:
        listening = config.bind_socket()
    except SystemExit:  # uvicorn logged why (address in use, permission)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listening])
    if not server.started:  # as uvicorn.run: a failed startup is a failed exit
        sys.exit(STARTUP_FAILURE)


class _Runnable(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def graceful_timeout_s(self) -> float: ...
    @property
    def event_loop(self) -> str: ...


def worker_app(
    broker: RabbitBroker,
    mongo: AsyncMongoClient[Any],
    lifespan: Callable[[], Any],
    *,
    consuming: Callable[[], bool] | None = None,
) -> AsgiFastStream:
    """A FastStream service as an ASGI app: the broker, /healthz, /readyz, /metrics.

    `consuming`: whether a consumer outside the broker (`DirectConsumer`) is reading.
    """
    checks: dict[str, ReadinessCheck] = {
        "broker": lambda: broker.ping(timeout=CHECK_TIMEOUT_S),
        "store": lambda: store_is_reachable(mongo),
    }
    if consuming is not None:
        is_consuming = consuming

        async def consumer() -> bool:
            return is_consuming()

        checks["consumer"] = consumer
    return AsgiFastStream(
        broker,
        lifespan=lifespan,
        asgi_routes=ops_routes(checks),
        asyncapi_path="/asyncapi",
    )


def run_service(app: Any, settings: _Runnable) -> None:
    serve(
        app,
        host=settings.host,
        port=settings.port,
        graceful_timeout_s=settings.graceful_timeout_s,
        event_loop=settings.event_loop,
    )


async def every(interval_s: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """`work` every `interval_s` seconds, for ever: a failed pass (the broker or the store
    away) is logged with its traceback, and the next pass tries again."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception:
            logger.exception("%s pass failed", what)


@contextlib.asynccontextmanager
async def in_background(*work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run coroutines as tasks while the block lasts (a lifespan's `yield`), then cancel
    them and wait until they have stopped, so nothing they do outlives the app."""
    tasks = [asyncio.create_task(coroutine) for coroutine in work]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
