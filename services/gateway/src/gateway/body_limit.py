"""A ceiling on every request body, answered with the API's French 413, never held in memory.

Without it a 10 MB JSON body is read whole into memory, parsed, and only then refused
as invalid. Over the limit, the rest of the body is read and dropped before answering.

Every body has a ceiling, multipart included: FastAPI reads (and parses) a body before
the route's dependencies run, so a multipart body sent to any route would otherwise be
spooled, file parts to /tmp, before its 401. Only the upload routes (`UploadRoute`) take
a larger body, and only from an authenticated user within the upload quotas: they are
authenticated here, before a byte of the body is read, so an anonymous client never
gets an upload buffered or spooled.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DISCARD_AT_MOST = 64 * 1024 * 1024  # bytes read and dropped before answering a 413
# an anonymous upload is not worth reading: a little is dropped (so that a small
# client sees its 401), then the connection goes
DISCARD_ANONYMOUS = 256 * 1024


class BodyTooLarge(Exception):
    """Raised from `receive` once a body passes the limit; caught by the middleware."""


@dataclass(frozen=True)
class UploadRoute:
    """A route that takes a multipart upload: its method, path and own ceiling."""

    method: str
    path: re.Pattern[str]
    max_bytes: int

    def matches(self, scope: Scope) -> bool:
        return scope["method"] == self.method and bool(self.path.fullmatch(scope["path"]))


class UploadQuota:
    """Upload bytes in flight, per user and on the whole replica (in memory).

    A request reserves its declared length (or its route's ceiling when it declares
    none) before its body is read, and gives it back when it ends, so one agent's
    uploads can never take more than its share of the disk and of the time.
    """

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self.in_flight = 0
        self._by_user: dict[str, int] = {}

    def reserve(self, user: str, size: int) -> bool:
        mine = self._by_user.get(user, 0)
        if mine + size > self.per_user or self.in_flight + size > self.total:
            return False
        self._by_user[user] = mine + size
        self.in_flight += size
        return True

    def release(self, user: str, size: int) -> None:
        self.in_flight -= size
        left = self._by_user.get(user, 0) - size
        if left > 0:
            self._by_user[user] = left
        else:
            self._by_user.pop(user, None)


# the user name behind a request's token or cookie, None when it has none that is valid
Authenticate = Callable[[Scope], Awaitable[str | None]]


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        uploads: Sequence[UploadRoute] = (),
        authenticate: Authenticate | None = None,
        quota: UploadQuota | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = tuple(uploads)
        self.authenticate = authenticate
        self.quota = quota

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        upload = next((u for u in self.uploads if u.matches(scope)), None)
        if upload is None or not headers.get("content-type", "").startswith("multipart/"):
            await self.limited(scope, receive, send, self.max_bytes, declared)
            return
        user = await self.authenticate(scope) if self.authenticate else "?"
        if user is None:
            await _refuse_unread(
                scope,
                receive,
                send,
                401,
                "Authentification requise : connectez-vous.",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        size = min(int(declared), upload.max_bytes) if declared.isdigit() else upload.max_bytes
        if self.quota is not None and not self.quota.reserve(user, size):
            await _refuse_unread(
                scope,
                receive,
                send,
                429,
                "Trop d'envois en cours : réessayez quand les précédents sont finis.",
                {"Retry-After": "10"},
            )
            return
        try:
            await self.limited(scope, receive, send, upload.max_bytes, declared)
        finally:
            if self.quota is not None:
                self.quota.release(user, size)

    async def limited(
        self, scope: Scope, receive: Receive, send: Send, max_bytes: int, declared: str
    ) -> None:
        if declared.isdigit() and int(declared) > max_bytes:
            await refuse(scope, receive, send, max_bytes)
            return

        # a chunked body declares nothing, and a declared length may lie: count what arrives
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
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
            await refuse(scope, receive, send, max_bytes)


async def refuse(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
    await _discard(receive, DISCARD_AT_MOST)
    if max_bytes >= 1024 * 1024:
        limit = f"{max_bytes / (1024 * 1024):.0f} Mo"
    else:
        limit = f"{max_bytes / 1024:.0f} Ko"
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


async def _refuse_unread(
    scope: Scope, receive: Receive, send: Send, status: int, detail: str, headers: dict[str, str]
) -> None:
    """An upload refused before its body is read: the first bytes read and dropped (so
    the client sees the answer, not a reset), then the answer, closing the connection."""
    await _discard(receive, DISCARD_ANONYMOUS)
    response = JSONResponse(
        {"detail": detail}, status_code=status, headers={**headers, "Connection": "close"}
    )
    await response(scope, receive, send)
