"""The WebSocket hub: who listens to what, and a bounded, coalescing queue per socket.

Updates come from this replica's own progress.updated queue. Each socket has its own
writer task and a pending map keyed by (topic, job): a newer state of a job replaces
the older one not yet sent, so a slow client receives fewer frames, never stale ones,
and never slows anyone else. Frames are sent in `seq` order per job: anything not
newer than what the socket already has is dropped.

With thousands of sockets the hub's own cost matters (profiled at 5,000 sockets: the
loop over every connection was 41% of the gateway's time), so connections are indexed
by topic and a frame is encoded once for all the sockets it goes to.

Behind uvicorn (`gateway.wire`), a frame is also compressed once for all its sockets,
and a socket with nothing queued and room in its transport's buffer gets it written
at once, from the dispatch: no writer task wakes up per frame. Only a socket that
falls behind (its buffer over the high-water mark) queues, and there conflation keeps
the newest state of each job, in `seq` order (issue 18, item 3).

Over 300 lines on purpose: a connection's queue and the hub's topic index change
together (the dispatch writes into a socket's transport or its pending map directly);
split, each half would reach into the other's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from gateway.users import User
from gateway.wire import PreparedFrame, RawSocket

logger = logging.getLogger("gateway.hub")
# notifications pushed lately, remembered to push each once: duplicates come within
# seconds (a redelivery, a snapshot republished), far fewer than this apart
RECENT_NOTIFICATIONS = 4096
_tracer = trace.get_tracer("jauge.gateway.hub")

JOBS_TOPIC = "jobs"
JOB_TOPIC_PREFIX = "job:"
# the caller's own in-app notifications (`notification` frames; docs/api.md)
NOTIFICATIONS_TOPIC = "notifications"

WS_CONNECTIONS = Gauge("jauge_ws_connections", "Open WebSocket connections on this replica.")
WS_FRAMES = Counter("jauge_ws_frames_sent_total", "Frames sent to WebSocket clients.", ["type"])
WS_COALESCED = Counter("jauge_ws_frames_coalesced_total", "Updates replaced by a newer one unsent.")
WS_DISCONNECTED_SLOW = Counter("jauge_ws_slow_disconnects_total", "Sockets closed for stalling.")
_FRAMES = {kind: WS_FRAMES.labels(kind) for kind in ("snapshot", "update", "pong", "error")}
PUSH_LATENCY = Histogram(
    "jauge_ws_push_seconds",
    "From progress.updated received to frame written, per frame.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

SendText = Callable[[str], Awaitable[None]]
Frame = dict[str, Any]


class SlowConsumerError(Exception):
    pass


class Connection:
    """One socket's subscriptions and outgoing queue."""

    def __init__(
        self,
        user: User,
        send: SendText,
        *,
        limit: int,
        stall_timeout_s: float,
        raw: RawSocket | None = None,
    ) -> None:
        self.user = user
        self._send = send
        # frames written straight to the transport (`gateway.wire`); None: ASGI send
        self._raw = raw
        self._writing = False  # the writer holds a frame it has not written yet
        self.limit = limit
        self.stall_timeout_s = stall_timeout_s
        self.topics: set[str] = set()
        # topics whose snapshot is being read: an update arriving meanwhile is itself
        # the first state the client sees, so it goes out as the snapshot
        self._snapshotting: set[str] = set()
        self._pending: OrderedDict[tuple[str, str], tuple[Frame, float, PreparedFrame | None]] = (
            OrderedDict()
        )
        self._hub: Hub | None = None
        self._sent_seq: dict[tuple[str, str], int] = {}
        self._wakeup = asyncio.Event() if raw is None else None  # only the writer waits
        self.on_fail: Callable[[], None] | None = None  # the socket's handler, to stop it
        self._drainer: asyncio.Task[None] | None = None  # raw: only while frames queue
        self.closed = asyncio.Event()
        self.close_reason: tuple[int, str] | None = None

    @property
    def needs_writer(self) -> bool:
        """Whether `run_writer` must run for frames to go out (not with a raw transport)."""
        return self._raw is None

    def subscribe(self, topic: str) -> None:
        """Listen to `topic` from now on; its snapshot is read next (see `snapshot_sent`)."""
        self.topics.add(topic)
        self._snapshotting.add(topic)
        if self._hub is not None:
            self._hub.listen(self, topic)

    def unsubscribe(self, topic: str) -> None:
        self.topics.discard(topic)
        self._snapshotting.discard(topic)
        if self._hub is not None:
            self._hub.stop_listening(self, topic)

    def snapshot_sent(self, topic: str) -> None:
        self._snapshotting.discard(topic)

    def offer(
        self,
        key: tuple[str, str],
        frame: Frame,
        received: float,
        prepared: PreparedFrame | None = None,
    ) -> None:
        """Queue a frame (`prepared`: already encoded); an update not newer than what the
        socket has is dropped."""
        seq = _seq_of(frame)
        queued = self._pending.get(key)
        queued_seq = _seq_of(queued[0]) if queued else None
        if frame["type"] == "update" and seq is not None:
            if seq <= max(
                self._sent_seq.get(key, -1), queued_seq if queued_seq is not None else -1
            ):
                return
            if key[0] in self._snapshotting or (queued and queued[0]["type"] == "snapshot"):
                frame, prepared = {**frame, "type": "snapshot"}, None  # still the topic's first
        elif frame["type"] == "snapshot":
            if seq is not None and seq <= self._sent_seq.get(key, -1):
                return  # an update overtook the read and went out as the snapshot
            if queued and _newer(queued_seq, seq):
                frame, prepared = {**queued[0], "type": "snapshot"}, None  # overtaken
        raw = self._raw
        if (
            raw is not None
            and queued is None
            and not self._pending
            and not self._writing
            and not self.closed.is_set()
            and raw.writable()
        ):
            # nothing ahead of it and room in the buffer: written now, in order
            self._write_raw(raw, key, frame, received, prepared)
            return
        if queued is not None:
            WS_COALESCED.inc()
        self._pending[key] = (frame, received, prepared)
        self._pending.move_to_end(key)
        if len(self._pending) > self.limit:
            WS_DISCONNECTED_SLOW.inc()
            self.fail(1013, "client too slow")
            return
        if self._wakeup is not None:
            self._wakeup.set()
        elif raw is not None and (self._drainer is None or self._drainer.done()):
            # a task per socket only while its buffer is full, none the rest of the time
            self._drainer = asyncio.get_running_loop().create_task(self._drain_raw(raw))

    def _write_raw(
        self,
        raw: RawSocket,
        key: tuple[str, str],
        frame: Frame,
        received: float,
        prepared: PreparedFrame | None,
    ) -> None:
        seq = _seq_of(frame)
        if seq is not None:
            self._sent_seq[key] = max(seq, self._sent_seq.get(key, -1))
        if not raw.write(prepared or PreparedFrame(_encode(frame))):
            return  # closing: the reader sees the disconnect
        _frames_of(frame["type"]).inc()
        if received:
            PUSH_LATENCY.observe(asyncio.get_running_loop().time() - received)

    def fail(self, code: int, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = (code, reason)
        self.closed.set()
        if self._wakeup is not None:
            self._wakeup.set()
        if self.on_fail is not None:
            self.on_fail()

    async def run_writer(self) -> None:
        """Sends what queues, through ASGI; with a raw transport there is nothing to do
        here (see `_drain_raw`), this waits for the socket to close."""
        wakeup = self._wakeup
        if wakeup is None:
            await self.closed.wait()
            return
        loop = asyncio.get_running_loop()
        while not self.closed.is_set():
            await wakeup.wait()
            wakeup.clear()
            while self._pending and not self.closed.is_set():
                key, (frame, received, prepared) = self._pending.popitem(last=False)
                seq = _seq_of(frame)
                if seq is not None:
                    self._sent_seq[key] = max(seq, self._sent_seq.get(key, -1))
                try:
                    self._writing = True
                    async with asyncio.timeout(self.stall_timeout_s):
                        await self._send(prepared.text if prepared else _encode(frame))
                except TimeoutError:
                    WS_DISCONNECTED_SLOW.inc()
                    self.fail(1013, "client too slow")
                    return
                finally:
                    self._writing = False
                _frames_of(frame["type"]).inc()
                if received:
                    PUSH_LATENCY.observe(loop.time() - received)

    async def _drain_raw(self, raw: RawSocket) -> None:
        """What queued while the transport's buffer was full, written once it drains;
        a frame is taken off the queue only when it can be written at once."""
        while self._pending and not self.closed.is_set():
            if not raw.writable():
                self._writing = True  # the dispatch must not write past the queue
                try:
                    async with asyncio.timeout(self.stall_timeout_s):
                        await raw.wait_writable()
                except TimeoutError:
                    WS_DISCONNECTED_SLOW.inc()
                    self.fail(1013, "client too slow")
                    return
                finally:
                    self._writing = False
                continue
            key, (frame, received, prepared) = self._pending.popitem(last=False)
            self._write_raw(raw, key, frame, received, prepared)

    def stop(self) -> None:
        """The socket's handler is done: nothing more is written."""
        self.closed.set()
        if self._drainer is not None:
            self._drainer.cancel()

    def send_now(self, frame: Frame) -> None:
        """Control frames (pong, error) jump no queue but share the writer."""
        self.offer(("ctl", str(id(frame))), frame, 0.0)


def _frames_of(kind: str) -> Any:
    """The frame counter's child for `kind`, looked up once for the usual kinds."""
    return _FRAMES.get(kind) or WS_FRAMES.labels(kind)


def _newer(a: int | None, b: int | None) -> bool:
    return a is not None and b is not None and a > b


def _seq_of(frame: Frame) -> int | None:
    job = frame.get("job")
    return int(job["seq"]) if isinstance(job, dict) and "seq" in job else None


def _encode(frame: Frame) -> str:
    return orjson.dumps(frame).decode()


class Hub:
    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self._by_topic: dict[str, set[Connection]] = {}
        self._notified: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, connection: Connection) -> None:
        self.connections.add(connection)
        connection._hub = self
        for topic in connection.topics:
            self.listen(connection, topic)
        WS_CONNECTIONS.set(len(self.connections))

    def remove(self, connection: Connection) -> None:
        self.connections.discard(connection)
        connection._hub = None
        for topic in connection.topics:
            self.stop_listening(connection, topic)
        WS_CONNECTIONS.set(len(self.connections))

    def listen(self, connection: Connection, topic: str) -> None:
        self._by_topic.setdefault(topic, set()).add(connection)

    def stop_listening(self, connection: Connection, topic: str) -> None:
        listeners = self._by_topic.get(topic)
        if listeners is not None:
            listeners.discard(connection)
            if not listeners:
                del self._by_topic[topic]

    def dispatch(self, job: dict[str, Any]) -> None:
        """Offer one progress document to every socket that may see it and listens."""
        with _tracer.start_as_current_span("ws.push", attributes={"jauge.job_id": str(job["id"])}):
            self._dispatch(job)

    def _dispatch(self, job: dict[str, Any]) -> None:
        received = asyncio.get_running_loop().time()
        job_id, owner = str(job["id"]), job.get("owner")
        for topic in (JOB_TOPIC_PREFIX + job_id, JOBS_TOPIC):
            listeners = self._by_topic.get(topic)
            if not listeners:
                continue
            frame = {"type": "update", "topic": topic, "job": job}
            prepared = PreparedFrame(_encode(frame))
            key = (topic, job_id)
            for connection in listeners:
                if connection.user.may_see(owner):
                    connection.offer(key, frame, received, prepared)

    def notify(self, owner: str, notification: dict[str, Any]) -> None:
        """One new notification to its owner's sockets that listen to `notifications`,
        once: a redelivered request, or a failure's snapshot published again, has the
        same id and is not pushed again (the bell also keeps one per id)."""
        key = (owner, str(notification["id"]))
        if key in self._notified:
            return
        self._notified[key] = None
        if len(self._notified) > RECENT_NOTIFICATIONS:
            self._notified.popitem(last=False)
        listeners = self._by_topic.get(NOTIFICATIONS_TOPIC)
        if not listeners:
            return
        frame = {"type": "notification", "topic": NOTIFICATIONS_TOPIC, "notification": notification}
        prepared = PreparedFrame(_encode(frame))
        key = (NOTIFICATIONS_TOPIC, str(notification["id"]))
        for connection in listeners:
            if connection.user.username == owner:
                connection.offer(key, frame, 0.0, prepared)

    async def close_all(self) -> None:
        for connection in list(self.connections):
            connection.fail(1001, "server shutting down")
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
