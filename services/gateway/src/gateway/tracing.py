"""Server spans for HTTP requests, so a trace starts where the user's click arrives.

(opentelemetry-instrumentation-fastapi is not installable here; this is the small part
of it Jauge needs.) Commands published while handling a request become its children.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpTracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer("jauge.gateway.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = f"{scope['method']} {scope['path']}"
        with self.tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", scope["method"])
            span.set_attribute("url.path", scope["path"])

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    code: Any = message["status"]
                    span.set_attribute("http.response.status_code", code)
                    if code >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, traced_send)
