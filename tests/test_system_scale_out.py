"""Scale-out on one machine (issue 6, point 4): two gateways, three import-svc, three
colis-svc and one progress-svc, as real processes on the real broker and store.

An EDI import and a burst of parcels (posted to both gateways, by two agents) run at
once. The test shows that:
- the work is shared: every import-svc replica reads some files and every colis-svc
  replica runs some parcel tasks (each records its `worker`, i.e. its pid);
- every WebSocket client, on either gateway, ends with the final state of every job it
  may see (and of no other agent's), frames in `seq` order;
- stopping one replica of each service in the middle (SIGTERM; the slow variant also
  kills a second import-svc with SIGKILL) loses nothing: the import completes with
  exact counts, every file imported once, every parcel created once with its own
  tracking number. The clients of the stopped gateway reconnect to the other one and
  catch up from its snapshots, as the UI does (docs/ui.md, "Live updates").
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from stack import Running, Stack, add_user
from system_client import Socket, login
from system_colis_support import FAST, FORM
from system_colis_support import Api as ColisApi
from system_imports_support import Api as ImportApi
from system_imports_support import (
    assert_each_file_imported_once,
    edi_batch,
    write_inbox,
)

pytestmark = pytest.mark.system

USERS = {"alice": "agent", "bob": "agent", "root": "admin"}
# one message at a time per replica: RabbitMQ then deals the work out round-robin, so
# every replica gets some whatever the machine's speed
WORKER_ENV = {"JAUGE_PREFETCH": "1"}
# each parcel step pauses a little, so the burst is still running when replicas stop
# slow enough that replicas are stopped with parcels still running (a fresh-clone run
# on 2026-12-07 had all 24 created before the stop at 0.15 s a step)
SLOW_STEPS = "[test:delay=0.3]"


@dataclass
class Client:
    """One user's live view: its sockets (a new one after a reconnect), read all along."""

    user: str
    token: str
    topics: list[str]
    sockets: list[Socket] = field(default_factory=list)
    readers: list[asyncio.Task[Any]] = field(default_factory=list)

    async def connect(self, gateway: str) -> None:
        socket = await Socket.open(gateway, self.token)
        for topic in self.topics:
            await socket.subscribe(topic)
        # frames are handled in order: the pong means the subscriptions are in place
        await socket.send({"op": "ping"})
        await socket.until(lambda f: f.get("type") == "pong")
        self.sockets.append(socket)
        self.readers.append(asyncio.create_task(self._read(socket)))

    @staticmethod
    async def _read(socket: Socket) -> None:
        with contextlib.suppress(Exception):  # the socket closes: its gateway stopped
            await socket.until(lambda _: False, timeout_s=3600)

    def last_seen(self) -> dict[str, dict[str, Any]]:
        """The newest state of each job this client received, on any of its sockets."""
        seen: dict[str, dict[str, Any]] = {}
        for socket in self.sockets:
            for frame in socket.frames:
                job = frame.get("job")
                if isinstance(job, dict) and job["seq"] > seen.get(job["id"], {"seq": -1})["seq"]:
                    seen[job["id"]] = job
        return seen

    def assert_in_seq_order(self) -> None:
        for socket in self.sockets:
            by_key: dict[tuple[str, str], list[int]] = {}
            for frame in socket.frames:
                if isinstance(frame.get("job"), dict):
                    by_key.setdefault((frame["topic"], frame["job"]["id"]), []).append(
                        frame["job"]["seq"]
                    )
            for key, seqs in by_key.items():
                assert seqs == sorted(set(seqs)), (self.user, key, seqs)

    async def close(self) -> None:
        for reader in self.readers:
            reader.cancel()
        for socket in self.sockets:
            with contextlib.suppress(Exception):
                await socket.close()


def start_scaled_stack(make_stack: Any, env: dict[str, str]) -> Stack:
    stack = make_stack(**FAST, JAUGE_LOCK_LEASE_S="5")
    stack.start("progress-svc")
    for _ in range(3):
        stack.start("import-svc", extra_env=WORKER_ENV)
    for _ in range(3):
        stack.start("colis-svc", extra_env={**WORKER_ENV, "JAUGE_TEST_HOOKS": "true"})
    for _ in range(2):
        stack.start("gateway")
    for name, role in USERS.items():
        add_user(env, name, role, f"{name}-password")
    stack.wait_ready(timeout_s=180)
    return stack


