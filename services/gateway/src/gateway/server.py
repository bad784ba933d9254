"""The gateway's process: uvicorn serving the app, on a socket that lets go of peers
that stop reading."""

from __future__ import annotations

import socket
import sys
from contextlib import suppress

import uvicorn

from gateway.main import create_app
from gateway.settings import GatewaySettings
from gateway.wire import JaugeWebSocketProtocol


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
        # X-Forwarded-For is believed from the trusted proxies only (uvicorn's own
        # default trusts 127.0.0.1: anyone on the host could pick their address)
        proxy_headers=bool(settings.trusted_proxies.strip()),
        forwarded_allow_ips=settings.trusted_proxies.strip() or None,
        # frames compressed once for all sockets and written straight (gateway.wire)
        ws=JaugeWebSocketProtocol,
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
