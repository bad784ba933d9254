"""The store (FerretDB) stops under load and comes back (reliability issue, point 4;
issue 14: SIGKILL for 15 s in `make test`, 60 s behind `-m slow`, every gauge true after).

The test runs its own FerretDB (tests/faults_support.py), so that stopping it touches
nothing else; the broker is the shared one, on the test's own vhost. progress-svc,
import-svc, colis-svc and a gateway run an EDI import and a burst of parcels; in the
middle the store is stopped for the outage, then started again on the same port and
data. The test shows that:
- every service stays up, reports not ready (503) while the store is away and ready
  again once it is back;
- the work pauses and resumes: the import completes with exact counts, every file
  archived once and none in errors/; every parcel task completes with exactly one
  parcel, none `failed_final`;
- nothing is dead-lettered because of the outage: every `.dlq` of the vhost is empty
  and no service logged a dead-lettered message;
- the gateway answers every authenticated route, the SSE stream and the WebSocket with
  the 503 and its French message while the store is away, never a 500, a reset or a
  hang (issue 14, B), and 2xx again once it is back (tests/store_fault_support.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults_support import PrivateFerretDB, dead_letter_counts, dead_lettered_in_logs
from pymongo import MongoClient
from stack import Stack, add_user
from store_fault_support import (
    KILLED_BOUND_S,
    check,
    during_the_fault,
    prepare,
    until_everything_answers,
)
from system_client import Socket, login
from system_colis_support import FAST, FORM
from system_colis_support import Api as ColisApi
from system_imports_support import Api as ImportApi
from system_imports_support import (
    assert_each_file_imported_once,
    edi_batch,
    write_inbox,
)
from truth_support import until_gauges_agree

pytestmark = pytest.mark.system

USERS = {"alice": "agent", "root": "admin"}
PARCELS = 10
# each parcel step pauses, and a colis-svc replica runs two at a time: the burst is
# still running when the store stops
SLOW_STEPS = "[test:delay=0.3]"
SERVICES = ("progress-svc", "import-svc", "colis-svc", "gateway")


@pytest.fixture
def private_store(tmp_path: Path) -> Iterator[PrivateFerretDB]:
    """Requested before `make_stack`, so it stops after the services."""
    store = PrivateFerretDB(tmp_path / "ferretdb")
    store.start()
    try:
        yield store
    finally:
        store.stop()


def start_stack(make_stack: Any, env: dict[str, str]) -> Stack:
    stack: Stack = make_stack(**FAST, JAUGE_MONGO_URL=env["JAUGE_MONGO_URL"])
    stack.start("progress-svc")
    # one file at a time: the import is still running when the store stops
    stack.start("import-svc", extra_env={"JAUGE_PREFETCH": "1"})
    stack.start("colis-svc", extra_env={"JAUGE_TEST_HOOKS": "true", "JAUGE_TASK_CONCURRENCY": "2"})
    stack.start("gateway")
    # users live in the store: created while it is up
    for name, role in USERS.items():
        add_user(env, name, role, f"{name}-password")
    stack.wait_ready(timeout_s=120)
    return stack


async def watch_readiness(
    stack: Stack, statuses: dict[str, list[int]], stop: asyncio.Event
) -> None:
    """Each service's /readyz status, polled until `stop` is set."""
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():

            async def probe(name: str, url: str) -> None:
                try:
                    response = await client.get(url + "/readyz")
                    statuses[name].append(response.status_code)
                except httpx.HTTPError:
                    statuses[name].append(0)

            await asyncio.gather(*(probe(r.spec.name, r.url) for r in stack.running))
            await asyncio.sleep(0.3)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("outage_s", "sig", "files"),
    [
        pytest.param(15, signal.SIGKILL, 60, id="15s-kill"),
        # on SIGTERM FerretDB serves its open connections for a few more seconds: a
        # bigger import so that files are still waiting when it is really gone
        pytest.param(30, signal.SIGTERM, 240, marks=pytest.mark.slow, id="30s-term"),
        pytest.param(60, signal.SIGKILL, 60, marks=pytest.mark.slow, id="60s-kill"),
    ],
)
async def test_a_store_outage_pauses_the_work_which_resumes_without_loss_or_dead_letters(
    private_store: PrivateFerretDB, make_stack, test_env, outage_s: float, sig: int, files: int
) -> None:
    started = time.monotonic()
    env = {**test_env.env(), "JAUGE_MONGO_URL": private_store.url}
    stack = start_stack(make_stack, env)
    phases = {"ready": time.monotonic() - started}
    processes = {r.spec.name: r for r in stack.running}
    assert set(processes) == set(SERVICES)
    gateway = processes["gateway"].url
    batch = edi_batch(files, seed=4)
    write_inbox(test_env.data_dir, "edi", {name: data for name, (data, _) in batch.items()})
    store: MongoClient[Any] = MongoClient(private_store.url, tz_aware=True)
    import_db = store[f"{test_env.db_prefix}_import"]
    colis_db = store[f"{test_env.db_prefix}_colis"]

    tokens = {user: await login(gateway, user, f"{user}-password") for user in USERS}
    importer = await ImportApi.login(gateway, "alice")
    poster = ColisApi(gateway, tokens["alice"])
    readiness: dict[str, list[int]] = {name: [] for name in SERVICES}
    stop_watching = asyncio.Event()
    watcher: asyncio.Task[None] | None = None
    try:
        # a parcel already finished, which the gateway's checks ask about during the fault
        token, done_task = await prepare(gateway)
        lot = await poster.lot("cargo")
        forms = [
            {**FORM, "poids": f"{1 + i}.5", "description": f"Colis {i} {SLOW_STEPS}"}
            for i in range(PARCELS)
        ]
        responses = [await poster.create_colis(lot["id"], form) for form in forms]
        assert [r.status_code for r in responses] == [202] * PARCELS, responses[0].text
        tasks = [r.json()["task_id"] for r in responses]
        job_id = await importer.start("edi")

        # the outage begins once the import and the parcels are under way
        await importer.until(job_id, lambda j: j["processed"] >= 3, timeout_s=120)
        before = await importer.job(job_id)
        parcels_before = colis_db["colis"].count_documents({}) - 1  # prepare's
        phases["load running"] = time.monotonic() - started
        socket = await Socket.open(gateway, token)  # open before: it subscribes during
        await asyncio.to_thread(private_store.stop, sig)
        phases["store stopped"] = time.monotonic() - started
        # files are archived once their result is stored: the count is on disk, readable
        # while the store is away. Without work left the test would prove nothing.
        archived_at_stop = len(list((test_env.data_dir / "archive" / "edi").rglob("*.edi")))
        assert before is not None and archived_at_stop < files, (before, archived_at_stop)
        assert parcels_before < PARCELS, parcels_before

        watcher = asyncio.create_task(watch_readiness(stack, readiness, stop_watching))
        answers, refusals, closed = await during_the_fault(
            gateway, token, done_task, outage_s, socket
        )
        stop_watching.set()
        await watcher
        exited = {n: r.process.poll() for n, r in processes.items() if r.process.poll() is not None}
        assert not exited, f"exited during the outage: {exited}"
        # every service said it was not ready while the store was away
        not_ready = {n: s.count(503) for n, s in readiness.items()}
        assert all(not_ready.values()), readiness

        await asyncio.to_thread(private_store.start)
        phases["store back"] = time.monotonic() - started
        await asyncio.to_thread(stack.wait_ready, None, 120)
        phases["ready again"] = time.monotonic() - started
        back_s = await until_everything_answers(gateway, token, done_task)
        if sig == signal.SIGKILL:  # after SIGTERM, FerretDB still serves a few seconds
            check(answers, refusals, closed, KILLED_BOUND_S)

        job = await importer.finished(job_id, timeout_s=300)
        phases["import done"] = time.monotonic() - started
        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (files, files, 0), job
        assert job["message"] == f"Import terminé : {files} fichiers traités"

        root = ColisApi(gateway, tokens["root"])
        try:
            finals = {t: await root.wait(t, timeout_s=300) for t in tasks}
        finally:
            await root.close()
        phases["parcels done"] = time.monotonic() - started
        not_done = {t: (f["step_status"], f.get("errors")) for t, f in finals.items()}
        not_done = {t: v for t, v in not_done.items() if v[0] != "completed"}
        assert not not_done, not_done
        assert colis_db["tasks"].count_documents({"step_status": "failed_final"}) == 0

        # every gauge says what its owner stored
        _, wrong = await until_gauges_agree(store, test_env.db_prefix, timeout_s=60)
        assert not wrong, wrong

        # nothing lost, nothing twice: files
        assert_each_file_imported_once(import_db, test_env.data_dir, job_id, batch)
        errors = test_env.data_dir / "errors" / "edi"
        assert not errors.exists() or not any(errors.rglob("*")), list(errors.rglob("*"))

        # ... and parcels: exactly one each, tracking numbers unique
        parcels_by_task = Counter(d["task_id"] for d in colis_db["colis"].find())
        assert parcels_by_task == Counter({*tasks, done_task}), parcels_by_task
        numbers = [d["numero_suivi"] for d in colis_db["colis"].find()]
        assert len(set(numbers)) == PARCELS + 1, numbers

        # nothing dead-lettered, and every service still the one started
        assert dead_lettered_in_logs(stack.log_dir) == []
        counts = await dead_letter_counts(test_env)
        assert counts and set(counts.values()) == {0}, counts
        exited = {n: r.process.poll() for n, r in processes.items() if r.process.poll() is not None}
        assert not exited, exited
        assert all(r in stack.running for r in processes.values())
        retried = {t: f.get("retry_count", 0) for t, f in finals.items()}
        print(
            f"\nstore outage {outage_s}s ({signal.Signals(sig).name}): {files} files,"
            f" {PARCELS} parcels; at s: {', '.join(f'{k} {v:.1f}' for k, v in phases.items())};"
            f" done when the store stopped: {archived_at_stop}/{files} files,"
            f" {parcels_before}/{PARCELS} parcels; 503s during the outage {not_ready};"
            f" task retries {sorted(retried.values())}; dlqs {json.dumps(counts)};"
            f" the gateway: {dict(answers.by_route)}, slowest {answers.slowest_s:.1f}s,"
            f" {len(refusals)} sockets closed 1013, all answering {back_s:.1f}s after"
        )
    finally:
        stop_watching.set()
        if watcher is not None:
            await asyncio.gather(watcher, return_exceptions=True)
        await importer.close()
        await poster.close()
        store.close()
