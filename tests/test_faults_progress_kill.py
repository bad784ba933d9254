"""progress-svc SIGKILLed again and again, at random instants, with two replicas running
(reliability issue, point 2; DESIGN.md: "killing progress-svc at any instant loses no
update").

A steady stream of events (imports and parcel tasks, every event delivered twice) is
published while one of the two replicas, picked at random, is SIGKILLed every 1–2.5 s
and a new one started in its place: the kills land wherever the work is (reading,
inside a group commit, between the write and its announcement, between the
announcement and the acks). The standby takes over the queue (single active consumer)
and the killed replica's unacked events come back to it. Every document must end as the
same work gives without any kill, and nothing may be dead-lettered.
"""

from __future__ import annotations

import asyncio
import random
import signal
from typing import Any

import aio_pika
import pytest
from stack import Running, Stack
from test_reliability_duplicates import clean_run, differences, publish, settled

from jauge_shared.contracts import Event
from jauge_shared.topology import PROGRESS_EVENTS

pytestmark = pytest.mark.system

RUNS = 12
KILLS = 6


def stream(rng: random.Random) -> tuple[list[Event], list[list[str]]]:
    """The runs interleaved (each in its own order), every event followed by its copy
    a few places later: what a producer's redelivery looks like."""
    runs = [clean_run(f"k{n}") for n in range(RUNS)]
    pending = [list(events) for events, _ in runs]
    merged: list[Event] = []
    while any(pending):
        run = rng.choice([p for p in pending if p])
        merged.append(run.pop(0))
    twice: list[Event] = []
    copies: list[tuple[int, Event]] = []  # (index of the original it follows, copy)
    for index, event in enumerate(merged):
        twice.append(event)
        copies.append((index + rng.randint(0, 5), event))
        twice += [copy for after, copy in copies if after == index]
        copies = [(after, copy) for after, copy in copies if after != index]
    twice += [copy for _, copy in copies]
    return twice, [jobs for _, jobs in runs]


async def publish_paced(channel: Any, events: list[Event], per_second: float) -> None:
    for start in range(0, len(events), 10):
        await publish(channel, events[start : start + 10])
        await asyncio.sleep(10 / per_second)


async def kill_again_and_again(stack: Stack, rng: random.Random) -> int:
    kills = 0
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(1.0, 2.5))
        replicas: list[Running] = [r for r in stack.running if r.spec.name == "progress-svc"]
        victim = rng.choice(replicas)
        code = await asyncio.to_thread(stack.stop, victim, signal.SIGKILL)
        assert code == -signal.SIGKILL, code
        kills += 1
        stack.start("progress-svc")
    return kills


async def test_progress_svc_killed_again_and_again_loses_no_update(
    make_stack: Any, test_env: Any
) -> None:
    stack = make_stack()
    stack.start("progress-svc")
    stack.start("progress-svc")
    stack.wait_ready()
    rng = random.Random(20261201)
    events, jobs_per_run = stream(rng)
    reference_events, reference_jobs = clean_run("ref")

    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        kills, _ = await asyncio.gather(
            kill_again_and_again(stack, rng),
            publish_paced(channel, events, per_second=len(events) / 12),
        )
        assert kills == KILLS
        await asyncio.to_thread(stack.wait_ready, None, 120)
        killed = {}
        for jobs in jobs_per_run:
            killed.update(await settled(channel, test_env, jobs))
        # the same work, without kills, for comparison
        await publish(channel, reference_events)
        reference = await settled(channel, test_env, reference_jobs)

        dlq = await channel.declare_queue(PROGRESS_EVENTS.dlq_name, passive=True)
        assert dlq.declaration_result.message_count == 0

    for jobs in jobs_per_run:
        for job, reference_job in zip(jobs, reference_jobs, strict=True):
            different = differences(reference[reference_job], killed[job])
            assert not different, (job, different)
