"""A store that hangs under load, seen by every service: every gauge ends true
(issue 14, point 5: "a store that hangs (a proxy that holds bytes without closing)").

The four services reach the shared FerretDB through tests/netproxy.py. An EDI import
and parcels with a photo are under way when the proxy blackholes for 15 s: connections
and bytes are taken, nothing is answered, nothing is closed, the way a partition or a
hung store process looks. Then the network heals and the held bytes flow again. The
test shows that:
- while it lasts, the gateway answers 503 with the French message or, for what could
  wait, 2xx (never 500, 504 or a reset); from `NOTICED_WITHIN_S` after the heal,
  nothing but 2xx (a request sent the instant it heals may still be told to retry: the
  driver learns the store is back at its next check, asked for every half second while
  it is away, and the users' read waits a second after a failure before asking again);
- the same processes recover by themselves (none exits, none is restarted);
- the work ends exact: import counts, every file once, one parcel per task, each with
  its photo, tracking numbers unique;
- within 60 s of the heal every gauge equals its owner's state;
- nothing is dead-lettered: every `.dlq` empty, no service logged a dead letter.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from faults_gateway_support import STORE_UNAVAILABLE
from faults_support import dead_letter_counts, dead_lettered_in_logs, start_stack
from netproxy import FaultyProxy
from stack import Stack
from system_client import login
from system_colis_support import FAST, FORM, photo_bytes
from system_colis_support import Api as ColisApi
from system_imports_support import Api as ImportApi
from system_imports_support import assert_each_file_imported_once, edi_batch, write_inbox
from truth_support import until_gauges_agree

pytestmark = pytest.mark.system

FILES = 30
PARCELS = 6
SLOW_STEPS = "[test:delay=0.3]"
HANG_S = 15.0
NOTICED_WITHIN_S = 2.0
TRUTH_WITHIN_S = 60.0
SETTINGS = {
    **FAST,
    "JAUGE_RECONCILE_INTERVAL_S": "2",
    "JAUGE_RECONCILE_AFTER_S": "10",
}
SERVICES = {"progress-svc", "import-svc", "colis-svc", "gateway"}


class Answers:
    """Every status the gateway gave, with when the request was sent."""

    def __init__(self, origin: float) -> None:
        self.origin = origin  # the test's start: times in `wrong` read as `phases`
        self.during: Counter[str] = Counter()
        self.after: Counter[str] = Counter()
        self.wrong: list[str] = []
        self.accepted_tasks: list[str] = []
        self.slowest_s = 0.0

    async def ask(self, name: str, call: Any, recovered: asyncio.Event) -> None:
        sent_during = not recovered.is_set()
        started = time.monotonic()
        try:
            response: httpx.Response = await call()
        except httpx.HTTPError as exc:  # a reset or a hang is a failure like a 500
            self.wrong.append(f"{name} at {started - self.origin:.1f}: {type(exc).__name__} {exc}")
            return
        self.slowest_s = max(self.slowest_s, time.monotonic() - started)
        status = response.status_code
        (self.during if sent_during else self.after)[f"{name} {status}"] += 1
        if status == 202 and name == "parcel":
            self.accepted_tasks.append(response.json()["task_id"])
        if status == 503 and sent_during:
            if response.json().get("detail") != STORE_UNAVAILABLE:
                # the broker is fine: the only reason for a 503 here is the store
                self.wrong.append(
                    f"{name} at {started - self.origin:.1f}: 503 {response.text[:200]}"
                )
        elif status >= 400:
            self.wrong.append(
                f"{name} at {started - self.origin:.1f} (answered"
                f" {time.monotonic() - self.origin:.1f}): {status} {response.text[:120]}"
            )


@pytest.mark.timeout(420)
async def test_a_store_that_hangs_mid_load_leaves_every_gauge_true(make_stack, test_env) -> None:
    started = time.monotonic()
    phases: dict[str, float] = {}
    address = urlsplit(test_env.mongo_url)
    with FaultyProxy(address.hostname or "127.0.0.1", address.port or 27017) as proxy:
        env = {**test_env.env(), "JAUGE_MONGO_URL": f"mongodb://127.0.0.1:{proxy.port}/"}
        stack: Stack = start_stack(make_stack, env, **SETTINGS)
        processes = {r.spec.name: r for r in stack.running}
        assert set(processes) == SERVICES
        phases["ready"] = time.monotonic() - started
        gateway = processes["gateway"].url
        batch = edi_batch(FILES, seed=14)
        write_inbox(test_env.data_dir, "edi", {name: data for name, (data, _) in batch.items()})
        store = test_env.mongo()  # the test's own view, straight to the store
        photo = photo_bytes(1200, 900)
        importer = await ImportApi.login(gateway, "alice")
        poster = ColisApi(gateway, await login(gateway, "bob", "bob-password"))
        root = ColisApi(gateway, await login(gateway, "root", "root-password"))
        answers = Answers(started)
        try:
            job_id = await importer.start("edi")
            lot = await poster.lot("cargo")
            tasks = await poster.create_burst(lot["id"], PARCELS, photo, SLOW_STEPS)
            before = await importer.until(job_id, lambda j: j["processed"] >= 3, timeout_s=120)
            # a task of bob's that has its gauge: the one asked about during the hang
            await poster.wait(tasks[0], lambda t: True, timeout_s=60)
            colis_db = store[f"{test_env.db_prefix}_colis"]
            parcels_before = colis_db["colis"].count_documents({})

            proxy.blackhole()  # connections and bytes taken, nothing answered, nothing closed
            phases["hang"] = time.monotonic() - started
            archived = len(list((test_env.data_dir / "archive" / "edi").rglob("*.edi")))
            # the hang falls mid-load, or the test would prove nothing
            assert archived < FILES and parcels_before < PARCELS, (archived, parcels_before)

            recovered = asyncio.Event()
            headers = {"Authorization": f"Bearer {importer.token}"}
            async with httpx.AsyncClient(base_url=gateway, timeout=60, headers=headers) as client:
                round_of = [
                    ("job", lambda: client.get(f"/api/jobs/{job_id}")),
                    ("task", lambda: poster.http.get(f"/api/tasks/{tasks[0]}")),  # bob's
                    ("lots", lambda: client.get("/api/lots")),  # colis-svc's reply
                    ("invoices", lambda: client.get("/api/invoices")),  # import-svc's
                    (
                        "parcel",
                        lambda: poster.create_colis(lot["id"], {**FORM, "description": "pendant"}),
                    ),
                ]
                asked: list[asyncio.Task[None]] = []
                while time.monotonic() - started - phases["hang"] < HANG_S:
                    asked += [
                        asyncio.create_task(answers.ask(name, call, recovered))
                        for name, call in round_of
                    ]
                    await asyncio.sleep(1)
                proxy.restore()
                healed_at = time.monotonic()
                phases["healed"] = healed_at - started
                asked += [
                    asyncio.create_task(answers.ask(name, call, recovered))
                    for name, call in round_of
                ]  # sent the instant it heals: 2xx, or the French 503 (not yet noticed)
                await asyncio.sleep(NOTICED_WITHIN_S)
                recovered.set()
                # a few rounds more once it has been noticed: nothing but 2xx
                for _ in range(3):
                    asked += [
                        asyncio.create_task(answers.ask(name, call, recovered))
                        for name, call in round_of
                    ]
                    await asyncio.sleep(1)
                await asyncio.gather(*asked)
            phases["answered"] = time.monotonic() - started
            assert not answers.wrong, (answers.wrong, phases)
            assert any(k.endswith(" 503") for k in answers.during), answers.during
            assert not any(k.endswith(" 503") for k in answers.after), answers.after

            # the same processes, none exited, all ready again
            await asyncio.to_thread(stack.wait_ready, None, 120)
            exited = {n: r.process.poll() for n, r in processes.items() if r.process.poll()}
            assert not exited, exited
            assert all(r in stack.running for r in processes.values())

            job = await importer.finished(job_id, timeout_s=180)
            phases["import done"] = time.monotonic() - started
            all_tasks = tasks + answers.accepted_tasks
            finals = {task: await root.wait(task, timeout_s=180) for task in all_tasks}
            phases["parcels done"] = time.monotonic() - started
            _, wrong = await until_gauges_agree(
                store, test_env.db_prefix, timeout_s=TRUTH_WITHIN_S + 30
            )
            truth_after_s = time.monotonic() - healed_at
            phases["gauges true"] = time.monotonic() - started

            assert not wrong, wrong
            assert truth_after_s <= TRUTH_WITHIN_S, truth_after_s
            assert job["status"] == "completed", job
            assert (job["total"], job["processed"], job["failed"]) == (FILES, FILES, 0), job
            assert {f["step_status"] for f in finals.values()} == {"completed"}, finals
            import_db = store[f"{test_env.db_prefix}_import"]
            assert_each_file_imported_once(import_db, test_env.data_dir, job_id, batch)
            assert Counter(d["task_id"] for d in colis_db["colis"].find()) == Counter(all_tasks)
            numbers = [d["numero_suivi"] for d in colis_db["colis"].find()]
            assert len(set(numbers)) == len(all_tasks), numbers
            photos = [d.get("image") for d in colis_db["colis"].find({"task_id": {"$in": tasks}})]
            assert all(photos), "a photo was lost"

            assert dead_lettered_in_logs(stack.log_dir) == []
            counts = await dead_letter_counts(test_env)
            assert counts and set(counts.values()) == {0}, counts
            print(
                f"\nstore hung {HANG_S:g} s: import at the hang {before['processed']}/{FILES},"
                f" parcels {parcels_before}/{PARCELS}; answers sent during {dict(answers.during)},"
                f" after {dict(answers.after)}, slowest {answers.slowest_s:.1f} s;"
                f" {len(answers.accepted_tasks)} parcels accepted during; every gauge true"
                f" {truth_after_s:.1f} s after the heal; at s:"
                f" {', '.join(f'{k} {v:.1f}' for k, v in phases.items())}"
            )
        finally:
            await importer.close()
            await poster.close()
            await root.close()
            store.close()
