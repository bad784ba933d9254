"""WS /ws: DESIGN.md's protocol (subscribe, unsubscribe, ping; snapshot, update, error, pong)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pymongo.errors import PyMongoError

from gateway.deps import (
    SESSION_COOKIE,
    HubDep,
    SessionsDep,
    SettingsDep,
    UsersDep,
    ViewDep,
    session_from_token,
)
from gateway.hub import JOB_TOPIC_PREFIX, JOBS_TOPIC, NOTIFICATIONS_TOPIC, Connection
from gateway.live import CLOSE_TRY_AGAIN_LATER, STORE_AWAY_REASON, offer_snapshot
from gateway.progress_view import ProgressView
from gateway.security import ACCESS, WS_TICKET
from gateway.wire import raw_socket_of
from jauge_shared.mongo import store_unavailable

router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
MAX_TOPICS = 1000
_JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _token_of(websocket: WebSocket) -> tuple[str | None, str]:
    """The credential and its kind: a ticket in the URL (never an access token, which
    would be left in access logs), else a bearer header, else the session cookie."""
    if ticket := websocket.query_params.get("ticket"):
        return ticket, WS_TICKET
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), ACCESS
    return websocket.cookies.get(SESSION_COOKIE), ACCESS


def origin_allowed(websocket: WebSocket, extra: str) -> bool:
    """A browser always sends its page's Origin: only the gateway's own (or one listed
    in `allowed_origins`) may open a socket, so that another site cannot ride the
    session cookie. Clients that are not browsers send none, and need a token anyway."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    host = websocket.headers.get("host", "")
    if origin in (f"http://{host}", f"https://{host}"):
        return True
    return origin in {o.strip() for o in extra.split(",") if o.strip()}


@router.websocket("/ws")
async def websocket_endpoint(
    websocket: WebSocket,
    settings: SettingsDep,
    users: UsersDep,
    view: ViewDep,
    hub: HubDep,
    sessions: SessionsDep,
) -> None:
    if not origin_allowed(websocket, settings.allowed_origins):
        await websocket.accept()
        await websocket.close(CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    token, kind = _token_of(websocket)
    try:
        session = await session_from_token(token, settings, users, kind)
    except PyMongoError as e:
        if not store_unavailable(e):
            raise
        # the user cannot be checked: say why, the client reconnects later
        await websocket.accept()
        await websocket.close(CLOSE_TRY_AGAIN_LATER, STORE_AWAY_REASON)
        return
    await websocket.accept()
    if session is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "authentication required")
        return
    user, claims = session
    connection = Connection(
        user,
        websocket.send_text,
        limit=settings.ws_queue_limit,
        stall_timeout_s=settings.ws_stall_timeout_s,
        raw=raw_socket_of(websocket.scope),
    )
    hub.add(connection)
    sessions.add(connection, claims)
    # The handler reads the client's frames itself until the client leaves; when the hub
    # gives up on the socket first (too slow, logged out, shutting down), `fail` stops
    # that read. A socket without a raw transport has a writer task besides; a raw one
    # is written from the dispatch (gateway.wire): one task per socket, not three.
    handler = asyncio.current_task()
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        if handler is not None and not interrupted:
            interrupted = True
            handler.cancel()

    connection.on_fail = interrupt
    writer = asyncio.create_task(connection.run_writer()) if connection.needs_writer else None

    def writer_done(_: asyncio.Task[None]) -> None:
        if not connection.closed.is_set():  # the writer ended on its own: so does the socket
            interrupt()

    if writer is not None:
        writer.add_done_callback(writer_done)
    try:
        await _read_frames(websocket, connection, view)
    except asyncio.CancelledError:
        if not interrupted or handler is None:
            raise
        handler.uncancel()
    finally:
        connection.on_fail = None
        hub.remove(connection)
        sessions.remove(connection)
        connection.stop()
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        if connection.close_reason is not None:
            code, reason = connection.close_reason
            with contextlib.suppress(Exception):
                await websocket.close(code, reason)


async def _read_frames(websocket: WebSocket, connection: Connection, view: ProgressView) -> None:
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                frame = orjson.loads(raw)
                if not isinstance(frame, dict):
                    raise ValueError("not an object")
            except ValueError:
                _error(connection, "bad_frame", "Message illisible : JSON attendu.")
                continue
            await _handle(frame, connection, view)
    except WebSocketDisconnect:
        connection.closed.set()


async def _handle(frame: dict[str, Any], connection: Connection, view: ProgressView) -> None:
    op = frame.get("op")
    if op == "ping":
        connection.send_now({"type": "pong"})
        return
    topic = frame.get("topic")
    if op not in ("subscribe", "unsubscribe"):
        _error(connection, "unknown_op", f"Opération inconnue : {op!r}.")
        return
    if not isinstance(topic, str) or not _valid_topic(topic):
        _error(
            connection,
            "bad_topic",
            "Sujet invalide : « jobs », « job:<id> » ou « notifications » attendu.",
        )
        return
    if op == "unsubscribe":
        connection.unsubscribe(topic)
        return
    if len(connection.topics) >= MAX_TOPICS:
        _error(connection, "too_many_topics", "Trop d'abonnements sur cette connexion.")
        return
    # subscribe first, then read: an update racing the snapshot is kept, not lost
    connection.subscribe(topic)
    try:
        await offer_snapshot(view, connection, topic)
    except PyMongoError as e:
        if not store_unavailable(e):
            raise
        # no snapshot, no subscription: closed with a reason, the client reconnects with
        # its backoff and subscribes to everything again (jauge.js), each with a snapshot
        connection.unsubscribe(topic)
        connection.fail(CLOSE_TRY_AGAIN_LATER, STORE_AWAY_REASON)
    finally:
        connection.snapshot_sent(topic)


def _valid_topic(topic: str) -> bool:
    if topic in (JOBS_TOPIC, NOTIFICATIONS_TOPIC):
        return True
    return topic.startswith(JOB_TOPIC_PREFIX) and bool(
        _JOB_ID.match(topic[len(JOB_TOPIC_PREFIX) :])
    )


def _error(connection: Connection, code: str, message: str) -> None:
    connection.send_now({"type": "error", "code": code, "message": message})
