"""Notifications and productivity counters on the real store (FerretDB or MongoDB):
idempotent on redelivery, bounded, read by `_id` only, owner only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from gateway.hub import NOTIFICATIONS_TOPIC, Connection, Hub
from gateway.notifications import NotificationStore, from_failure, from_request
from gateway.productivity import Productivity, agent_key, agent_name
from gateway.users import Role, User
from jauge_shared.contracts import ColisStepChanged, NotificationRequested
from jauge_shared.contracts.colis import ColisOperation, TaskStatus

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(servers: Any) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(servers.mongo_url, tz_aware=True)
    name = f"told_{uuid.uuid4().hex[:10]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def request(user: str = "alice", message: str = "Colis C1 enregistré.") -> NotificationRequested:
    return NotificationRequested(producer="colis-svc", job_id="t1", user_id=user, message=message)


async def test_a_redelivered_notification_is_kept_once_and_only_its_owner_sees_it(db) -> None:
    store = NotificationStore(db["notifications"])
    event = request()
    assert await store.add("alice", from_request(event)) is True
    assert await store.add("alice", from_request(event)) is False  # redelivery
    page = await store.page("alice", None, 20)
    assert [n["message"] for n in page.items] == ["Colis C1 enregistré."]
    assert page.unread == 1
    assert (await store.page("bob", None, 20)).items == []
    notification_id = page.items[0]["id"]
    assert await store.mark_read("bob", notification_id) is False
    assert await store.mark_read("alice", notification_id) is True
    assert (await store.page("alice", None, 20)).unread == 0


async def test_pages_follow_the_cursor_and_the_inbox_is_bounded(db) -> None:
    store = NotificationStore(db["notifications"], limit=5)
    for n in range(7):
        await store.add("alice", from_request(request(message=f"m{n}")))
    first = await store.page("alice", None, 3)
    assert [n["message"] for n in first.items] == ["m6", "m5", "m4"]
    assert first.next_cursor is not None
    second = await store.page("alice", first.next_cursor, 3)
    assert [n["message"] for n in second.items] == ["m3", "m2"]  # m1, m0 let go
    assert second.next_cursor is None


async def test_concurrent_adds_and_reads_lose_nothing(db) -> None:
    store = NotificationStore(db["notifications"])
    await store.add("alice", from_request(request(message="first")))
    first = (await store.page("alice", None, 1)).items[0]["id"]
    await asyncio.gather(
        *(store.add("alice", from_request(request(message=f"m{n}"))) for n in range(8)),
        store.mark_read("alice", first),
    )
    page = await store.page("alice", None, 50)
    assert len(page.items) == 9
    assert page.unread == 8


def test_only_a_failed_document_is_a_notification_one_per_attempt() -> None:
    job = {"id": "t9", "kind": "colis.create", "owner": "alice", "title": "Colis pour Dupont"}
    assert from_failure({**job, "status": "running"}) is None
    failed = from_failure({**job, "status": "failed", "message": "Poids invalide"})
    assert failed is not None
    assert failed["message"] == "La tâche « Colis pour Dupont » a échoué : Poids invalide"
    again = from_failure({**job, "status": "failed", "retry_count": 1})
    assert again is not None and again["id"] != failed["id"]
    edi = from_failure({"id": "j1", "kind": "import.edi", "owner": "a", "status": "failed"})
    assert edi is not None and edi["link"] == "/imports/j1"


async def test_the_hub_tells_only_the_owners_sockets_that_listen() -> None:
    sent: dict[str, list[str]] = {"alice": [], "bob": [], "root": []}
    hub = Hub()
    for name, role in (("alice", Role.AGENT), ("bob", Role.AGENT), ("root", Role.ADMIN)):

        async def send(text: str, name: str = name) -> None:
            sent[name].append(text)

        connection = Connection(User(name, role), send, limit=10, stall_timeout_s=1)
        hub.add(connection)
        connection.subscribe(NOTIFICATIONS_TOPIC)
        connection.snapshot_sent(NOTIFICATIONS_TOPIC)
        asyncio.get_running_loop().create_task(connection.run_writer())
    hub.notify("alice", {"id": "n1", "message": "x"})
    hub.notify("alice", {"id": "n1", "message": "x"})  # a redelivery: pushed once
    await asyncio.sleep(0.05)
    assert len(sent["alice"]) == 1 and '"type":"notification"' in sent["alice"][0]
    assert sent["bob"] == [] and sent["root"] == []
    await hub.close_all()


def step(seq: int, status: TaskStatus, seconds: float, **fields: Any) -> ColisStepChanged:
    return ColisStepChanged(
        producer="colis-svc",
        job_id=fields.get("task_id", "t1"),
        task_id=fields.get("task_id", "t1"),
        user_id=fields.get("user", "alice"),
        lot_id="l1",
        operation=fields.get("operation", ColisOperation.CREATE),
        status=status,
        step=status.value,
        percent=0,
        seq=seq,
        occurred_at=T0 + timedelta(seconds=seconds),
    )


async def test_counters_by_deltas_redeliveries_and_late_steps_change_nothing(db) -> None:
    counters = Productivity(db)
    walk = [
        step(0, TaskStatus.PENDING, 0),
        step(1, TaskStatus.VALIDATION, 2),
        step(2, TaskStatus.CREATION, 3),
        step(3, TaskStatus.COMPLETED, 7),
    ]
    for event in walk:
        assert await counters.apply(event) is True
    for event in walk:  # every one redelivered
        assert await counters.apply(event) is False
    # a second parcel by bob, and an update (no parcel counted)
    for event in (
        step(0, TaskStatus.PENDING, 10, task_id="t2", user="bob"),
        step(1, TaskStatus.COMPLETED, 14, task_id="t2", user="bob"),
        step(0, TaskStatus.PENDING, 20, task_id="t3", operation=ColisOperation.UPDATE),
        step(1, TaskStatus.COMPLETED, 21, task_id="t3", operation=ColisOperation.UPDATE),
    ):
        await counters.apply(event)
    figures = await counters.figures("today", "alice", T0 + timedelta(hours=1))
    (alice,) = figures["agents"]
    assert alice["agent"] == "alice" and alice["parcels"] == 1 and alice["hours"] == 1
    steps = {s["step"]: (s["count"], s["avg_s"]) for s in alice["steps"]}
    assert steps == {"pending": (2, 1.5), "validation": (1, 1.0), "creation": (1, 4.0)}
    assert {"label": "09h", "parcels": 1} in figures["chart"]
    everyone = await counters.figures("30d", None, T0 + timedelta(days=3))
    assert [a["agent"] for a in everyone["agents"]] == ["alice", "bob"]
    assert everyone["total"]["parcels"] == 2 and everyone["total"]["parcels_per_hour"] == 1.0
    assert len(everyone["chart"]) == 30 and everyone["chart"][-4]["parcels"] == 2


def test_agent_names_survive_as_field_names() -> None:
    for name in ("jean.dupont", "a$b", "x%2Ey"):
        key = agent_key(name)
        assert "." not in key and "$" not in key
        assert agent_name(key) == name


async def test_steps_handled_at_once_are_applied_in_their_order(db) -> None:
    # the subscriber handles several messages at once: a task's next step must wait
    counters = Productivity(db)
    walk = [
        step(0, TaskStatus.PENDING, 0),
        step(1, TaskStatus.VALIDATION, 2),
        step(2, TaskStatus.CREATION, 4),
        step(3, TaskStatus.COMPLETED, 6),
    ]
    assert await asyncio.gather(*(counters.apply(e) for e in walk)) == [True] * 4
    (alice,) = (await counters.figures("today", None, T0))["agents"]
    assert [(s["step"], s["avg_s"]) for s in alice["steps"]] == [
        ("pending", 2.0),
        ("validation", 2.0),
        ("creation", 2.0),
    ]


async def test_the_first_steps_of_a_new_day_counted_at_once_all_count(db) -> None:
    # tasks of one day seen at the same instant by the two halves of one upsert: on
    # FerretDB both find no day and both insert; the loser's count must not be lost
    # (it was a DuplicateKeyError, a dead letter, in the network fault test)
    counters = Productivity(db)
    tasks = [f"t{n}" for n in range(12)]
    await asyncio.gather(
        *(counters.apply(step(0, TaskStatus.PENDING, 0, task_id=t)) for t in tasks)
    )
    finished = [step(1, TaskStatus.COMPLETED, 3, task_id=t) for t in tasks]
    assert await asyncio.gather(*(counters.apply(e) for e in finished)) == [True] * len(tasks)
    (alice,) = (await counters.figures("today", None, T0))["agents"]
    assert alice["parcels"] == len(tasks)
    assert [(s["step"], s["count"]) for s in alice["steps"]] == [("pending", len(tasks))]


async def test_clocks_of_tasks_finished_a_week_ago_are_forgotten_the_others_kept(db) -> None:
    counters = Productivity(db)
    for event in (
        step(0, TaskStatus.PENDING, 0),
        step(1, TaskStatus.COMPLETED, 5),  # t1: finished
        step(0, TaskStatus.PENDING, 0, task_id="t2"),
        step(1, TaskStatus.FAILED_FINAL, 5, task_id="t2"),  # t2: finished, retried later
        step(2, TaskStatus.PENDING, 8, task_id="t2"),
        step(0, TaskStatus.PENDING, 0, task_id="t3"),  # t3: still running
    ):
        assert await counters.apply(event) is True
    clocks = {doc["_id"] async for doc in counters.clocks.find({})}
    assert clocks == {"t1", "t2", "t3"}
    assert await counters.forget_closed(T0 + timedelta(days=6)) == 0  # too soon
    assert await counters.forget_closed(T0 + timedelta(days=8)) == 2
    # t1 forgotten; t2 runs again, so its clock stays (listed again when it finishes)
    assert {doc["_id"] async for doc in counters.clocks.find({})} == {"t2", "t3"}
    assert await counters.closed.count_documents({}) == 0
    assert await counters.forget_closed(T0 + timedelta(days=8)) == 0
    # the counters themselves are kept
    (alice,) = (await counters.figures("30d", None, T0 + timedelta(days=8)))["agents"]
    assert alice["parcels"] == 1
