"""progress-svc and the gateway SIGKILLed under load, then restarted (reliability
issue, point 2; the import-svc and colis-svc kills are in test_system_imports_takeover,
test_system_colis_crash and test_system_scale_out).

One replica of each service runs an EDI import of 100 files (4 of them bad) and 20
parcels (`-m slow`: 1,000 files and 200 parcels, the issue's scale), steps slowed,
while alice follows the import and `jobs` over a WebSocket. In the middle progress-svc
is SIGKILLed and a new one started 2 s later; once that one has moved the import on,
the gateway is SIGKILLed and a new one started (on another port): alice reconnects to
it and subscribes again. The gateway is killed right after it answered a parcel posted
with its photo and before it handed the photo over (a fault point freezes it there):
the new gateway hands the photo over and the task completes with it. The test shows
that:
- the import's progress document ends completed with exact counts (100 processed, 4
  failed, each failure listed once), every good file archived once and its invoices
  stored once, every bad file in errors/;
- every parcel task completes with exactly one parcel, tracking numbers unique, and the
  parcel answered before the kill has its photo;
- alice's new socket starts with a snapshot and its frames are in `seq` order; its last
  frame of each of her jobs is the final document;
- nothing is dead-lettered: every `.dlq` of the vhost is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections import Counter
from typing import Any

import pytest
from faults_support import USERS, dead_letter_counts, dead_lettered_in_logs, start_stack
from stack import Running, Stack
from system_client import Socket, login
from system_colis_support import FAST, FORM, photo_bytes, uploads
from system_colis_support import Api as ColisApi
from system_imports_support import Api as ImportApi
from system_imports_support import (
    assert_each_file_imported_once,
    bad_edi_files,
    edi_batch,
    write_inbox,
)

pytestmark = pytest.mark.system

BAD = ("vide.edi", "binaire.edi", "tronque.edi", "totaux-faux.edi")
SLOW_STEPS = "[test:delay=0.25]"
TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z")


async def restart(stack: Stack, service: Running) -> Running:
    """SIGKILL `service`, wait 2 s, start a new one of the same name and wait for it."""
    assert service.process.poll() is None, f"{service.spec.name} had already exited"
    code = await asyncio.to_thread(stack.stop, service, signal.SIGKILL)
    assert code == -signal.SIGKILL, code
    await asyncio.sleep(2)
    fresh = stack.start(service.spec.name)
    await asyncio.to_thread(stack.wait_ready, [fresh], 120)
    return fresh


async def follow(gateway: str, token: str, topics: list[str]) -> tuple[Socket, asyncio.Task]:
    """A socket subscribed to `topics`, read all along in the background."""
    socket = await Socket.open(gateway, token)
    for topic in topics:
        await socket.subscribe(topic)
    # frames are handled in order: the pong means the subscriptions are in place
    await socket.send({"op": "ping"})
    await socket.until(lambda f: f.get("type") == "pong")

    async def read() -> None:
        with contextlib.suppress(Exception):  # the socket closes: its gateway was killed
            await socket.until(lambda _: False, timeout_s=3600)

    return socket, asyncio.create_task(read())


def to_ms(value: Any) -> Any:
    """Timestamps cut to the millisecond: the store keeps milliseconds, while an update
    frame carries progress-svc's document as computed, with microseconds."""
    if isinstance(value, dict):
        return {k: to_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_ms(v) for v in value]
    if isinstance(value, str) and TIMESTAMP.fullmatch(value):
        return TIMESTAMP.sub(lambda m: m[1] + (m[2] or ".")[:4].ljust(4, "0") + "Z", value)
    return value


def job_frames(socket: Socket) -> dict[tuple[str, str], list[dict[str, Any]]]:
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for frame in socket.frames:
        if isinstance(frame.get("job"), dict):
            by_key.setdefault((frame["topic"], frame["job"]["id"]), []).append(frame)
    return by_key