def replicas(stack: Stack, name: str) -> list[Running]:
    return [r for r in stack.running if r.spec.name == name]


def pid_of(worker: str | None) -> int | None:
    """`<service>@<host>:<pid>` (jauge_shared.identity.connection_name) -> pid."""
    return int(worker.rsplit(":", 1)[1]) if worker and ":" in worker else None


@pytest.mark.parametrize(
    ("files", "parcels", "kill_a_second_import_svc"),
    [
        (60, 24, False),
        # bigger, and one import-svc replica is left to finish alone
        pytest.param(150, 60, True, marks=pytest.mark.slow, id="150-60-kill"),
    ],
)
async def test_work_is_shared_every_client_sees_it_and_stopping_replicas_loses_nothing(
    make_stack, test_env, files: int, parcels: int, kill_a_second_import_svc: bool
) -> None:
    started = time.monotonic()
    stack = start_scaled_stack(make_stack, test_env.env())
    phases = {"ready": time.monotonic() - started}
    gateway_a, gateway_b = (g.url for g in replicas(stack, "gateway"))
    import_pids = {r.process.pid for r in replicas(stack, "import-svc")}
    colis_pids = {r.process.pid for r in replicas(stack, "colis-svc")}
    batch = edi_batch(files, seed=6)
    write_inbox(test_env.data_dir, "edi", {name: data for name, (data, _) in batch.items()})
    store = test_env.mongo()
    import_db, colis_db = (
        store[f"{test_env.db_prefix}_import"],
        store[f"{test_env.db_prefix}_colis"],
    )

    tokens = {user: await login(gateway_a, user, f"{user}-password") for user in USERS}
    clients = {
        "alice@A": Client("alice", tokens["alice"], ["jobs"]),
        "alice@B": Client("alice", tokens["alice"], ["jobs"]),
        "bob@B": Client("bob", tokens["bob"], ["jobs"]),
        "root@A": Client("root", tokens["root"], ["jobs"]),
    }
    for name, client in clients.items():
        await client.connect(gateway_a if name.endswith("@A") else gateway_b)
    importer = await ImportApi.login(gateway_a, "alice")
    # each agent posts to both gateways
    posters = {
        (user, url): ColisApi(url, tokens[user])
        for user in ("alice", "bob")
        for url in (gateway_a, gateway_b)
    }
    try:
        job_id = await importer.start("edi")
        # the import's own topic too, on the gateway that did not start it
        await clients["alice@B"].sockets[0].subscribe(f"job:{job_id}")
        clients["alice@B"].topics.append(f"job:{job_id}")
        lots = {
            "alice": await posters[("alice", gateway_a)].lot("cargo"),
            "bob": await posters[("bob", gateway_b)].lot("express"),
        }
        owners = ["alice" if i % 3 else "bob" for i in range(parcels)]
        gateways = [gateway_a if i % 2 else gateway_b for i in range(parcels)]
        forms = [
            {**FORM, "poids": f"{1 + i}.5", "description": f"Colis {i} {SLOW_STEPS}"}
            for i in range(parcels)
        ]
        responses = await asyncio.gather(
            *(
                posters[(owner, url)].create_colis(lots[owner]["id"], form)
                for owner, url, form in zip(owners, gateways, forms, strict=True)
            )
        )
        assert [r.status_code for r in responses] == [202] * parcels, responses[0].text
        tasks = {r.json()["task_id"]: owner for r, owner in zip(responses, owners, strict=True)}

        # work is shared: every replica reads files and runs parcel tasks
        file_workers: set[int | None] = set()
        task_workers: set[int | None] = set()
        deadline = time.monotonic() + 120
        while not (file_workers >= import_pids and task_workers >= colis_pids):
            assert time.monotonic() < deadline, (file_workers, task_workers)
            file_workers |= {pid_of(d.get("worker")) for d in import_db["file_results"].find()}
            task_workers |= {pid_of(d.get("worker")) for d in colis_db["tasks"].find()}
            await asyncio.sleep(0.2)
        assert file_workers - {None} <= import_pids and task_workers - {None} <= colis_pids

        # mid-load, one replica of each service stops
        before = await importer.job(job_id)
        parcels_before = colis_db["colis"].count_documents({})
        stopped = [
            (replicas(stack, "import-svc")[2], signal.SIGTERM),
            (replicas(stack, "colis-svc")[2], signal.SIGTERM),
            (replicas(stack, "gateway")[1], signal.SIGTERM),
        ]
        if kill_a_second_import_svc:
            stopped.append((replicas(stack, "import-svc")[1], signal.SIGKILL))
        phases["shared"] = time.monotonic() - started
        await asyncio.gather(*(asyncio.to_thread(stack.stop, r, sig) for r, sig in stopped))
        phases["stopped"] = time.monotonic() - started
        # without this the test would prove nothing about stopping replicas
        assert before is not None and before["processed"] < files, before
        assert parcels_before < parcels, parcels_before
        # the stopped gateway's clients come back through the other one
        for name in ("alice@B", "bob@B"):
            await clients[name].connect(gateway_a)

        job = await importer.finished(job_id, timeout_s=240)
        phases["import done"] = time.monotonic() - started
        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (files, files, 0)
        assert job["message"] == f"Import terminé : {files} fichiers traités"

        # an admin sees every agent's tasks
        root = ColisApi(gateway_a, tokens["root"])
        try:
            finals = {task_id: await root.wait(task_id, timeout_s=240) for task_id in tasks}
            final_jobs = {
                i: (await root.http.get(f"/api/jobs/{i}")).json() for i in [*tasks, job_id]
            }
        finally:
            await root.close()
        phases["parcels done"] = time.monotonic() - started
        not_done = {
            t: f["step_status"] for t, f in finals.items() if f["step_status"] != "completed"
        }
        assert not not_done, not_done

        # nothing lost, nothing twice: files
        expected = assert_each_file_imported_once(import_db, test_env.data_dir, job_id, batch)
        for doc in import_db["invoices"].find():
            assert doc["job_id"] == job_id
            kept = {k: v for k, v in doc.items() if k not in ("_id", "job_id", "source_file")}
            assert kept == expected[(doc["supplier_id"], doc["number"])]

        # ... and parcels: one each, tracking numbers unique, in the right lot
        parcels_by_task = Counter(d["task_id"] for d in colis_db["colis"].find())
        assert parcels_by_task == Counter(set(tasks)), parcels_by_task
        for user, lot in lots.items():
            listed = await posters[(user, gateway_a)].http.get(f"/api/lots/{lot['id']}/colis")
            mine = listed.json()
            assert sorted(p["id"] for p in mine) == sorted(t for t, o in tasks.items() if o == user)
        numbers = [d["numero_suivi"] for d in colis_db["colis"].find()]
        assert len(numbers) == parcels and len(set(numbers)) == parcels
        # every colis-svc replica finished tasks, the stopped one too (SIGTERM lets its
        # task end): a task's `worker` is the replica that ran it last
        finished_by = {pid_of(d.get("worker")) for d in colis_db["tasks"].find()}
        assert finished_by == colis_pids, (finished_by, colis_pids)

        # every client saw the final state of every job it may see, and only those
        visible = {
            "alice": {job_id} | {t for t, o in tasks.items() if o == "alice"},
            "bob": {t for t, o in tasks.items() if o == "bob"},
            "root": {job_id} | set(tasks),
        }
        for name, client in clients.items():
            want = {i: final_jobs[i]["seq"] for i in visible[client.user]}
            deadline = time.monotonic() + 60
            while True:
                seen = client.last_seen()
                got = {i: seen[i]["seq"] for i in want if i in seen}
                if got == want or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert got == want, (name, {i: (got.get(i), s) for i, s in want.items()})
            assert {seen[i]["status"] for i in want} == {"completed"}, (name, seen)
            others = set(seen) - visible[client.user]
            assert not (others & (set(tasks) | {job_id})), (name, others)
            client.assert_in_seq_order()
        # ... and alice's import topic, followed on the gateway that did not start it
        on_topic = [
            f["job"]["seq"]
            for socket in clients["alice@B"].sockets
            for f in socket.frames
            if f.get("topic") == f"job:{job_id}" and f.get("job")
        ]
        assert on_topic and max(on_topic) == final_jobs[job_id]["seq"], on_topic
        phases["sockets checked"] = time.monotonic() - started
        print(
            f"\nscale-out: {files} files, {parcels} parcels;"
            f" at s: {', '.join(f'{k} {v:.1f}' for k, v in phases.items())};"
            f" done when replicas stopped: {before['processed']}/{files} files,"
            f" {parcels_before}/{parcels} parcels"
        )
    finally:
        for client in clients.values():
            await client.close()
        await importer.close()
        for poster in posters.values():
            await poster.close()
        store.close()
