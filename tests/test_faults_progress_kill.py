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
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from stack import Running, Stack
from test_reliability_duplicates import clean_run, differences, publish, settled

from jauge_shared.contracts import Event
from jauge_shared.topology import PROGRESS_EVENTS, progress_partitions

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


async def kill_again_and_again(stack: Stack, rng: random.Random, kills_wanted: int = KILLS) -> int:
    kills = 0
    for _ in range(kills_wanted):
        await asyncio.sleep(rng.uniform(1.0, 2.5))
        replicas: list[Running] = [r for r in stack.running if r.spec.name == "progress-svc"]
        victim = rng.choice(replicas)
        code = await asyncio.to_thread(stack.stop, victim, signal.SIGKILL)
        assert code == -signal.SIGKILL, code
        kills += 1
        stack.start("progress-svc")
    return kills


# In `make test-slow`, not `make test` (its 20 minutes): the partitioned test below kills
# the same way (random instants, every event twice, compared with a run without kills)
# over six partitions, and test_faults_kill kills the single queue's replica mid-load.
@pytest.mark.slow
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


PARTITIONS = 6  # a multiple of the replicas: 2/2/2 (see progress_svc.partitions)
REPLICAS = 3


def active_replicas(test_env: Any, queues: list[str]) -> dict[str, str]:
    """Each partition's active consumer, as its replica's name (`<service>@<host>:<pid>`,
    the name each connection gives itself; a replica has a connection per partition)."""
    servers = test_env.servers
    vhost = quote(test_env.vhost, safe="")
    active: dict[str, str] = {}
    with httpx.Client(base_url=servers.management_url, auth=servers.management_auth) as http:
        replica_of = {
            c["name"]: c.get("user_provided_name") or c["name"]
            for c in http.get(f"/api/vhosts/{vhost}/connections").raise_for_status().json()
        }
        for name in queues:
            url = f"/api/queues/{vhost}/{quote(name, safe='')}"
            for consumer in http.get(url).raise_for_status().json().get("consumer_details", []):
                if consumer.get("activity_status") == "single_active":
                    connection = consumer["channel_details"]["connection_name"]
                    active[name] = replica_of.get(connection, connection)
    return active


async def test_partitioned_replicas_share_the_work_and_lose_no_update_when_killed(
    make_stack: Any, test_env: Any
) -> None:
    """Three replicas over six partitions: the partitions end up spread over the
    replicas (each applies different jobs), and SIGKILLs at random instants, every
    event published twice, still end with every document as a run without kills."""
    stack = make_stack(JAUGE_PROGRESS_PARTITIONS=str(PARTITIONS), JAUGE_REBALANCE_INTERVAL_S="1")
    # one after the other: the first is then the active consumer of every partition,
    # and only the replicas' stepping back shares them out
    for _ in range(REPLICAS):
        stack.start("progress-svc")
        stack.wait_ready()
    queues = [spec.name for spec in progress_partitions(PARTITIONS)]
    rng = random.Random(20261206)
    events, jobs_per_run = stream(rng)
    reference_events, reference_jobs = clean_run("ref")

    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        # a first part under steady load, no kills: the replicas share the partitions
        first, rest = events[: len(events) // 3], events[len(events) // 3 :]
        await publish_paced(channel, first, per_second=len(events) / 12)
        spread: set[str] = set()
        for _ in range(60):
            active = await asyncio.to_thread(active_replicas, test_env, queues)
            spread = set(active.values())
            if len(active) == PARTITIONS and len(spread) == REPLICAS:
                break
            await publish(channel, clean_run(f"w{_}")[0][:4])  # keep them busy
            await asyncio.sleep(0.5)
        # 2/2/2: every replica applies its share of the jobs
        assert len(spread) == REPLICAS, f"partitions not shared out: {active}"

        kills, _ = await asyncio.gather(
            kill_again_and_again(stack, rng, KILLS),
            publish_paced(channel, rest, per_second=len(events) / 12),
        )
        assert kills == KILLS
        await asyncio.to_thread(stack.wait_ready, None, 120)
        killed = {}
        for jobs in jobs_per_run:
            killed.update(await settled(channel, test_env, jobs, tuple(queues)))
        await publish(channel, reference_events)
        reference = await settled(channel, test_env, reference_jobs, tuple(queues))

        for spec in progress_partitions(PARTITIONS):
            dlq = await channel.declare_queue(spec.dlq_name, passive=True)
            assert dlq.declaration_result.message_count == 0, spec.dlq_name
        # every partition has an active consumer again (the management API's view of
        # the consumers lags by its statistics interval, 5 s)
        for _ in range(30):
            active = await asyncio.to_thread(active_replicas, test_env, queues)
            if sorted(active) == sorted(queues):
                break
            await asyncio.sleep(1)
        assert sorted(active) == sorted(queues)

    for jobs in jobs_per_run:
        for job, reference_job in zip(jobs, reference_jobs, strict=True):
            different = differences(reference[reference_job], killed[job])
            assert not different, (job, different)
