"""Hostile requests against the gateway app itself: bodies, uploads, logins, headers,
redirects, methods, sockets and streams (docs/security.md, "Requests, sessions and the
web"). The store and the broker are stood in for; tests/test_security_sessions.py runs
what needs them for real."""

from __future__ import annotations

import asyncio
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from blobs_support import memory_buckets
from fastapi import FastAPI
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gateway.body_limit import DISCARD_ANONYMOUS, UploadQuota
from gateway.hub import Hub
from gateway.main import create_app
from gateway.photo_handovers import PhotoHandovers
from gateway.progress_view import ProgressView
from gateway.routers.auth import MAX_USERNAME, LoginRateLimiter
from gateway.routers.pages import WEB_DIR, same_site_path
from gateway.security import (
    HashingBusyError,
    InvalidTokenError,
    PasswordWorkers,
    TokenClaims,
    create_access_token,
    create_ws_ticket,
    decode_access_token,
    hash_password,
)
from gateway.sessions import SessionWatch
from gateway.settings import GatewaySettings
from gateway.upload_store import UploadStore
from gateway.users import Role, User

SECRET = "hostile-requests-test-" + "x" * 40


class FakeUsers:
    """The users collection, in memory."""

    def __init__(self, *users: User) -> None:
        self.users = {u.username: u for u in users}

    async def get(self, username: str) -> User | None:
        return self.users.get(username)


class FakeProgress:
    def __init__(self, *docs: dict[str, Any]) -> None:
        self.docs = {d["_id"]: d for d in docs}

    async def find_one(self, query: dict[str, Any], *_: Any) -> dict[str, Any] | None:
        return self.docs.get(query["_id"])


def make_app(**overrides: Any) -> tuple[FastAPI, SimpleNamespace]:
    settings = GatewaySettings(jwt_secret=SECRET, **overrides)
    app = create_app(settings)
    users = FakeUsers(User("alice", Role.AGENT))
    state = SimpleNamespace(
        settings=settings,
        users=users,
        hub=Hub(),
        sessions=SessionWatch(users, 3600),  # type: ignore[arg-type]
        view=ProgressView(FakeProgress(), FakeProgress()),  # type: ignore[arg-type]
        rpc=None,  # the routes tried here refuse before asking a service
        publishers={},
        buckets=memory_buckets(),
    )
    state.handovers = PhotoHandovers(UploadStore(settings.data_dir), state.buckets, {})
    app.state.gateway = state  # as the lifespan would, without a store or a broker
    return app, state


def token(username: str = "alice", ttl_s: int = 600) -> str:
    return create_access_token(username, "agent", SECRET, ttl_s)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


# --- request bodies --------------------------------------------------------------------


async def test_a_multipart_body_to_a_json_route_has_the_same_ceiling() -> None:
    app, _ = make_app(max_body_bytes=2048)
    async with client(app) as c:
        response = await c.post("/api/lots", files={"f": ("a.bin", b"x" * 100_000)})
    assert response.status_code == 413, response.text


async def call_counting(
    app: FastAPI,
    method: str,
    path: str,
    headers: dict[str, str],
    body_size: int,
    chunk: int,
    stall_after: int | None = None,
) -> tuple[int, int]:
    """Calls the app with a body sent in chunks; the status and the bytes it read.
    `stall_after`: bytes sent before the client sends nothing more."""
    read = 0
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.edi"\r\n\r\n'
    ).encode()

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= (stall_after or body_size):
            await asyncio.sleep(3600)
        data = head if read == 0 else b"x" * chunk
        read += len(data)
        return {"type": "http.request", "body": data, "more_body": read < body_size}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    raw_headers = [
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        (b"content-length", str(body_size).encode()),
        *[(k.lower().encode(), v.encode()) for k, v in headers.items()],
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": raw_headers,
        "client": ("127.0.0.1", 1234),
        "server": ("gateway", 80),
        "app": app,
    }
    await asyncio.wait_for(app(scope, receive, send), 30)
    return status, read


async def test_an_anonymous_upload_is_refused_before_its_body_is_read() -> None:
    app, _ = make_app()
    size = 20 * 1024 * 1024
    status, read = await call_counting(app, "POST", "/api/imports/upload", {}, size, 64 * 1024)
    assert status == 401
    # what is read is only dropped, never parsed nor spooled, and stops soon
    assert read <= DISCARD_ANONYMOUS + 64 * 1024 + 200, read


async def test_an_upload_over_its_route_ceiling_is_refused_unread(tmp_path: Path) -> None:
    app, _ = make_app(max_upload_request_bytes=1024 * 1024, data_dir=tmp_path)
    headers = {"authorization": f"Bearer {token()}"}
    status, _ = await call_counting(
        app, "POST", "/api/imports/upload", headers, 5 * 1024 * 1024, 64 * 1024
    )
    # the middleware's 413, before the route: nothing parsed, nothing written to disk
    assert status == 413
    assert not (tmp_path / "uploads").exists()


