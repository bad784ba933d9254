"""A WebSocket peer that never reads is let go, not kept forever (bench/ws_bench.py found it).

The hub closes a stalled socket with 1013, but the close frame waits behind the unsent
ones, which a peer with a shut receive window never takes: without TCP_USER_TIMEOUT on
the listening socket the handler, the socket and its buffers stayed until the peer left.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress
from typing import Any

import pytest
import uvicorn

from gateway.server import listening_socket

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_USER_TIMEOUT"), reason="TCP_USER_TIMEOUT is Linux's"
)

STALL_S = 0.5
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def config_for(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        ws_ping_interval=None,
        timeout_graceful_shutdown=1,
    )


def test_accepted_sockets_carry_the_stall_timeout() -> None:
    listener = listening_socket(config_for(None), STALL_S)
    listener.listen()
    with listener, socket.create_connection(listener.getsockname()):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 1000


async def test_a_peer_that_never_reads_is_disconnected() -> None:
    released = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """What the hub's writer does: send, give up after the stall timeout, close 1013."""
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                message = {"type": "websocket.send", "text": "x" * 16384}
                await asyncio.wait_for(send(message), STALL_S)
        except TimeoutError:
            with suppress(Exception):
                await send({"type": "websocket.close", "code": 1013, "reason": "client too slow"})
        except Exception:
            pass
        finally:
            released.set()

    config = config_for(app)
    listener = listening_socket(config, STALL_S)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    peer = socket.socket()
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(peer, listener.getsockname())
        await loop.sock_sendall(peer, HANDSHAKE)  # and never read a byte
        await asyncio.wait_for(released.wait(), 15)
        for _ in range(100):  # the protocol goes once the kernel has reset the connection
            if not server.server_state.connections:
                break
            await asyncio.sleep(0.05)
        assert not server.server_state.connections
    finally:
        peer.close()
        server.should_exit = True
        await serving
