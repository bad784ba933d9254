"""WebSocket frames built once for every socket they go to (issue 18, item 3).

A progress update goes to every socket subscribed to its job: fifty, in `make bench-ws`.
Through uvicorn's ASGI `send`, each of them serialised the frame, compressed it with
its own permessage-deflate context and awaited the send: at 5,000 sockets that was
most of the gateway's time, and frames queued for seconds.

Here the gateway's uvicorn protocol negotiates permessage-deflate *without context
takeover* (RFC 7692, 7.1.1): every message is compressed on its own, so the same bytes
are valid on every socket, and no socket keeps a compressor between messages. A
`PreparedFrame` holds the finished frame (header and payload), compressed once per
window size, and `RawSocket.write` hands it to the socket's transport as it is, with
no task switch and no await: the approach of gorilla/websocket's `PreparedMessage`,
which Centrifugo broadcasts with.

The protocol puts its `RawSocket` in the ASGI scope's extensions (`RAW_SOCKET`); an ASGI
server without it (Starlette's TestClient, another server) leaves the hub on ASGI
`send`, as before.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.protocol import State
from websockets.server import ServerProtocol

RAW_SOCKET = "jauge.ws.raw"
WINDOW_BITS = 12  # as uvicorn's own setting: a frame is about 1 KB, a 4 KB window holds it
COMPRESS_MIN_BYTES = 128  # smaller messages go uncompressed (RSV1 unset), as RFC 7692 allows
_OPCODE_TEXT = 0x1
_FIN = 0x80
_RSV1 = 0x40
_SYNC_TAIL = b"\x00\x00\xff\xff"


def frame_bytes(payload: bytes, *, compressed: bool) -> bytes:
    """One unmasked, unfragmented text frame (server to client)."""
    first = _FIN | _OPCODE_TEXT | (_RSV1 if compressed else 0)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    return head + payload


def deflate(payload: bytes, window_bits: int) -> bytes:
    """A message compressed on its own, as permessage-deflate without context takeover
    sends it (the sync flush's empty block removed, RFC 7692 7.2.1)."""
    encoder = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits)
    data = encoder.compress(payload) + encoder.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(_SYNC_TAIL) else data


class PreparedFrame:
    """A text message encoded once; its frames (plain, or deflated for a given window)
    built the first time a socket needs them and shared by all the others."""

    __slots__ = ("_deflated", "_plain", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._plain: bytes | None = None
        self._deflated: dict[int, bytes] = {}

    def plain(self) -> bytes:
        if self._plain is None:
            self._plain = frame_bytes(self.text.encode(), compressed=False)
        return self._plain

    def deflated(self, window_bits: int) -> bytes:
        frame = self._deflated.get(window_bits)
        if frame is None:
            payload = self.text.encode()
            if len(payload) < COMPRESS_MIN_BYTES:
                frame = self.plain()
            else:
                frame = frame_bytes(deflate(payload, window_bits), compressed=True)
            self._deflated[window_bits] = frame
        return frame


class RawSocket:
    """Synchronous writes of prepared frames straight to one socket's transport."""

    __slots__ = ("_protocol", "_window_bits")

    def __init__(self, protocol: JaugeWebSocketProtocol) -> None:
        self._protocol = protocol
        self._window_bits: int | None = -1  # unknown until the handshake is done

    def _window(self) -> int | None:
        """0: no compression; N: shared deflated frames with an N-bit window; None: this
        socket compresses with a context of its own (never negotiated by this server,
        kept for safety), so it goes through its own encoder."""
        if self._window_bits == -1:
            window: int | None = 0
            for extension in self._protocol.conn.extensions:
                if isinstance(extension, PerMessageDeflate):
                    window = (
                        extension.local_max_window_bits
                        if extension.local_no_context_takeover
                        and extension.local_max_window_bits >= 9
                        else None
                    )
            self._window_bits = window
        return self._window_bits

    @property
    def open(self) -> bool:
        protocol = self._protocol
        return (
            protocol.handshake_complete
            and not protocol.close_sent
            and not protocol.disconnected
            and protocol.conn.state is State.OPEN
            and not protocol.transport.is_closing()
        )

    def writable(self) -> bool:
        """False while the transport's buffer is over its high-water mark."""
        return self._protocol.writable.is_set()

    async def wait_writable(self) -> None:
        await self._protocol.writable.wait()

    def write(self, frame: PreparedFrame) -> bool:
        """The frame handed to the transport; False if the socket is closing."""
        if not self.open:
            return False
        protocol = self._protocol
        window = self._window()
        if window is None:
            protocol.conn.send_text(frame.text.encode())
            protocol.transport.write(b"".join(protocol.conn.data_to_send()))
        else:
            protocol.transport.write(frame.deflated(window) if window else frame.plain())
        return True


class JaugeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, negotiating permessage-deflate without
    context takeover either way, and offering its `RawSocket` to the application."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        extensions = []
        if self.config.ws_per_message_deflate:
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_no_context_takeover=True,
                    # the client's messages are a few bytes of subscribe and ping: no
                    # decompressor kept per socket either
                    client_no_context_takeover=True,
                    server_max_window_bits=WINDOW_BITS,
                    client_max_window_bits=WINDOW_BITS,
                    compress_settings={"memLevel": 5},
                )
            ]
        self.conn = ServerProtocol(
            extensions=extensions,
            max_size=self.config.ws_max_size,
            logger=logging.getLogger("uvicorn.error"),
        )

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # the handshake's request and response, headers and all, are not read again:
            # a few KiB per socket (issue 18: under 40 KiB per socket in all)
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][RAW_SOCKET] = RawSocket(self)


def raw_socket_of(scope: Mapping[str, Any]) -> RawSocket | None:
    raw = (scope.get("extensions") or {}).get(RAW_SOCKET)
    return raw if isinstance(raw, RawSocket) else None
