"""A TCP proxy that a test makes slow, silent or broken: the network between the
services and RabbitMQ, without toxiproxy.

    with FaultyProxy("127.0.0.1", 5672) as proxy:   # the services connect to proxy.port
        proxy.latency_s = 0.15   # added each way
        proxy.blackhole()        # sockets stay open but no byte moves: only heartbeats tell
        proxy.restore()          # the bytes held back flow again, in order
        proxy.cut()              # every connection closed at once; new ones are accepted

It runs its own event loop in a thread: the test's loop makes blocking calls (pymongo,
subprocesses) that would otherwise stall the traffic and make the services miss
heartbeats the test did not mean to take away.

A blackhole holds bytes back rather than dropping them, as TCP does during a
partition: they are delivered if the network heals before a peer gives up. A peer's
close is held back too (a FIN does not cross a partition either), and a new connection
is accepted but not passed on to the upstream until the network is restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")
CHUNK = 64 * 1024


class FaultyProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.latency_s = 0.0
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="faulty-proxy", daemon=True)
        self._listening = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flowing: asyncio.Event
        self._stopping: asyncio.Event
        self._sockets: set[asyncio.StreamWriter] = set()
        self._relays: set[asyncio.Task[None]] = set()

    def blackhole(self) -> None:
        self._call(self._flowing.clear)

    def restore(self) -> None:
        self._call(self._flowing.set)

    def cut(self) -> int:
        """Close every connection now; returns how many there were."""
        return self._call(self._cut)

    @property
    def connections(self) -> int:
        return self._call(lambda: len(self._relays))

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        self._listening.wait(10)
        if not self.port:
            raise RuntimeError("the proxy did not start listening")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "the proxy did not stop"

    def _call(self, function: Callable[[], T]) -> T:
        """`function()` run on the proxy's loop (its events and sets are not thread-safe)."""
        assert self._loop is not None, "not started"

        async def call() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        finally:
            self._listening.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        async with server:
            self.port = server.sockets[0].getsockname()[1]
            self._listening.set()
            await self._stopping.wait()
        self._cut()
        await asyncio.gather(*self._relays, return_exceptions=True)

    def _cut(self) -> int:
        relays = len(self._relays)
        for writer in self._sockets:
            writer.transport.abort()
        for relay in self._relays:
            relay.cancel()
        return relays

    def _accepted(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        # a task of our own rather than start_server's: a cut cancels it, and 3.11's
        # StreamReaderProtocol logs an error for a handler task that ends cancelled
        relay = asyncio.create_task(self._relay(client_reader, client))
        self._relays.add(relay)
        relay.add_done_callback(self._relays.discard)

    async def _relay(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self._sockets.add(client)
        upstream: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()
            try:
                upstream_reader, upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            self._sockets.add(upstream)
            directions = {
                asyncio.create_task(self._forward(client_reader, upstream)),
                asyncio.create_task(self._forward(upstream_reader, client)),
            }
            try:
                await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for direction in directions:
                    direction.cancel()
                await asyncio.gather(*directions, return_exceptions=True)
        finally:
            for writer in (client, upstream):
                if writer is not None:
                    writer.transport.abort()
                    self._sockets.discard(writer)

    async def _forward(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """`source`'s bytes to `sink`, each `latency_s` late and none while blackholed,
        until `source` ends (its end passed on too) or `sink` fails."""
        loop = asyncio.get_running_loop()
        in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            chunk = b"start"
            while chunk:
                await self._flowing.wait()
                try:
                    chunk = await source.read(CHUNK)
                except OSError:  # a reset is an end like any other
                    chunk = b""
                in_flight.put_nowait((loop.time() + self.latency_s, chunk))

        # a reader of its own, so that the latency delays bytes without spacing them out
        receiving = asyncio.create_task(receive())
        try:
            while True:
                due, chunk = await in_flight.get()
                await asyncio.sleep(due - loop.time())
                await self._flowing.wait()
                if not chunk:
                    return
                sink.write(chunk)
                await sink.drain()
        finally:
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiving
