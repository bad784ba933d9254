"""Duplicates and reordering (reliability issue, point 1), on the real progress-svc.

Two copies of the same work are published to `jauge.events`: set A once, in order, as
a clean run; set B (the same events under other job ids) with every event delivered
twice, the second copy at a random later place, and each task's `colis.step_changed`
shuffled. The progress documents of B must end as those of A.

The events are built as the producers build them: ids from `stable_event_id` as
import-svc makes them (so a redelivery carries the same id), colis steps from
colis-svc's own `TaskState` transitions, `occurred_at` fixed so both sets share it.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest

from colis_svc.domain import TaskState
from colis_svc.runs import step_event
from jauge_shared.contracts import (
    ColisOperation,
    ColisStepChanged,
    Event,
    FileImported,
    ImportCleanupStarted,
    ImportFinished,
    ImportKind,
    ImportStarted,
    ImportStatus,
    TaskStatus,
    stable_event_id,
)
from jauge_shared.contracts.imports import final_import_message
from jauge_shared.topology import EVENTS_EXCHANGE, PROGRESS_EVENTS

pytestmark = pytest.mark.system

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FILES = 40
FAILING = {3, 17, 18, 31}  # indexes of the files that fail
PATH = [
    TaskStatus.PROCESSING,
    TaskStatus.VALIDATION,
    TaskStatus.IMAGE_UPLOADING,
    TaskStatus.CREATION,
    TaskStatus.PRICE_CALCULATING,
    TaskStatus.NOTIFICATION_SENDING,
    TaskStatus.COMPLETED,
]


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


def import_events(job: str) -> list[Event]:
    started = ImportStarted(
        event_id=stable_event_id(job, "started"),
        producer="import-svc",
        job_id=job,
        kind=ImportKind.EDI,
        user_id="alice",
        title="Import des factures EDI",
        total=FILES,
        occurred_at=at(0),
    )
    files = [
        FileImported(
            event_id=stable_event_id(job, "file", f"f{i:03}.edi"),
            producer="import-svc",
            job_id=job,
            item=f"f{i:03}.edi",
            ok=i not in FAILING,
            error="Segment UNT : 12 segments annoncés, 11 trouvés" if i in FAILING else None,
            invoices=0 if i in FAILING else 2,
            occurred_at=at(1 + i),
        )
        for i in range(FILES)
    ]
    cleanup = ImportCleanupStarted(
        event_id=stable_event_id(job, "cleanup"),
        producer="import-svc",
        job_id=job,
        occurred_at=at(FILES + 1),
    )
    finished = ImportFinished(
        event_id=stable_event_id(job, "finished"),
        producer="import-svc",
        job_id=job,
        status=ImportStatus.COMPLETED,
        processed=FILES,
        failed=len(FAILING),
        message=final_import_message(FILES, len(FAILING)),
        occurred_at=at(FILES + 2),
    )
    return [started, *files, cleanup, finished]


def task_states(task: str, story: str) -> list[TaskState]:
    """The states colis-svc stores, one per `colis.step_changed`, for one story."""
    state = TaskState.new(task, ColisOperation.CREATE)
    states = [state]

    def walk(path: list[TaskStatus]) -> None:
        nonlocal state
        for status in path:
            state = state.advance(status)
            states.append(state)

    if story == "completes":
        walk(PATH)
    elif story == "retried":  # a transient failure, the automatic retry, completion
        walk(PATH[:3])
        state = state.fail_transient("Stockage des images indisponible", at(5), 1.0)
        states.append(state)
        state = state.retry()
        states.append(state)
        walk(PATH)
    elif story == "fails":  # a permanent failure
        walk(PATH[:2])
        state = state.fail_permanent("Client inconnu : cli-inconnu.")
        states.append(state)
    elif story == "cancelled":
        walk(PATH[:3])
        state = state.cancel()
        states.append(state)
    return states


def step_events(task: str, story: str) -> list[ColisStepChanged]:
    """As colis-svc emits them (its own `step_event`), dated one second per step."""
    doc = {
        "user_id": "bob",
        "lot_id": "lot-1",
        "summary": {"client": "Client démo 1", "poids": "3.5"},
    }
    return [
        step_event(doc, s).model_copy(update={"occurred_at": at(s.seq)})
        for s in task_states(task, story)
    ]


STORIES = ("completes", "retried", "fails", "cancelled")


def clean_run(suffix: str) -> tuple[list[Event], list[str]]:
    jobs = [f"imp-{suffix}", *(f"task-{story}-{suffix}" for story in STORIES)]
    events: list[Event] = [*import_events(jobs[0])]
    for story, task in zip(STORIES, jobs[1:], strict=True):
        events += step_events(task, story)
    return events, jobs


def messy_run(suffix: str, rng: random.Random) -> tuple[list[Event], list[str]]:
    """Steps shuffled per task, then every event once more at a random later place."""
    jobs = [f"imp-{suffix}", *(f"task-{story}-{suffix}" for story in STORIES)]
    events: list[Event] = [*import_events(jobs[0])]
    for story, task in zip(STORIES, jobs[1:], strict=True):
        steps = step_events(task, story)
        rng.shuffle(steps)
        events += steps
    twice = list(events)
    for index, event in enumerate(events):
        twice.insert(rng.randint(twice.index(event, index) + 1, len(twice)), event)
    return twice, jobs


async def publish(channel: aio_pika.abc.AbstractChannel, events: list[Event]) -> None:
    exchange = await channel.get_exchange(EVENTS_EXCHANGE.name)
    for event in events:
        await exchange.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                content_type="application/json",
                message_id=str(event.event_id),
                type=event.type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                # what the consistent-hash exchange partitions on (when partitioned)
                headers=event.amqp_properties()["headers"],
            ),
            routing_key=event.type,
        )


async def settled(
    channel: aio_pika.abc.AbstractChannel,
    test_env: Any,
    jobs: list[str],
    queues: tuple[str, ...] = (PROGRESS_EVENTS.name,),
) -> dict:
    """The documents once the queues are drained and they stop changing."""
    deadline = time.monotonic() + 60
    last: dict[str, Any] = {}
    with test_env.mongo() as client:
        collection = client[f"{test_env.db_prefix}_progress"]["progress"]
        while time.monotonic() < deadline:
            drained = True
            for name in queues:
                queue = await channel.declare_queue(name, passive=True)
                drained = drained and queue.declaration_result.message_count == 0
            # on FerretDB a filter other than _id scans the collection: one read per id
            docs = {job: collection.find_one({"_id": job}) for job in jobs}
            if drained and all(docs.values()) and docs == last:
                return docs
            last = docs
            await asyncio.sleep(0.5)
    raise AssertionError(f"progress documents never settled: {last}")


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """What must be the same: all but the ids, the token of the write that stored it
    (`_w`, progress_svc.repository), and the private list of seen ids (their count is
    compared). A task's `seq` counts the changes applied, and a reordered step that
    fills in the history is one more change, so it is left out for tasks."""
    view = {k: v for k, v in doc.items() if k not in ("_id", "_seen", "_w")}
    if "_seen" in doc:
        view["seen_count"] = len(doc["_seen"]) // 16  # one 16-byte UUID each
    if doc["kind"].startswith("colis."):
        view.pop("seq")
    return view


def differences(expected: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """The fields where two progress documents differ, once made `comparable`."""
    a, b = comparable(expected), comparable(found)
    return {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


async def test_every_event_twice_and_steps_out_of_order_end_as_a_clean_run(
    make_stack: Any, test_env: Any
) -> None:
    stack = make_stack()
    stack.start("progress-svc")
    stack.wait_ready()
    clean, clean_jobs = clean_run("a")
    messy, messy_jobs = messy_run("b", random.Random(20260302))
    assert len(messy) == 2 * len(clean)
    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await publish(channel, clean)
        await publish(channel, messy)
        docs_a = await settled(channel, test_env, clean_jobs)
        docs_b = await settled(channel, test_env, messy_jobs)

    imp_a, imp_b = docs_a[clean_jobs[0]], docs_b[messy_jobs[0]]
    # counted once: a duplicate counted twice would show here first
    for doc in (imp_a, imp_b):
        assert (doc["status"], doc["total"], doc["processed"]) == ("completed", FILES, FILES)
        assert doc["failed"] == len(doc["errors"]) == len(FAILING)
        assert [e["item"] for e in doc["errors"]] == [f"f{i:03}.edi" for i in sorted(FAILING)]
        newest = [f"f{i:03}.edi" for i in reversed(range(FILES))][: len(doc["recent"])]
        assert [r["item"] for r in doc["recent"]] == newest
        assert len(doc["_seen"]) == 16 * FILES  # one 16-byte UUID each
        assert doc["seq"] == FILES + 3  # started, each file, cleanup, finished
    expected_steps = {"completes": "completed", "retried": "completed"}
    expected_steps |= {"fails": "failed_final", "cancelled": "cancelled"}
    for story, job_a, job_b in zip(STORIES, clean_jobs[1:], messy_jobs[1:], strict=True):
        assert docs_a[job_a]["step_status"] == expected_steps[story]
        assert docs_b[job_b]["started_at"] == at(1), story
    assert [e["error"] for e in docs_b[messy_jobs[2]]["errors"]] == [
        "Stockage des images indisponible"
    ]
    for job_a, job_b in zip(clean_jobs, messy_jobs, strict=True):
        different = differences(docs_a[job_a], docs_b[job_b])
        assert not different, (job_b, different)
