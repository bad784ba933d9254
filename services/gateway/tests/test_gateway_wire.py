"""Frames prepared once for every socket (gateway.wire): what a real client decodes."""

from __future__ import annotations

import asyncio
import zlib
from contextlib import asynccontextmanager
from typing import Any

import orjson
import uvicorn
from websockets.asyncio.client import connect

from gateway.wire import (
    JaugeWebSocketProtocol,
    PreparedFrame,
    deflate,
    frame_bytes,
    raw_socket_of,
)

BIG = orjson.dumps({"type": "update", "job": {"id": "j1", "files": ["x" * 40] * 40}}).decode()
SMALL = '{"type":"pong"}'


def test_a_message_deflated_alone_inflates_back_with_the_window_it_was_made_for() -> None:
    payload = BIG.encode()
    data = deflate(payload, 12)
    assert len(data) < len(payload) / 4
    assert zlib.decompressobj(-12).decompress(data + b"\x00\x00\xff\xff") == payload


def test_frame_headers_carry_the_length_in_the_three_sizes() -> None:
    assert frame_bytes(b"a" * 125, compressed=False)[:2] == b"\x81\x7d"
    assert frame_bytes(b"a" * 126, compressed=True)[:4] == b"\xc1\x7e\x00\x7e"
    assert frame_bytes(b"a" * 70000, compressed=False)[:2] == b"\x81\x7f"
    assert len(frame_bytes(b"a" * 70000, compressed=False)) == 70000 + 10


def test_a_prepared_frame_is_built_once_per_window() -> None:
    prepared = PreparedFrame(BIG)
    assert prepared.deflated(12) is prepared.deflated(12)
    assert PreparedFrame(SMALL).deflated(12) == PreparedFrame(SMALL).plain()  # not worth it


@asynccontextmanager
async def serving(app: Any) -> Any:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        ws=JaugeWebSocketProtocol,
        ws_ping_interval=None,
        timeout_graceful_shutdown=1,
    )
    sock = config.bind_socket()
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield "ws://{}:{}".format(*sock.getsockname())
    finally:
        server.should_exit = True
        await task


async def test_the_same_prepared_bytes_decode_on_sockets_with_and_without_compression() -> None:
    prepared = [PreparedFrame(BIG), PreparedFrame(SMALL), PreparedFrame(BIG.replace("x", "y"))]
    raw_seen: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raw = raw_socket_of(scope)
        raw_seen.append(raw is not None)
        assert raw is not None and raw.open and raw.writable()
        for frame in prepared * 2:  # twice: no context carried from one message to the next
            assert raw.write(frame)
        await send({"type": "websocket.send", "text": SMALL})  # ASGI send still works
        await receive()  # until the client leaves

    expected = [p.text for p in prepared * 2] + [SMALL]
    async with serving(app) as url:
        async with connect(url) as compressed:  # websockets offers permessage-deflate
            header = compressed.response.headers["Sec-WebSocket-Extensions"]
            assert "server_no_context_takeover" in header
            assert "client_no_context_takeover" in header
            assert [await compressed.recv() for _ in expected] == expected
        async with connect(url, compression=None) as plain:
            assert "Sec-WebSocket-Extensions" not in plain.response.headers
            assert [await plain.recv() for _ in expected] == expected
    assert raw_seen == [True, True]