@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    ("files", "parcels"),
    [
        pytest.param(100, 20, id="100-20"),
        pytest.param(1000, 200, marks=pytest.mark.slow, id="1000-200"),
    ],
)
async def test_progress_svc_and_gateway_killed_mid_load_lose_no_update_and_nothing_twice(
    make_stack, test_env, files: int, parcels: int
) -> None:
    started = time.monotonic()
    # the gateway freezes right after answering the first parcel with a photo, before
    # handing the photo over (jauge_shared.faults); the test then SIGKILLs it
    faults = {"JAUGE_FAULT_POINTS": "gateway.photo_answered=stop"}
    stack = start_stack(make_stack, test_env.env(), **FAST, **faults)
    phases = {"ready": time.monotonic() - started}
    gateway = stack.service("gateway").url
    good = edi_batch(files - len(BAD), seed=7)
    bad = {name: data for name, data in bad_edi_files().items() if name in BAD}
    assert sorted(bad) == sorted(BAD)
    write_inbox(test_env.data_dir, "edi", {**{n: data for n, (data, _) in good.items()}, **bad})
    archive, errors = (test_env.data_dir / folder / "edi" for folder in ("archive", "errors"))
    store = test_env.mongo()
    import_db = store[f"{test_env.db_prefix}_import"]
    colis_db = store[f"{test_env.db_prefix}_colis"]

    tokens = {user: await login(gateway, user, f"{user}-password") for user in USERS}
    importer = await ImportApi.login(gateway, "alice")
    posters = {user: ColisApi(gateway, tokens[user]) for user in ("alice", "bob")}
    readers: list[asyncio.Task[Any]] = []
    sockets: list[Socket] = []
    try:
        socket, reader = await follow(gateway, tokens["alice"], ["jobs"])
        sockets.append(socket)
        readers.append(reader)
        job_id = await importer.start("edi")
        await socket.subscribe(f"job:{job_id}")
        lots = {user: await api.lot("cargo") for user, api in posters.items()}
        owners = ["alice" if i % 2 else "bob" for i in range(parcels)]
        responses = [
            await posters[owner].create_colis(
                lots[owner]["id"],
                {**FORM, "poids": f"{1 + i}.5", "description": f"Colis {i} {SLOW_STEPS}"},
            )
            for i, owner in enumerate(owners)
        ]
        assert [r.status_code for r in responses] == [202] * parcels, responses[0].text
        tasks = {r.json()["task_id"]: owner for r, owner in zip(responses, owners, strict=True)}

        # mid-load: progress-svc killed, a new one started 2 s later
        before = await importer.until(job_id, lambda j: j["processed"] >= 3, timeout_s=120)
        archived_at_kill = len(list(archive.rglob("*.edi")))
        parcels_at_kill = colis_db["colis"].count_documents({})
        phases["progress-svc killed"] = time.monotonic() - started
        await restart(stack, stack.service("progress-svc"))
        phases["progress-svc back"] = time.monotonic() - started
        # import-svc went on meanwhile: its events waited in progress-svc's queue
        archived_at_restart = len(list(archive.rglob("*.edi")))
        # without work left the kill would prove nothing
        assert before["status"] == "running" and before["processed"] < files, before
        assert archived_at_kill < files - len(BAD), archived_at_kill
        assert parcels_at_kill < parcels, parcels_at_kill

        # once the new progress-svc has moved the import on (the import may be over by
        # then: it is fast), the gateway is killed while the parcels still run
        moved = await importer.until(
            job_id, lambda j: j["processed"] > before["processed"], timeout_s=120
        )
        answered = await posters["bob"].create_colis(
            lots["bob"]["id"], {**FORM, "description": "Colis avec photo"}, photo=photo_bytes()
        )
        assert answered.status_code == 202, answered.text  # then the gateway froze
        with_photo = answered.json()["task_id"]
        tasks[with_photo] = "bob"
        archived_at_gateway_kill = len(list(archive.rglob("*.edi")))
        parcels_at_gateway_kill = colis_db["colis"].count_documents({})
        phases["gateway killed"] = time.monotonic() - started
        await importer.close()
        for api in posters.values():
            await api.close()
        fresh = await restart(stack, stack.service("gateway"))
        phases["gateway back"] = time.monotonic() - started
        assert parcels_at_gateway_kill < parcels, parcels_at_gateway_kill
        # the old socket was closed by the kill; alice reconnects to the new gateway
        await asyncio.wait_for(readers[0], timeout=10)
        gateway = fresh.url
        importer = await ImportApi.login(gateway, "alice")
        posters = {user: ColisApi(gateway, tokens[user]) for user in ("alice", "bob")}
        socket, reader = await follow(gateway, tokens["alice"], [f"job:{job_id}", "jobs"])
        sockets.append(socket)
        readers.append(reader)

        job = await importer.finished(job_id, timeout_s=300)
        phases["import done"] = time.monotonic() - started
        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (files, files, len(BAD)), job
        assert sorted(e["item"] for e in job["errors"]) == sorted(BAD), job["errors"]

        root = ColisApi(gateway, tokens["root"])
        try:
            finals = {t: await root.wait(t, timeout_s=300) for t in tasks}
            final_jobs = {
                i: to_ms((await root.http.get(f"/api/jobs/{i}")).json()) for i in [*tasks, job_id]
            }
        finally:
            await root.close()
        phases["parcels done"] = time.monotonic() - started
        not_done = {
            t: f["step_status"] for t, f in finals.items() if f["step_status"] != "completed"
        }
        assert not not_done, not_done
        assert final_jobs[job_id] == to_ms(job), (final_jobs[job_id], job)
        assert {j["status"] for j in final_jobs.values()} == {"completed"}, final_jobs

        # nothing lost, nothing twice: files
        assert_each_file_imported_once(import_db, test_env.data_dir, job_id, good, rejected=BAD)
        for name in BAD:
            assert (errors / name).exists(), name

        # ... and parcels: exactly one each, tracking numbers unique, in the right lot
        parcels_by_task = Counter(d["task_id"] for d in colis_db["colis"].find())
        assert parcels_by_task == Counter(set(tasks)), parcels_by_task
        numbers = [d["numero_suivi"] for d in colis_db["colis"].find()]
        assert len(numbers) == len(tasks) and len(set(numbers)) == len(tasks), numbers
        # the photo the killed gateway had answered for, handed over by the new one
        [photographed] = list(colis_db["colis"].find({"task_id": with_photo}))
        assert photographed.get("image"), photographed
        assert uploads(test_env.env()) == [], "a photo left behind"
        for user, api in posters.items():
            listed = (await api.http.get(f"/api/lots/{lots[user]['id']}/colis")).json()
            assert sorted(p["id"] for p in listed) == sorted(
                t for t, o in tasks.items() if o == user
            )

        # alice's new socket: a fresh snapshot first, frames in seq order, and the final
        # document of each of her jobs last (waiting for the last updates to arrive)
        mine = {job_id} | {t for t, o in tasks.items() if o == "alice"}
        wanted = {(f"job:{job_id}", job_id)} | {("jobs", i) for i in mine}
        deadline = time.monotonic() + 30
        while True:
            frames = job_frames(socket)
            last = {k: to_ms(frames[k][-1]["job"]) for k in wanted if k in frames}
            if all(last.get(k) == final_jobs[k[1]] for k in wanted) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        differ = {
            k: {
                f: ((last.get(k) or {}).get(f), v)
                for f, v in final_jobs[k[1]].items()
                if (last.get(k) or {}).get(f) != v
            }
            for k in wanted
            if last.get(k) != final_jobs[k[1]]
        }
        assert not differ, differ
        assert frames[(f"job:{job_id}", job_id)][0]["type"] == "snapshot"
        for key, seen in frames.items():
            seqs = [f["job"]["seq"] for f in seen]
            assert seqs == sorted(set(seqs)), (key, seqs)
            assert key[1] in mine, key  # never bob's
        on_topic = [f["job"] for f in frames[(f"job:{job_id}", job_id)]]
        assert on_topic[-1]["status"] == "completed" and on_topic[-1]["processed"] == files

        # nothing dead-lettered
        assert dead_lettered_in_logs(stack.log_dir) == []
        counts = await dead_letter_counts(test_env)
        assert counts and set(counts.values()) == {0}, counts
        retried = sorted(f.get("retry_count", 0) for f in finals.values())
        print(
            f"\nkills: {files} files ({len(BAD)} bad), {parcels} parcels;"
            f" at s: {', '.join(f'{k} {v:.1f}' for k, v in phases.items())};"
            f" when progress-svc was killed: {before['processed']}/{files} processed,"
            f" {archived_at_kill} archived, {parcels_at_kill}/{parcels} parcels;"
            f" archived when the new one was ready: {archived_at_restart};"
            f" when the gateway was killed: {moved['processed']}/{files} processed,"
            f" {archived_at_gateway_kill} archived, {parcels_at_gateway_kill}/{parcels} parcels;"
            f" frames after reconnect {len(socket.frames)}; task retries {retried}"
        )
    finally:
        for task in readers:
            task.cancel()
        for s in sockets:
            with contextlib.suppress(Exception):
                await s.close()
        await importer.close()
        for api in posters.values():
            await api.close()
        store.close()
