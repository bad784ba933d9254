"""RabbitMQ stopped and restarted in the middle of load (reliability issue, point 3).

The services run on a private RabbitMQ node (tests/faults_support.py), so stopping it
touches nothing else. An EDI import of 100 files and 20 parcels are under way when the
node is stopped for about ten seconds. The test shows that:
- while the broker is away, the gateway refuses new work with a 503 and its French
  message: never a 500, never a 202 for a command it could not deliver;
- once the node is back (same data folder: durable queues and persistent messages
  survive), every service reconnects by itself: the same processes answer /readyz
  with 200 again;
- nothing confirmed is lost and nothing is done twice: the import completes with exact
  counts and every file archived once; every parcel accepted before the outage is
  created exactly once; no dead-letter queue holds anything.

There is no outbox table: a service publishes its events while it handles a message and
acks that message only once the events are confirmed, so a message whose events were
not confirmed is delivered again after the restart (its handler is idempotent). The
gateway, which has no message to fall back on, answers 503 instead of accepting.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faults_support import COLIS_UNAVAILABLE, COMMAND_NOT_DELIVERED, PrivateRabbit, start_stack
from stack import is_ready
from system_client import login
from system_colis_support import FAST, FORM
from system_colis_support import Api as ColisApi
from system_imports_support import Api as ImportApi
from system_imports_support import (
    assert_each_file_imported_once,
    edi_batch,
    write_inbox,
)

# a clean stop (`rabbitmqctl stop`) is the gentle case of test_faults_broker_kill.py's
# SIGKILL, which runs in `make test`: this one runs with the long tests
pytestmark = [pytest.mark.system, pytest.mark.slow]

FILES = 100
PARCELS = 20
OUTAGE_S = 10.0
SLOW_STEPS = "[test:delay=0.2]"


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[PrivateRabbit]:
    with PrivateRabbit(tmp_path / "rabbitmq") as node:
        yield node


async def test_broker_restart_mid_load_loses_nothing_and_the_gateway_answers_503(
    rabbit: PrivateRabbit, make_stack, test_env
) -> None:
    # `rabbit` first: set up first, stopped last, after the services
    started = time.monotonic()
    phases: dict[str, float] = {}
    env = {**test_env.env(), **FAST, "JAUGE_AMQP_URL": rabbit.url}
    stack = start_stack(make_stack, env)
    pids = {id(r): r.process.pid for r in stack.running}
    gateway = stack.service("gateway").url
    phases["ready"] = time.monotonic() - started

    batch = edi_batch(FILES, seed=3)
    write_inbox(test_env.data_dir, "edi", {name: data for name, (data, _) in batch.items()})
    store = test_env.mongo()
    import_db = store[f"{test_env.db_prefix}_import"]
    colis_db = store[f"{test_env.db_prefix}_colis"]
    importer = await ImportApi.login(gateway, "alice")
    poster = ColisApi(gateway, await login(gateway, "bob", "bob-password"))
    root = ColisApi(gateway, await login(gateway, "root", "root-password"))
    try:
        job_id = await importer.start("edi")
        lot = await poster.lot("cargo")
        forms = [
            {**FORM, "poids": f"{1 + i}.5", "description": f"Colis {i} {SLOW_STEPS}"}
            for i in range(PARCELS)
        ]
        responses = await asyncio.gather(*(poster.create_colis(lot["id"], f) for f in forms))
        assert [r.status_code for r in responses] == [202] * PARCELS, responses[0].text
        tasks = [r.json()["task_id"] for r in responses]
        # some of the import done, so the outage falls in the middle of it
        await importer.until(job_id, lambda j: j["processed"] >= 5, timeout_s=120)

        before = await importer.job(job_id)
        parcels_before = colis_db["colis"].count_documents({})
        phases["stop"] = time.monotonic() - started
        await asyncio.to_thread(rabbit.stop)
        down_at = time.monotonic()
        phases["stopped"] = down_at - started
        # without this the test would prove nothing about a restart mid-load
        assert before is not None and before["processed"] < FILES, before
        assert parcels_before < PARCELS, parcels_before

        # broker away: the gateway refuses, clearly, and accepts nothing
        async with httpx.AsyncClient(
            base_url=gateway,
            timeout=60,
            headers={"Authorization": f"Bearer {importer.token}"},
        ) as client:
            refused_import = await client.post("/api/imports", json={"kind": "edi"})
        refused_parcel = await poster.create_colis(lot["id"], {**FORM, "description": "refusé"})
        assert refused_import.status_code == 503, refused_import.text
        assert refused_import.json()["detail"] == COMMAND_NOT_DELIVERED
        assert refused_parcel.status_code == 503, refused_parcel.text
        assert refused_parcel.json()["detail"] in {COMMAND_NOT_DELIVERED, COLIS_UNAVAILABLE}
        # and they say so on /readyz
        for service in stack.running:
            assert not is_ready(service.url), service.spec.name
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        phases["restart"] = time.monotonic() - started
        await asyncio.to_thread(rabbit.start)
        phases["broker up"] = time.monotonic() - started

        # every service reconnects by itself: the same processes become ready again
        deadline = time.monotonic() + 120
        not_ready = list(stack.running)
        while not_ready and time.monotonic() < deadline:
            not_ready = [s for s in not_ready if not is_ready(s.url)]
            await asyncio.sleep(0.5)
        assert not not_ready, [s.spec.name for s in not_ready]
        assert {id(r): r.process.pid for r in stack.running} == pids
        assert all(r.process.poll() is None for r in stack.running)
        phases["services ready"] = time.monotonic() - started

        job = await importer.finished(job_id, timeout_s=240)
        phases["import done"] = time.monotonic() - started
        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (FILES, FILES, 0), job

        finals = {task_id: await root.wait(task_id, timeout_s=240) for task_id in tasks}
        phases["parcels done"] = time.monotonic() - started
        not_done = {t: f["step_status"] for t, f in finals.items()}
        not_done = {t: s for t, s in not_done.items() if s != "completed"}
        assert not not_done, not_done

        # nothing lost, nothing twice: files
        assert_each_file_imported_once(import_db, test_env.data_dir, job_id, batch)

        # ... and parcels: one each, the refused one nowhere
        parcels_by_task = Counter(d["task_id"] for d in colis_db["colis"].find())
        assert parcels_by_task == Counter(set(tasks)), parcels_by_task
        numbers = [d["numero_suivi"] for d in colis_db["colis"].find()]
        assert len(set(numbers)) == PARCELS
        assert colis_db["tasks"].count_documents({}) == PARCELS

        # the refused import was not queued behind the first one either
        await asyncio.sleep(2)
        assert [j["_id"] for j in import_db["jobs"].find({}, {"_id": 1})] == [job_id]

        # nothing dead-lettered, nothing left over in any durable queue
        queues = await asyncio.to_thread(rabbit.queues)
        assert any(name.endswith(".dlq") for name in queues), queues
        dead = {name: n for name, n in queues.items() if name.endswith(".dlq") and n}
        assert not dead, dead
        print(
            f"\nbroker restart: {FILES} files, {PARCELS} parcels;"
            f" at s: {', '.join(f'{k} {v:.1f}' for k, v in phases.items())};"
            f" done when the broker stopped: {before['processed']}/{FILES} files,"
            f" {parcels_before}/{PARCELS} parcels"
        )
    finally:
        await importer.close()
        await poster.close()
        await root.close()
        store.close()