async def test_an_agent_cannot_have_more_uploads_in_flight_than_its_quota() -> None:
    app, _ = make_app(upload_quota_user_bytes=3 * 1024 * 1024)
    headers = {"authorization": f"Bearer {token()}"}
    # a first upload that takes its time: 2 MiB declared, a few bytes sent, then nothing
    first = asyncio.create_task(
        call_counting(
            app, "POST", "/api/imports/upload", headers, 2 * 1024 * 1024, 1024, stall_after=1
        )
    )
    await asyncio.sleep(0.2)
    status, _ = await call_counting(
        app, "POST", "/api/imports/upload", headers, 2 * 1024 * 1024, 64 * 1024
    )
    assert status == 429
    first.cancel()


def test_the_upload_quota_is_given_back() -> None:
    quota = UploadQuota(per_user=100, total=150)
    assert quota.reserve("alice", 100)
    assert not quota.reserve("alice", 1)
    assert quota.reserve("bob", 50)
    assert not quota.reserve("carol", 1)  # the replica's total
    quota.release("alice", 100)
    assert quota.reserve("carol", 100)
    assert quota.in_flight == 150


# --- logins ----------------------------------------------------------------------------

LIMITS = (3, 5, 7)  # per (user, address), per user, per address


def test_the_login_limiter_forgets_the_oldest_keys_beyond_its_size() -> None:
    limiter = LoginRateLimiter(max_keys=100)
    for i in range(10_000):
        limiter.failed(f"user-{i}", f"10.0.{i // 250}.{i % 250}", LIMITS)
    assert len(limiter) <= 100


def test_one_account_is_throttled_whatever_the_address() -> None:
    limiter = LoginRateLimiter()
    for i in range(5):
        limiter.failed("alice", f"10.0.0.{i}", LIMITS)
    assert limiter.blocked_for("alice", "10.9.9.9", LIMITS, 300) > 0
    assert limiter.blocked_for("bob", "10.9.9.9", LIMITS, 300) == 0


def test_one_address_is_throttled_whatever_the_account() -> None:
    limiter = LoginRateLimiter()
    for i in range(7):
        limiter.failed(f"user-{i}", "10.0.0.1", LIMITS)
    assert limiter.blocked_for("someone-else", "10.0.0.1", LIMITS, 300) > 0
    assert limiter.blocked_for("someone-else", "10.0.0.2", LIMITS, 300) == 0


async def test_password_checks_run_off_the_event_loop_and_are_capped() -> None:
    workers = PasswordWorkers(concurrency=1, queue=1)
    hashed = hash_password("secret")
    threads: list[int] = []
    import gateway.security as security

    real = security.verify_password

    def recording(password: str, h: str) -> bool:
        threads.append(threading.get_ident())
        return real(password, h)

    security.verify_password = recording
    try:
        checks = [asyncio.create_task(workers.verify("secret", hashed)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(HashingBusyError):  # a third waits nowhere: refused at once
            await workers.verify("secret", hashed)
        assert await asyncio.gather(*checks) == [True, True]
    finally:
        security.verify_password = real
        workers.close()
    assert threads and threading.get_ident() not in threads


async def test_a_login_name_of_a_megabyte_costs_no_hash_and_a_bounded_key() -> None:
    app, state = make_app()
    calls: list[str] = []

    async def authenticate(username: str, password: str) -> None:
        calls.append(username)

    state.users.authenticate = authenticate
    async with client(app) as c:
        response = await c.post(
            "/api/auth/token", data={"username": "a" * 900_000, "password": "x"}
        )
    assert response.status_code == 401
    assert calls == []
    keys = list(app.state.login_limiter._failures)
    assert keys and all(len(k[1]) <= MAX_USERNAME + 64 for k in keys)


async def test_a_login_while_the_hashing_is_saturated_gets_a_503() -> None:
    app, state = make_app()

    async def authenticate(username: str, password: str) -> None:
        raise HashingBusyError

    state.users.authenticate = authenticate
    async with client(app) as c:
        response = await c.post("/api/auth/token", data={"username": "a", "password": "x"})
    assert response.status_code == 503
    assert response.headers["retry-after"]


# --- pages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "next_url",
    [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "/\n/evil.example",
        "https://evil.example",
        "/ /evil.example",
        "\t//evil.example",
    ],
)
def test_login_never_redirects_off_site(next_url: str) -> None:
    assert same_site_path(next_url) == "/"


async def test_login_redirect_with_a_tab_stays_on_site() -> None:
    app, _ = make_app()
    async with client(app) as c:
        c.cookies.set("jauge_session", token())
        response = await c.get("/login?next=/%09/evil.example")
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_same_site_paths_are_kept() -> None:
    for path in ("/", "/lots/abc", "/taches?x=1", "/imports/j1#top"):
        assert same_site_path(path) == path


@pytest.mark.parametrize("path", ["/login", "/api/me", "/static/jauge.js", "/healthz-missing"])
async def test_every_answer_carries_the_security_headers(path: str) -> None:
    app, _ = make_app()
    async with client(app) as c:
        response = await c.get(path)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_the_templates_hold_no_inline_script_handler_or_style() -> None:
    for template in (WEB_DIR / "templates").glob("*.html"):
        html = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), template.name
        assert not re.search(r"\son[a-z]+\s*=", html), template.name
        assert not re.search(r"\sstyle\s*=|<style", html), template.name
    # the one place the scripts built a style attribute now goes through the CSSOM
    script = (WEB_DIR / "static" / "jauge.js").read_text()
    assert 'key === "style"' in script


