"""The hub's per-socket queue: coalescing, seq order, bounded, isolation."""

from __future__ import annotations

import asyncio
import json

from gateway.hub import Connection, Hub
from gateway.users import Role, User
from gateway.wire import PreparedFrame, RawSocket

ALICE = User("alice", Role.AGENT)
BOB = User("bob", Role.AGENT)
ADMIN = User("root", Role.ADMIN)


def job(seq: int, owner: str = "alice", job_id: str = "j1") -> dict:
    return {"id": job_id, "owner": owner, "seq": seq, "status": "running"}


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.frames: list[dict] = []
        self.delay = delay

    async def send(self, text: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.frames.append(json.loads(text))


async def test_a_slow_socket_gets_the_newest_state_not_every_state() -> None:
    recorder = Recorder(delay=0.05)
    connection = Connection(ALICE, recorder.send, limit=10, stall_timeout_s=5)
    connection.topics.add("job:j1")
    hub = Hub()
    hub.add(connection)
    writer = asyncio.create_task(connection.run_writer())
    for seq in range(1, 51):
        hub.dispatch(job(seq))
    await asyncio.sleep(0.3)
    writer.cancel()
    seqs = [f["job"]["seq"] for f in recorder.frames]
    assert seqs[-1] == 50
    assert seqs == sorted(seqs)
    assert len(seqs) < 10


async def test_older_states_are_never_sent_after_newer_ones() -> None:
    recorder = Recorder()
    connection = Connection(ALICE, recorder.send, limit=10, stall_timeout_s=5)
    connection.topics.add("job:j1")
    hub = Hub()
    hub.add(connection)
    writer = asyncio.create_task(connection.run_writer())
    for seq in (3, 1, 5, 4, 2, 6):
        hub.dispatch(job(seq))
        await asyncio.sleep(0.01)
    writer.cancel()
    seqs = [f["job"]["seq"] for f in recorder.frames]
    assert seqs == sorted(seqs)
    assert seqs[-1] == 6


async def test_updates_reach_only_those_who_may_see_them() -> None:
    sockets = {}
    hub = Hub()
    for user in (ALICE, BOB, ADMIN):
        recorder = Recorder()
        connection = Connection(user, recorder.send, limit=10, stall_timeout_s=5)
        connection.topics.add("jobs")
        hub.add(connection)
        sockets[user.username] = (
            connection,
            recorder,
            asyncio.create_task(connection.run_writer()),
        )
    hub.dispatch(job(1, owner="alice"))
    await asyncio.sleep(0.05)
    assert len(sockets["alice"][1].frames) == 1
    assert len(sockets["root"][1].frames) == 1
    assert sockets["bob"][1].frames == []
    for _, _, writer in sockets.values():
        writer.cancel()


async def test_a_socket_that_falls_too_far_behind_is_closed() -> None:
    blocked = asyncio.Event()

    async def never(text: str) -> None:
        await blocked.wait()

    connection = Connection(ADMIN, never, limit=5, stall_timeout_s=0.2)
    connection.topics.add("jobs")
    hub = Hub()
    hub.add(connection)
    writer = asyncio.create_task(connection.run_writer())
    hub.dispatch(job(1, job_id="a"))
    await asyncio.sleep(0.4)
    assert connection.closed.is_set()
    assert connection.close_reason == (1013, "client too slow")
    writer.cancel()


async def test_the_snapshot_stays_first_even_when_an_update_overtakes_it() -> None:
    recorder = Recorder()
    connection = Connection(ALICE, recorder.send, limit=10, stall_timeout_s=5)
    connection.topics.add("job:j1")
    connection.offer(("job:j1", "j1"), {"type": "update", "topic": "job:j1", "job": job(7)}, 0.0)
    connection.offer(("job:j1", "j1"), {"type": "snapshot", "topic": "job:j1", "job": job(6)}, 0.0)
    writer = asyncio.create_task(connection.run_writer())
    await asyncio.sleep(0.05)
    writer.cancel()
    assert [(f["type"], f["job"]["seq"]) for f in recorder.frames] == [("snapshot", 7)]


async def test_an_update_that_overtakes_the_snapshot_read_goes_out_as_the_snapshot() -> None:
    recorder = Recorder()
    connection = Connection(ALICE, recorder.send, limit=10, stall_timeout_s=5)
    connection.subscribe("jobs")
    writer = asyncio.create_task(connection.run_writer())
    connection.offer(("jobs", "j1"), {"type": "update", "topic": "jobs", "job": job(8)}, 0.0)
    await asyncio.sleep(0.02)  # the update is out before the snapshot's read returns
    for stale in (8, 7):
        connection.offer(
            ("jobs", "j1"), {"type": "snapshot", "topic": "jobs", "job": job(stale)}, 0.0
        )
    connection.snapshot_sent("jobs")
    connection.offer(("jobs", "j1"), {"type": "update", "topic": "jobs", "job": job(9)}, 0.0)
    await asyncio.sleep(0.02)
    writer.cancel()
    assert [(f["type"], f["job"]["seq"]) for f in recorder.frames] == [
        ("snapshot", 8),
        ("update", 9),
    ]


async def test_subscriptions_follow_subscribe_unsubscribe_and_leave_nothing_behind() -> None:
    recorder = Recorder()
    connection = Connection(ALICE, recorder.send, limit=10, stall_timeout_s=5)
    hub = Hub()
    hub.add(connection)
    connection.subscribe("job:j1")
    connection.snapshot_sent("job:j1")
    writer = asyncio.create_task(connection.run_writer())
    hub.dispatch(job(1))
    hub.dispatch(job(1, job_id="j2"))
    await asyncio.sleep(0.02)
    connection.unsubscribe("job:j1")
    hub.dispatch(job(2))
    connection.subscribe("job:j2")
    connection.snapshot_sent("job:j2")
    hub.dispatch(job(2, job_id="j2"))
    await asyncio.sleep(0.02)
    writer.cancel()
    assert [(f["job"]["id"], f["job"]["seq"]) for f in recorder.frames] == [("j1", 1), ("j2", 2)]
    hub.remove(connection)
    hub.dispatch(job(3, job_id="j2"))
    assert hub._by_topic == {} and hub.connections == set()


class FakeRaw(RawSocket):
    """A transport whose buffer is full until `room` is set (`gateway.wire.RawSocket`)."""

    open = True  # type: ignore[assignment]

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.room = asyncio.Event()
        self.room.set()
        self.texts: dict[str, int] = {}

    def writable(self) -> bool:
        return self.room.is_set()

    async def wait_writable(self) -> None:
        await self.room.wait()

    def write(self, frame: PreparedFrame) -> bool:
        self.frames.append(json.loads(frame.text))
        self.texts[str(id(frame))] = self.texts.get(str(id(frame)), 0) + 1
        return True


def raw_connection(user: User = ALICE, *, stall_timeout_s: float = 5) -> tuple[Connection, FakeRaw]:
    raw = FakeRaw()

    async def unused(text: str) -> None:
        raise AssertionError("a socket with a raw transport is not sent to through ASGI")

    return Connection(user, unused, limit=10, stall_timeout_s=stall_timeout_s, raw=raw), raw


async def test_with_room_in_the_buffer_a_frame_is_written_from_the_dispatch_itself() -> None:
    hub = Hub()
    sockets = [raw_connection() for _ in range(3)]
    for connection, _ in sockets:
        connection.topics.add("job:j1")
        hub.add(connection)
    hub.dispatch(job(1))  # no writer task running: nothing waits for one
    assert [[f["job"]["seq"] for f in raw.frames] for _, raw in sockets] == [[1], [1], [1]]
    # one PreparedFrame for the three sockets: encoded (and compressed) once
    assert len({key for _, raw in sockets for key in raw.texts}) == 1


async def test_a_socket_with_a_full_buffer_gets_the_newest_state_of_each_job_in_order() -> None:
    hub = Hub()
    slow, slow_raw = raw_connection(ADMIN)
    quick, quick_raw = raw_connection(ADMIN)
    for connection in (slow, quick):
        connection.topics.add("jobs")
        hub.add(connection)
    writer = asyncio.create_task(slow.run_writer())
    slow_raw.room.clear()
    for seq in range(1, 31):
        hub.dispatch(job(seq, job_id="a"))
        hub.dispatch(job(seq, job_id="b"))
    assert slow_raw.frames == [] and len(quick_raw.frames) == 60  # the slow one holds no one
    slow_raw.room.set()
    await asyncio.sleep(0.02)
    hub.dispatch(job(31, job_id="a"))
    await asyncio.sleep(0.02)
    writer.cancel()
    assert [(f["job"]["id"], f["job"]["seq"]) for f in slow_raw.frames] == [
        ("a", 30),
        ("b", 30),
        ("a", 31),
    ]


async def test_a_frame_offered_while_the_queue_drains_goes_behind_it() -> None:
    hub = Hub()
    connection, raw = raw_connection()
    connection.topics.add("job:j1")
    hub.add(connection)
    writer = asyncio.create_task(connection.run_writer())
    raw.room.clear()
    hub.dispatch(job(1))
    await asyncio.sleep(0.01)  # the writer waits for room, the queue holds seq 1
    hub.dispatch(job(2))
    raw.room.set()
    await asyncio.sleep(0.01)
    writer.cancel()
    assert [f["job"]["seq"] for f in raw.frames] == [2]


async def test_a_raw_socket_whose_buffer_never_drains_is_closed() -> None:
    connection, raw = raw_connection(stall_timeout_s=0.1)
    connection.topics.add("job:j1")
    hub = Hub()
    hub.add(connection)
    writer = asyncio.create_task(connection.run_writer())
    raw.room.clear()
    hub.dispatch(job(1))
    await asyncio.wait_for(connection.closed.wait(), 2)
    assert connection.close_reason == (1013, "client too slow")
    await writer
