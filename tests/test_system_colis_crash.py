"""A colis-svc worker dies or hangs mid-pipeline: the task still completes, once.

- killed (SIGKILL) at the price step: RabbitMQ redelivers the unacked command to the next
  replica, which resumes the task at the step it had reached;
- hung (SIGSTOP) at the creation step: another replica's sweeper finds the task active
  past the time limit, reports it (`colis.task_stalled`) and requeues it.

Either way exactly one parcel exists, with one tracking number.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from stack import add_user
from system_colis_support import FAST, FORM, Api, expected_price, photo_bytes

pytestmark = pytest.mark.system


def parcels_of(test_env, task_id: str) -> list[dict]:
    with test_env.mongo() as client:
        return list(client[f"{test_env.db_prefix}_colis"]["colis"].find({"task_id": task_id}))


def worker_pid(test_env, task_id: str) -> int | None:
    with test_env.mongo() as client:
        doc = client[f"{test_env.db_prefix}_colis"]["tasks"].find_one({"_id": task_id})
    worker = (doc or {}).get("worker") or ""
    return int(worker.rsplit(":", 1)[1]) if ":" in worker else None


async def test_a_worker_killed_or_hung_mid_pipeline_never_duplicates_a_parcel(
    make_stack, test_env
) -> None:
    stack = make_stack(**FAST, JAUGE_TEST_HOOKS="true")
    first = [stack.start("progress-svc"), stack.start("colis-svc"), stack.start("gateway")]
    stack.wait_ready(first, timeout_s=120)
    add_user(test_env.env(), "alice", "agent", "alice-password")
    gateway = stack.service("gateway").url
    alice = await Api.as_user(gateway, "alice")
    try:
        lot = await alice.lot("express")
        form = {**FORM, "type_transport": "express", "description": "[test:delay=1.0]"}
        task_id = (await alice.create_colis(lot["id"], form, photo_bytes(800, 600))).json()[
            "task_id"
        ]
        await alice.wait(task_id, lambda t: t["step_status"] == "price_calculating")
        assert len(parcels_of(test_env, task_id)) == 1  # made before the crash
        stack.stop(first[1], signal.SIGKILL)

        # the next replica gets the unacked command again and resumes the task
        second = stack.start(
            "colis-svc", extra_env={"JAUGE_PREFETCH": "1", "JAUGE_TASK_TIME_LIMIT_S": "8"}
        )
        stack.wait_ready([second], timeout_s=120)
        task = await alice.wait(task_id, timeout_s=120)
        assert task["step_status"] == "completed", task
        parcels = parcels_of(test_env, task_id)
        assert len(parcels) == 1 and parcels[0]["prix"] == expected_price(form)
        assert parcels[0]["numero_suivi"] == task["numero_suivi"]

        # a worker that hangs: the sweeper of another replica requeues its task
        form = {**FORM, "description": "[test:delay=0.3]"}
        hung_id = (await alice.create_colis(lot["id"], form)).json()["task_id"]
        await alice.wait(hung_id, lambda t: t["step_status"] == "creation")
        assert worker_pid(test_env, hung_id) == second.process.pid
        os.kill(second.process.pid, signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            third = stack.start(
                "colis-svc",
                extra_env={"JAUGE_TASK_TIME_LIMIT_S": "8", "JAUGE_SWEEPER_INTERVAL_S": "0.5"},
            )
            stack.wait_ready([third], timeout_s=120)
            task = await alice.wait(hung_id, timeout_s=120)
            assert task["step_status"] == "completed", task
            assert time.monotonic() - stopped_at > 3  # only after the time limit
            assert any("bloquée" in (e["error"] or "") for e in task["errors"]), task
            assert worker_pid(test_env, hung_id) == third.process.pid
            assert len(parcels_of(test_env, hung_id)) == 1
        finally:
            stack.stop(second, signal.SIGKILL)  # a stopped process dies of SIGKILL too
    finally:
        await alice.close()
