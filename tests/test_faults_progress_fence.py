"""A progress-svc replica frozen in the middle of a write, woken after another took
over, writes nothing over the newer document (issue 14, point 7).

Single active consumer decides who receives, not who writes. Replica A is frozen
(SIGSTOP, by a fault point) right before it writes the third version of an import's
document; the broker, hearing no heartbeat, hands the queue to replica B, which applies
A's unacknowledged events again and every later one, to the end of the import. Then A
is woken (SIGCONT) and its write goes out, computed from version 2: the `seq` guard
refuses it, on MongoDB and on FerretDB alike, and the document stays the one a run
without any fault gives.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from test_reliability_duplicates import differences, import_events, publish, settled

pytestmark = pytest.mark.system

JOB = "imp-fence"


def process_state(pid: int) -> str:
    """R, S, T (stopped)...: the third field of /proc/<pid>/stat."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


async def until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_a_replica_frozen_mid_write_cannot_overwrite_its_successor(
    make_stack: Any, test_env: Any
) -> None:
    stack = make_stack(JAUGE_HEARTBEAT_S="1")
    frozen = stack.start(
        "progress-svc", extra_env={"JAUGE_FAULT_POINTS": f"progress.before_write:{JOB}@3=stop"}
    )
    stack.wait_ready()
    successor = stack.start("progress-svc")  # the standby: starts consuming second
    stack.wait_ready()
    events = import_events(JOB)
    reference_events = import_events("imp-reference")

    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        try:
            # one at a time, so that the third version is a write of its own
            for event in events[:3]:
                await publish(channel, [event])
                await asyncio.sleep(0.3)
            await until(lambda: process_state(frozen.process.pid) == "T", 30, "A never froze")
            # the broker hands the queue over once A's heartbeats stop; B applies the rest
            await publish(channel, events[3:])
            with test_env.mongo() as client:
                progress = client[f"{test_env.db_prefix}_progress"]["progress"]
                await until(
                    lambda: (progress.find_one({"_id": JOB}) or {}).get("status") == "completed",
                    60,
                    "B never finished the import",
                )
                finished = progress.find_one({"_id": JOB})
            frozen.process.send_signal(signal.SIGCONT)
            await asyncio.sleep(3)  # A's write, computed from version 2, goes out now
            assert process_state(frozen.process.pid) != "T"
            assert successor.process.poll() is None
            after = (await settled(channel, test_env, [JOB]))[JOB]
            await publish(channel, reference_events)
            reference = (await settled(channel, test_env, ["imp-reference"]))["imp-reference"]
        finally:
            if frozen.process.poll() is None:
                frozen.process.send_signal(signal.SIGCONT)

    assert finished is not None
    assert after["seq"] == finished["seq"], (after["seq"], finished["seq"])
    assert not differences(reference, after), differences(reference, after)
