"""Each service on its own: health, readiness, graceful stop, dead letters with a reason."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aio_pika
import httpx
import pytest

pytestmark = pytest.mark.system


def test_every_service_is_ready_and_stops_gracefully_on_sigterm(make_stack) -> None:
    stack = make_stack()
    services = stack.start_all()
    stack.wait_ready()
    for service in services:
        assert httpx.get(service.url + "/healthz").status_code == 200
        ready = httpx.get(service.url + "/readyz").json()
        checks = {"broker": True, "store": True}
        if service.spec.name == "progress-svc":  # its events are read by a DirectConsumer
            checks["consumer"] = True
        if service.spec.name == "gateway":  # its request/reply round trip (gateway/rpc.py)
            checks["rpc"] = True
        assert ready == {"ready": True, "checks": checks}
        assert "python_info" in httpx.get(service.url + "/metrics").text
    for service in list(services):
        started = time.monotonic()
        # uvicorn re-raises the signal once shut down, so the code says "terminated"
        assert stack.stop(service, signal.SIGTERM) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 20
        assert "Application shutdown complete" in service.log_path.read_text()


def test_queues_and_dead_letter_queues_are_declared(make_stack, test_env) -> None:
    stack = make_stack()
    stack.start_all()
    stack.wait_ready()
    servers = test_env.servers
    response = httpx.get(
        f"{servers.management_url}/api/queues/{test_env.vhost}", auth=servers.management_auth
    )
    names = {q["name"] for q in response.json()}
    for name in (
        "import-svc.requests",
        "import-svc.files",
        "colis-svc.tasks",
        "colis-svc.control",
        "progress-svc.events",
    ):
        assert {name, name + ".dlq"} <= names
    services = ("import-svc", "colis-svc", "progress-svc", "gateway")
    named: set[str] = set()

    def every_service_named() -> bool:
        return all(any(n.startswith(s + "@") for n in named) for s in services)

    deadline = time.monotonic() + 30  # the management API lists connections with a delay
    # (progress-svc has two connections: counting four names was not enough)
    while not every_service_named() and time.monotonic() < deadline:
        connections = httpx.get(
            f"{servers.management_url}/api/connections", auth=servers.management_auth
        )
        named = {
            c.get("client_properties", {}).get("connection_name", "")
            for c in connections.json()
            if c["vhost"] == test_env.vhost
        }
        time.sleep(0.5)
    assert every_service_named(), named


async def test_a_malformed_event_goes_to_the_dead_letter_queue_with_its_reason(
    make_stack, test_env
) -> None:
    stack = make_stack()
    stack.start(name="progress-svc")
    stack.wait_ready()
    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        events = await channel.get_exchange("jauge.events")
        bad_bodies = {
            b"{not json": "JSON",
            json.dumps({"type": "file.imported", "job_id": "j1"}).encode(): "schema validation",
        }
        for body in bad_bodies:
            await events.publish(
                aio_pika.Message(body, content_type="application/json"), routing_key="file.imported"
            )
        good = {
            "type": "import.started",
            "producer": "test",
            "job_id": "j-good",
            "kind": "edi",
            "user_id": "alice",
            "title": "Import",
            "total": 1,
        }
        await events.publish(
            aio_pika.Message(json.dumps(good).encode(), content_type="application/json"),
            routing_key="import.started",
        )
        dlq = await channel.declare_queue("progress-svc.events.dlq", passive=True)
        reasons = []
        deadline = time.monotonic() + 20
        while len(reasons) < 2 and time.monotonic() < deadline:
            message = await dlq.get(fail=False)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            await message.ack()
            reasons.append(str(message.headers["x-jauge-dead-letter-reason"]))
            assert message.headers["x-jauge-original-queue"] == "progress-svc.events"
    assert len(reasons) == 2
    assert any("schema validation" in r for r in reasons), reasons
    assert any("JSON" in r or "decode" in r.lower() for r in reasons), reasons
    with test_env.mongo() as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            doc = client[f"{test_env.db_prefix}_progress"]["progress"].find_one({"_id": "j-good"})
            if doc:
                break
            await asyncio.sleep(0.2)
        assert doc is not None and doc["status"] == "running"