# --- OpenAPI conformance ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/lots", {"GET", "POST"}),
        ("/api/lots/l1/colis", {"GET", "POST"}),
        ("/api/colis/c1", {"GET", "PATCH"}),
    ],
)
async def test_a_405_lists_every_method_of_the_resource(path: str, methods: set[str]) -> None:
    app, _ = make_app()
    async with client(app) as c:
        response = await c.request("OPTIONS", path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == methods


async def test_since_must_be_a_date_not_a_number() -> None:
    app, _ = make_app()
    async with client(app) as c:
        response = await c.get(
            "/api/jobs", params={"since": "0.5"}, headers={"authorization": f"Bearer {token()}"}
        )
    assert response.status_code == 422, response.text


# --- tokens, WebSocket and SSE ---------------------------------------------------------


def test_a_ticket_is_no_access_token_nor_the_reverse() -> None:
    claims = decode_access_token(token(), SECRET)
    ticket = create_ws_ticket(claims, SECRET)
    with pytest.raises(InvalidTokenError):
        decode_access_token(ticket, SECRET)
    with pytest.raises(InvalidTokenError):
        decode_access_token(token(), SECRET, "ws")
    from_ticket = decode_access_token(ticket, SECRET, "ws")
    assert from_ticket.token_id == claims.token_id
    assert from_ticket.session_end == claims.expires_at.replace(microsecond=0)
    assert from_ticket.expires_at <= datetime.now(UTC) + timedelta(seconds=31)


def ws_close_code(app: FastAPI, url: str, headers: dict[str, str] | None = None) -> int | None:
    with TestClient(app) as c, c.websocket_connect(url, headers=headers or {}) as ws:
        try:
            ws.send_text('{"op": "ping"}')
            ws.receive_text()
        except WebSocketDisconnect as e:
            return e.code
        return None


def bare(app: FastAPI) -> FastAPI:
    """The app without its lifespan (no store, no broker): the fake state stays."""
    app.router.lifespan_context = _no_lifespan
    return app


class _no_lifespan:
    def __init__(self, app: Any) -> None:
        pass

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: Any) -> None:
        return None


def test_a_socket_from_another_origin_is_refused() -> None:
    app, _ = make_app()
    bare(app)
    headers = {"origin": "https://evil.example", "authorization": f"Bearer {token()}"}
    assert ws_close_code(app, "/ws", headers) == 4403
    same = {"origin": "http://testserver", "authorization": f"Bearer {token()}"}
    assert ws_close_code(app, "/ws", same) is None


def test_the_url_takes_a_ticket_not_the_access_token() -> None:
    app, _ = make_app()
    bare(app)
    assert ws_close_code(app, f"/ws?token={token()}") == 4401
    with TestClient(app) as c:
        ticket = c.post(
            "/api/auth/ws-ticket", headers={"authorization": f"Bearer {token()}"}
        ).json()["ticket"]
    assert ws_close_code(app, f"/ws?ticket={ticket}") is None


async def test_a_session_watch_closes_what_a_logout_disable_or_expiry_ends() -> None:
    alice = User("alice", Role.AGENT)
    users = FakeUsers(alice)
    watch = SessionWatch(users, 3600)  # type: ignore[arg-type]

    def connection() -> Any:
        from gateway.hub import Connection

        async def send(text: str) -> None:
            return None

        return Connection(alice, send, limit=8, stall_timeout_s=1)

    now = datetime.now(UTC)
    expired = connection()
    watch.add(expired, TokenClaims("alice", "agent", now - timedelta(seconds=1), "t1"))
    revoked = connection()
    watch.add(revoked, TokenClaims("alice", "agent", now + timedelta(hours=1), "t2"))
    kept = connection()
    watch.add(kept, TokenClaims("alice", "agent", now + timedelta(hours=1), "t3"))
    users.users["alice"] = User("alice", Role.AGENT, revoked_tokens=frozenset({"t2"}))
    await watch.check()
    assert expired.close_reason and expired.close_reason[0] == 4401
    assert revoked.close_reason and revoked.close_reason[0] == 4401
    assert kept.close_reason is None
    users.users["alice"] = User("alice", Role.AGENT, disabled=True)
    await watch.check()
    assert kept.close_reason and kept.close_reason[0] == 4401


