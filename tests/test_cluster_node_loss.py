"""A three-node RabbitMQ cluster loses the node that leads the most queues, under load
(issue 19, point 2).

The cluster is deploy/local/cluster.sh's, started with a folder, node names and ports
of this test's own. The four services list every node (`JAUGE_AMQP_URL`), queues are
quorum queues and progress-svc is partitioned. Under an EDI import, parcels with a
photo and WebSocket clients following the import, the node leading the most queues is
SIGKILLed, kept down, then started again. Requirements: no 5xx but 503s while a client
reconnects (none after RECONNECTED_WITHIN_S); every gauge equal to its owner's state;
exact counts, one parcel per task; every `.dlq` empty; the node back in the cluster
with every quorum queue's members online again. A 15 s outage with 20 sockets runs
in `make test` (when RabbitMQ is installed); 30 s with 200 sockets behind `-m slow`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults_support import RABBITMQ_SERVER, _port_free, start_stack
from stack import ROOT, is_ready
from system_client import Socket, login
from system_colis_support import FAST, FORM, photo_bytes
from system_colis_support import Api as ColisApi
from system_imports_support import Api as ImportApi
from system_imports_support import assert_each_file_imported_once, edi_batch, write_inbox
from truth_support import until_gauges_agree

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        shutil.which(RABBITMQ_SERVER) is None, reason="RabbitMQ is not installed here"
    ),
]

CLUSTER_SH = ROOT / "deploy" / "local" / "cluster.sh"
NODES = (1, 2, 3)
FILES = 30
PARCELS = 6
SLOW_STEPS = "[test:delay=0.3]"
# a client that lost its node is on another one by then (heartbeats of 2 s, an attempt
# per node, quorum queues electing new leaders): only 503s before it
RECONNECTED_WITHIN_S = 8.0
SETTINGS = {
    **FAST,
    "JAUGE_HEARTBEAT_S": "2",
    "JAUGE_RECONCILE_INTERVAL_S": "2",
    "JAUGE_RECONCILE_AFTER_S": "10",
    "JAUGE_QUEUE_TYPE": "quorum",
    "JAUGE_PROGRESS_PARTITIONS": "6",
    "JAUGE_REBALANCE_INTERVAL_S": "2",
}


def free_run(count: int, low: int, high: int) -> int:
    """A base port whose next `count` ports are free (below the ephemeral range)."""
    for base in range(low, high, 7):
        if all(_port_free(base + n) for n in range(1, count + 1)):
            return base
    raise RuntimeError("no free ports for a private cluster")


class LocalCluster:
    """deploy/local/cluster.sh on a folder, node names and ports of its own."""

    def __init__(self, base: Path) -> None:
        offset = secrets.randbelow(2000) * 3
        amqp = free_run(3, 20000 + offset, 32000)
        dist = free_run(3, amqp + 10, 32000)
        management = free_run(1, dist + 10, 32000) + 1
        self.name = f"jauge-t{secrets.token_hex(3)}-"
        self.management_url = f"http://127.0.0.1:{management}"
        self.env = {
            "JAUGE_CLUSTER_DIR": str(base),
            "JAUGE_CLUSTER_NAME": self.name,
            "JAUGE_CLUSTER_AMQP_BASE": str(amqp),
            "JAUGE_CLUSTER_DIST_BASE": str(dist),
            "JAUGE_CLUSTER_MANAGEMENT_PORT": str(management),
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        }

    def run(self, *args: str, timeout_s: float = 400) -> str:
        done = subprocess.run(
            [str(CLUSTER_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    def node(self, index: int) -> str:
        return f"{self.name}{index}@localhost"

    def api(self, path: str) -> Any:
        response = httpx.get(self.management_url + path, auth=("guest", "guest"), timeout=10)
        return response.raise_for_status().json()

    def quorum_queues(self) -> list[dict[str, Any]]:
        return [q for q in self.api("/api/queues/%2F") if q.get("type") == "quorum"]

    def busiest_leader(self) -> int:
        leaders = Counter(q["leader"] for q in self.quorum_queues() if q.get("leader"))
        node = leaders.most_common(1)[0][0]
        return next(n for n in NODES if self.node(n) == node)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path / "cluster")
    try:
        local.run("start")
        yield local
    finally:
        # its data is the test's temporary folder: killed, not stopped (a clean stop of
        # the three nodes took 17 s of every run)
        local.run("kill", timeout_s=180)


async def follow(socket: Socket, job_id: str) -> dict[str, Any]:
    """Read the socket until the job shows completed (the last frame it got)."""
    await socket.subscribe(f"job:{job_id}")
    return await socket.until(
        lambda f: (f.get("job") or {}).get("status") == "completed", timeout_s=600
    )


@pytest.mark.timeout(1500)
@pytest.mark.parametrize(
    ("outage_s", "sockets"),
    [
        pytest.param(15, 20, id="15s-20-sockets"),
        pytest.param(30, 200, marks=pytest.mark.slow, id="30s-200-sockets"),
    ],
)
async def test_the_node_leading_most_queues_killed_mid_load(
    cluster: LocalCluster, make_stack: Any, test_env: Any, outage_s: float, sockets: int
) -> None:
    env = {**test_env.env(), "JAUGE_AMQP_URL": cluster.run("urls")}
    stack = start_stack(make_stack, env, **SETTINGS)
    stack.start("progress-svc")  # a second replica: the partitions are shared
    stack.wait_ready(timeout_s=120)
    gateway = stack.service("gateway").url
    batch = edi_batch(FILES, seed=19)
    write_inbox(test_env.data_dir, "edi", {name: data for name, (data, _) in batch.items()})
    store = test_env.mongo()
    photo = photo_bytes(1200, 900)
    importer = await ImportApi.login(gateway, "alice")
    poster = ColisApi(gateway, await login(gateway, "bob", "bob-password"))
    root = ColisApi(gateway, await login(gateway, "root", "root-password"))
    answers: Counter[int] = Counter()
    clients: list[Socket] = []
    try:
        # every queue replicated on the three nodes before anything happens
        for queue in cluster.quorum_queues():
            assert len(queue["members"]) == 3, queue
        job_id = await importer.start("edi")
        clients = [await Socket.open(gateway, importer.token) for _ in range(sockets)]
        followers = [asyncio.create_task(follow(s, job_id)) for s in clients]
        lot = await poster.lot("cargo")
        tasks = await poster.create_burst(lot["id"], PARCELS, photo, SLOW_STEPS)
        before = await importer.until(job_id, lambda j: j["processed"] >= 3, timeout_s=120)

        victim = await asyncio.to_thread(cluster.busiest_leader)
        await asyncio.to_thread(cluster.run, "kill-node", str(victim))
        down_at = time.monotonic()
        assert before["processed"] < FILES, before  # the kill falls mid-import

        # while it is away: the two others serve; at most a 503 while a client moves
        async with httpx.AsyncClient(
            base_url=gateway, timeout=60, headers={"Authorization": f"Bearer {importer.token}"}
        ) as client:
            while time.monotonic() - down_at < outage_s - 1:
                for response in (
                    await client.get(f"/api/jobs/{job_id}"),
                    await poster.create_colis(lot["id"], {**FORM, "description": "pendant"}),
                ):
                    answers[response.status_code] += 1
                    late = time.monotonic() - down_at > RECONNECTED_WITHIN_S
                    assert response.status_code < 500 or (
                        response.status_code == 503 and not late
                    ), (response.status_code, response.text, time.monotonic() - down_at)
                    if response.status_code == 202:
                        tasks.append(response.json()["task_id"])
                await asyncio.sleep(1)
        await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - down_at)))
        await asyncio.to_thread(cluster.run, "start-node", str(victim))

        assert all(is_ready(s.url) for s in stack.running)
        assert all(s.process.poll() is None for s in stack.running)
        job = await importer.finished(job_id, timeout_s=300)
        finals = {task: await root.wait(task, timeout_s=300) for task in tasks}
        _, wrong = await until_gauges_agree(store, test_env.db_prefix, timeout_s=120)
        assert not wrong, wrong
        last_frames = await asyncio.wait_for(asyncio.gather(*followers), 120)
        assert all(f["job"]["processed"] == FILES for f in last_frames)

        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (FILES, FILES, 0), job
        assert {f["step_status"] for f in finals.values()} == {"completed"}, finals
        import_db = store[f"{test_env.db_prefix}_import"]
        assert_each_file_imported_once(import_db, test_env.data_dir, job_id, batch)
        colis_db = store[f"{test_env.db_prefix}_colis"]
        assert Counter(d["task_id"] for d in colis_db["colis"].find()) == Counter(tasks)
        with_photo = set(tasks[:PARCELS])  # those posted during the outage have none
        parcels = list(colis_db["colis"].find())
        assert all(d.get("image") for d in parcels if d["task_id"] in with_photo), "photo lost"
        invoices = list(colis_db["colis"].find({}, {"numero_suivi": 1}))
        assert len({d["numero_suivi"] for d in invoices}) == len(tasks)

        # the node is back in the cluster, every queue's replicas with it, no DLQ used
        deadline = time.monotonic() + 120
        while True:
            nodes = await asyncio.to_thread(cluster.api, "/api/nodes")
            queues = await asyncio.to_thread(cluster.quorum_queues)
            lagging = [
                q["name"]
                for q in queues
                if sorted(q.get("online", [])) != sorted(cluster.node(n) for n in NODES)
            ]
            running = sorted(n["name"] for n in nodes if n.get("running"))
            if running == sorted(cluster.node(n) for n in NODES) and not lagging:
                break
            assert time.monotonic() < deadline, (running, lagging)
            await asyncio.sleep(2)
        dead = {q["name"]: q.get("messages") for q in queues if q["name"].endswith(".dlq")}
        assert not any(dead.values()), dead
        print(
            f"\ncluster node {victim} (leading most queues) SIGKILLed for {outage_s:g} s: "
            f"answers meanwhile {dict(answers)}; import at kill {before['processed']}/"
            f"{FILES}; {sockets} sockets saw the end; node back, replicas online"
        )
    finally:
        for socket in clients:
            await socket.close()
        await importer.close()
        await poster.close()
        await root.close()
        store.close()


def test_cluster_script_urls_list_every_node(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path)
    urls = local.run("urls").split(",")
    assert len(urls) == 3
    assert len({json.dumps(u) for u in urls}) == 3
