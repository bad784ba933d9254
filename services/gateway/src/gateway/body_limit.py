"""A ceiling on request bodies, answered with the API's French 413, never held in memory.

Without it a 10 MB JSON body is read whole into memory, parsed, and only then refused
as invalid. Over the limit, the rest of the body is read and dropped before answering.
Multipart uploads are left to their routes, which stream each file to disk under its
own limit (`max_upload_bytes`, `max_photo_bytes`).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DISCARD_AT_MOST = 64 * 1024 * 1024  # bytes read and dropped before answering a 413


class BodyTooLarge(Exception):
    """Raised from `receive` once a body passes the limit; caught by the middleware."""


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").startswith("multipart/form-data"):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(scope, receive, send, unread=True)
            return

        # a chunked body declares nothing: count what arrives
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await self.refuse(scope, receive, send, unread=True)

    async def refuse(self, scope: Scope, receive: Receive, send: Send, *, unread: bool) -> None:
        if unread:
            await _discard(receive, DISCARD_AT_MOST)
        limit = f"{self.max_bytes / 1024:.0f} Ko"
        response = JSONResponse(
            {"detail": f"Requête trop volumineuse : le corps dépasse {limit}."},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


async def _discard(receive: Receive, at_most: int) -> None:
    """Read the rest of the body and drop it, chunk by chunk.

    A client still sending its body when the answer comes and the socket closes sees a
    reset, not the 413 (httpx: ReadError). Dropping what it sends keeps memory flat;
    past `at_most` the client is not worth the wait, and gets the reset.
    """
    dropped = 0
    while dropped <= at_most:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return