async def test_an_sse_reader_that_takes_nothing_is_dropped_and_costs_no_memory() -> None:
    app, state = make_app(ws_stall_timeout_s=0.3)
    state.view = ProgressView(FakeProgress({"_id": "j1", **job_doc(0)}), FakeProgress())  # type: ignore[arg-type]
    sent_bodies = 0
    blocked = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent_bodies
        if message["type"] == "http.response.body" and message.get("body"):
            sent_bodies += 1
            if sent_bodies > 1:  # the socket is full from the second frame on
                blocked.set()
                await asyncio.sleep(3600)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/jobs/j1/stream",
        "raw_path": b"/api/jobs/j1/stream",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token()}".encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("gateway", 80),
        "app": app,
    }
    stream = asyncio.create_task(app(scope, receive, send))
    for seq in range(1, 5000):
        await asyncio.sleep(0)
        state.hub.dispatch(job_doc(seq))
        if seq % 100 == 0:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(stream, 10)  # dropped, not stuck forever on the full socket
    assert blocked.is_set()
    assert not state.hub.connections and len(state.sessions) == 0


def job_doc(seq: int) -> dict[str, Any]:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return {
        "id": "j1",
        "kind": "import.edi",
        "owner": "alice",
        "title": "Import",
        "status": "running",
        "total": 10_000,
        "processed": seq,
        "failed": 0,
        "percent": seq / 100,
        "seq": seq,
        "created_at": now,
        "updated_at": now,
    }


# --- parcel photos, checked as they arrive ---------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """The start of a real PNG: signature, IHDR (its size) and the start of its first
    IDAT (where Pillow stops reading the header); the rest would be megabytes."""
    import struct
    import zlib

    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))
    return b"\x89PNG\r\n\x1a\n" + ihdr + struct.pack(">I", 10_000_000) + b"IDAT"


async def post_photo_then_stall(app: FastAPI, first: bytes) -> tuple[int, str]:
    """A parcel form whose photo sends `first`, then nothing, ever: the answer must come
    from what arrived, not from the whole body."""
    boundary = "ph0t0"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": head + first, "more_body": True}

    answer: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] = answer.get("body", b"") + message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/lots/l1/colis",
        "raw_path": b"/api/lots/l1/colis",
        "query_string": b"",
        "headers": [
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"content-length", str(10 * 1024 * 1024).encode()),
            (b"authorization", f"Bearer {token()}".encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("gateway", 80),
        "app": app,
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    return answer["status"], answer.get("body", b"").decode()


async def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    app, _ = make_app(data_dir=tmp_path)
    status, body = await post_photo_then_stall(app, png_header(30_000, 30_000) + b"\x00" * 5000)
    assert status == 413 and "image trop grande" in body
    assert not any((tmp_path / "uploads" / "colis").iterdir())


async def test_a_photo_that_is_no_image_is_refused_from_its_first_bytes(tmp_path: Path) -> None:
    app, _ = make_app(data_dir=tmp_path)
    status, body = await post_photo_then_stall(app, b"#!/bin/sh\nrm -rf / # not a photo\n")
    assert status == 415 and "pas une image" in body
    assert not any((tmp_path / "uploads" / "colis").iterdir())


async def test_a_real_photo_streams_to_its_file_unchanged(tmp_path: Path) -> None:
    import io

    from PIL import Image
    from starlette.datastructures import Headers

    from gateway.photo_stream import ParcelFormParser

    picture = io.BytesIO()
    Image.new("RGB", (640, 480), "orange").save(picture, "JPEG")
    photo = picture.getvalue()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="poids"\r\n\r\n12\r\n'
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + photo + b"\r\n--b--\r\n"
    )

    async def chunks() -> Any:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    parser = ParcelFormParser(
        Headers({"content-type": "multipart/form-data; boundary=b"}),
        chunks(),
        folder=tmp_path,
        max_bytes=1024 * 1024,
        max_pixels=1_000_000,
        max_files=1,
    )
    form = await parser.parse()
    assert form["poids"] == "12"
    upload_id = parser.sinks[0].finish()
    assert (tmp_path / upload_id).read_bytes() == photo
    assert sorted(os.listdir(tmp_path)) == [upload_id]
