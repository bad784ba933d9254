"""After a broker blip, the gateway's sockets and in-memory views show the true state
(issue 14, item 7a).

The gateway's progress.updated queue is exclusive: it goes with the connection, and so
does every update published while the gateway reconnects. Before the fix nothing
refreshed the `jobs` views (gateway/recent.py) nor the sockets afterwards: a task that
completed during the blip still showed running, on an open socket and in the `jobs`
snapshot of a new one, for good. Here only the gateway reaches the broker through a
proxy (tests/netproxy.py): its connections are cut and new ones held while a parcel
task completes; then the network heals. The test shows that the open socket receives
the completed state by itself, and a new socket's `jobs` snapshot has it too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from netproxy import FaultyProxy
from stack import Stack, add_user
from system_client import Socket, login
from system_colis_support import FAST, FORM

pytestmark = pytest.mark.system

STEPS = "[test:delay=1.0]"  # each step of the parcel's task pauses: it runs ~10 s
FINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def proxy(servers: Any) -> Iterator[FaultyProxy]:
    broker = urlsplit(servers.amqp_url)
    with FaultyProxy(broker.hostname or "127.0.0.1", broker.port or 5672) as faulty:
        try:
            yield faulty
        finally:
            faulty.restore()


def through(proxy: FaultyProxy, amqp_url: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def final(frame: dict[str, Any], task_id: str) -> bool:
    job = frame.get("job")
    return isinstance(job, dict) and job.get("id") == task_id and job.get("status") in FINAL


@pytest.mark.timeout(300)
async def test_a_task_completed_during_a_broker_blip_shows_completed_on_every_socket(
    proxy: FaultyProxy, make_stack, test_env
) -> None:
    stack: Stack = make_stack(**FAST)
    stack.start("progress-svc")
    stack.start("colis-svc", extra_env={"JAUGE_TEST_HOOKS": "true"})
    stack.start("gateway", extra_env={"JAUGE_AMQP_URL": through(proxy, test_env.amqp_url)})
    add_user(test_env.env(), "alice", "agent", "alice-password")
    stack.wait_ready(timeout_s=180)
    gateway = stack.service("gateway").url
    token = await login(gateway, "alice", "alice-password")
    progress = test_env.mongo()[f"{test_env.db_prefix}_progress"]["progress"]

    async with httpx.AsyncClient(
        base_url=gateway, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        lot = await client.post("/api/lots", json={"type_lot": "cargo"})
        assert lot.status_code == 201, lot.text
        posted = await client.post(
            f"/api/lots/{lot.json()['id']}/colis", data={**FORM, "description": f"Colis {STEPS}"}
        )
        assert posted.status_code == 202, posted.text
        task_id = posted.json()["task_id"]

    watcher = await Socket.open(gateway, token)
    try:
        await watcher.subscribe("jobs")
        await watcher.subscribe(f"job:{task_id}")
        running = await watcher.until(
            lambda f: (
                (f.get("job") or {}).get("id") == task_id and f["job"].get("status") == "running"
            ),
            60,
        )
        assert not final(running, task_id)

        # the blip: the gateway's connections cut, new ones held, until the task is done
        proxy.blackhole()
        assert proxy.cut() > 0
        cut_at = time.monotonic()
        deadline = cut_at + 120
        while (doc := progress.find_one({"_id": task_id})) is None or doc["status"] not in FINAL:
            assert time.monotonic() < deadline, doc
            await asyncio.sleep(0.3)
        stored = doc
        done_at = time.monotonic()
        assert not any(final(f, task_id) for f in watcher.frames), "it saw the end: no blip"
        proxy.restore()
        healed_at = time.monotonic()

        # the open socket learns the final state by itself, on both of its topics
        seen: dict[str, dict[str, Any]] = {}

        def both(frame: dict[str, Any]) -> bool:
            if final(frame, task_id):
                seen[frame["topic"]] = frame
            return {"jobs", f"job:{task_id}"} <= set(seen)

        await watcher.until(both, 60)
        told_at = time.monotonic()
        for frame in seen.values():
            assert frame["job"]["status"] == stored["status"], frame
            assert frame["job"]["seq"] == stored["seq"], (frame, stored["seq"])
    finally:
        await watcher.close()

    # and a new socket's `jobs` snapshot (answered from the gateway's memory) has it
    newcomer = await Socket.open(gateway, token)
    try:
        await newcomer.subscribe("jobs")
        snapshot = await newcomer.until(
            lambda f: f["type"] == "snapshot" and (f.get("job") or {}).get("id") == task_id, 30
        )
        assert snapshot["job"]["status"] == stored["status"], snapshot
    finally:
        await newcomer.close()
    print(
        f"\nbroker blip: task final {done_at - cut_at:.1f}s into the blip;"
        f" the open socket told {told_at - healed_at:.1f}s after the network healed"
    )
