"""How long the gateway takes to answer, per route, measured where the request arrives.

A benchmark's clients on the same two cores as the server add their own event loop's
lag to every answer they time (docs/performance.md): this is the server's side of it,
from the request's first ASGI call to its last body byte handed to the server, body
upload included. Routes are labelled by their template (`/api/lots/{lot_id}/colis`),
never by the path a client sent, so the series stay few whatever is asked.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_SECONDS = Histogram(
    "jauge_http_request_seconds",
    "From a request's arrival at the gateway to the end of its answer, by route template.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10),
)
UNMATCHED = "unmatched"  # a 404 of no route, or a request refused before routing


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


class HttpTimingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = "none"  # the client went away before an answer began

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = f"{message['status'] // 100}xx"
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                HTTP_SECONDS.labels(scope["method"], route_template(scope), status).observe(
                    perf_counter() - started
                )

        await self.app(scope, receive, timed_send)
