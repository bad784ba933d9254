"""The gateway alone on the real broker and store: auth, isolation, WebSocket, SSE.

Progress documents are written straight into the read model and progress.updated is
published on the broker, as progress-svc would, so these tests need only the gateway.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aio_pika
import httpx
import pytest
import websockets
from stack import add_user
from system_client import Socket, login

from jauge_shared.contracts import ProgressDocument, ProgressUpdated

pytestmark = pytest.mark.system

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def progress_doc(job_id: str, owner: str, seq: int = 1) -> dict:
    return {
        "_id": job_id,
        "kind": "import.edi",
        "owner": owner,
        "title": "Import",
        "status": "running",
        "total": 10,
        "processed": seq,
        "failed": 0,
        "percent": seq * 10.0,
        "seq": seq,
        "created_at": NOW,
        "updated_at": NOW,
    }


@pytest.fixture
def gateway(make_stack, test_env):
    stack = make_stack()
    service = stack.start("gateway")
    stack.wait_ready()
    env = test_env.env()
    add_user(env, "alice", "agent", "alice-password")
    add_user(env, "bob", "agent", "bob-password")
    add_user(env, "root", "admin", "root-password")
    test_env.store_progress(progress_doc("job-a", "alice"), progress_doc("job-b", "bob"))
    return service.url


async def publish_update(test_env, job_id: str, owner: str, seq: int) -> None:
    doc = ProgressDocument.model_validate(progress_doc(job_id, owner, seq))
    event = ProgressUpdated(producer="test", job_id=job_id, job=doc)
    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jauge.events")
        await exchange.publish(
            aio_pika.Message(event.model_dump_json().encode(), content_type="application/json"),
            routing_key="progress.updated",
        )


async def test_rest_isolation_between_agents_and_admin(gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        assert (await client.get("/api/jobs")).status_code == 401
        bad = await client.get("/api/jobs", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert bad.json()["detail"].startswith("Authentification requise")
        for user, visible in (
            ("alice", {"job-a"}),
            ("bob", {"job-b"}),
            ("root", {"job-a", "job-b"}),
        ):
            token = await login(gateway, user, f"{user}-password")
            headers = {"Authorization": f"Bearer {token}"}
            listed = await client.get("/api/jobs", headers=headers)
            assert {j["id"] for j in listed.json()["items"]} == visible
            for job_id in ("job-a", "job-b"):
                one = await client.get(f"/api/jobs/{job_id}", headers=headers)
                assert one.status_code == (200 if job_id in visible else 404)
                if job_id not in visible:  # (a visible one streams forever: see below)
                    stream = await client.get(f"/api/jobs/{job_id}/stream", headers=headers)
                    assert stream.status_code == 404
                    assert "Tâche introuvable" in stream.json()["detail"]


async def test_the_session_cookie_authenticates_and_logout_forgets_it(gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post(
            "/api/auth/token", data={"username": "alice", "password": "alice-password"}
        )
        assert "httponly" in response.headers["set-cookie"].lower()
        me = await client.get("/api/me")
        assert me.json() == {"username": "alice", "role": "agent"}
        await client.post("/api/auth/logout")
        assert (await client.get("/api/me")).status_code == 401


async def test_login_is_rate_limited_per_user_and_address(gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        codes = [
            (
                await client.post("/api/auth/token", data={"username": "bob", "password": "x"})
            ).status_code
            for _ in range(11)
        ]
        assert codes[:10] == [401] * 10
        assert codes[10] == 429
        ok = await client.post(
            "/api/auth/token", data={"username": "alice", "password": "alice-password"}
        )
        assert ok.status_code == 200


async def test_websocket_protocol_and_isolation(gateway, test_env) -> None:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with websockets.connect(gateway.replace("http", "ws") + "/ws") as anonymous:
            await anonymous.recv()
    assert closed.value.rcvd.code == 4401

    alice = await Socket.open(gateway, await login(gateway, "alice", "alice-password"))
    bob = await Socket.open(gateway, await login(gateway, "bob", "bob-password"))
    await alice.send({"op": "ping"})
    assert (await alice.until(lambda f: True, 5)) == {"type": "pong"}
    await alice.connection.send("{nope")
    error = await alice.until(lambda f: f["type"] == "error", 5)
    assert error["code"] == "bad_frame"
    await alice.send({"op": "subscribe", "topic": "../etc"})
    assert (await alice.until(lambda f: f["type"] == "error", 5))["code"] == "bad_topic"

    await alice.subscribe("job:job-b")  # bob's: no data, ever
    snapshot = await alice.until(lambda f: f.get("topic") == "job:job-b", 5)
    assert snapshot == {"type": "snapshot", "topic": "job:job-b", "job": None}
    await alice.subscribe("job:job-a")
    snapshot = await alice.until(lambda f: f.get("topic") == "job:job-a", 5)
    assert snapshot["type"] == "snapshot" and snapshot["job"]["seq"] == 1
    await bob.subscribe("jobs")
    await bob.until(lambda f: f.get("topic") == "jobs", 5)

    await publish_update(test_env, "job-b", "bob", 5)
    await publish_update(test_env, "job-b", "bob", 3)  # late: never shown after 5
    await publish_update(test_env, "job-a", "alice", 2)
    update = await alice.until(lambda f: f["type"] == "update", 10)
    assert update["job"]["id"] == "job-a" and update["job"]["seq"] == 2
    seen = await bob.until(lambda f: f["type"] == "update" and f["job"]["seq"] == 5, 10)
    assert seen["topic"] == "jobs"
    await asyncio.sleep(0.5)
    assert not any(f.get("job") and f["job"]["id"] == "job-b" for f in alice.frames)
    bob_seqs = [f["job"]["seq"] for f in bob.frames if f.get("job") and f["job"]["id"] == "job-b"]
    assert bob_seqs == sorted(bob_seqs) and 3 not in bob_seqs[bob_seqs.index(5) :]

    # a reconnecting client re-subscribes and gets a fresh snapshot
    await alice.close()
    again = await Socket.open(gateway, await login(gateway, "alice", "alice-password"))
    await again.subscribe("job:job-a")
    fresh = await again.until(lambda f: f.get("topic") == "job:job-a", 5)
    assert fresh["type"] == "snapshot"
    await again.close()
    await bob.close()


async def test_server_sent_events_stream_snapshot_then_updates(gateway, test_env) -> None:
    token = await login(gateway, "alice", "alice-password")
    events: list[tuple[str, dict]] = []
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=10) as client,
        client.stream(
            "GET", "/api/jobs/job-a/stream", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind or "", json.loads(line[6:])))
                if len(events) == 1:
                    await publish_update(test_env, "job-a", "alice", 4)
                if len(events) == 2:
                    break
    assert [k for k, _ in events] == ["snapshot", "update"]
    assert events[1][1]["job"]["seq"] == 4
