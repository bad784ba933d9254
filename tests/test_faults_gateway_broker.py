"""The gateway's request/reply path survives a RabbitMQ crash (issue 14, A and item 3).

Seen before the fix: the broker's Erlang VM SIGKILLed a second into a load, kept down
15 s and started again; from then on every route asking colis-svc (GET /api/lots,
POST /api/clients, the parcel form) answered 504 until the gateway was restarted,
while its /readyz said ready. The services run on a private node (faults_support) so
killing it touches nothing else. The test shows that:
- during the outage the gateway answers 503 with its French message, never another
  5xx, never a reset, and says it is not ready;
- once the node is back the same gateway answers GET /api/lots and POST /api/clients
  within seconds, by itself;
- /readyz does not say ready while the gateway cannot ask: once it says ready (and the
  other clients have had the time to reconnect) the routes answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faults_gateway_support import Answers, kill_rabbit, timed
from faults_support import PrivateRabbit, start_stack
from stack import is_ready
from system_client import login
from system_colis_support import FAST, FORM

pytestmark = pytest.mark.system

# a reply not there in 5 s is a 504: short, so that a dead reply path shows quickly
RPC_TIMEOUT_S = "5"
RECOVERY_S = 45.0  # from the node answering again to every route answering (loaded CI)
ANSWERED_AFTER_READY_S = 15.0
QUIET_S = 7.0


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[PrivateRabbit]:
    with PrivateRabbit(tmp_path / "rabbitmq") as node:
        yield node


async def poll_during(
    client: httpx.AsyncClient, gateway: str, answers: Answers, until: float
) -> list[tuple[float, int]]:
    """GET /api/lots and /readyz every half second until `until`; the readyz statuses."""
    ready: list[tuple[float, int]] = []
    while time.monotonic() < until:
        await asyncio.gather(
            timed(client, answers, "GET /api/lots", "GET", "/api/lots"),
            timed(client, answers, "POST /api/clients", "POST", "/api/clients", json={"name": "X"}),
        )
        probe = await timed(client, answers, "GET /readyz", "GET", gateway + "/readyz")
        ready.append((time.monotonic(), probe.status_code if probe is not None else 0))
        await asyncio.sleep(0.5)
    return ready


@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    "outage_s",
    [
        # in `make test`, tests/test_faults_broker_kill.py checks the same path under load
        pytest.param(15.0, marks=pytest.mark.slow, id="15s"),
        pytest.param(60.0, marks=pytest.mark.slow, id="60s"),
    ],
)
async def test_after_a_broker_crash_the_gateway_asks_colis_svc_again_and_readyz_tells_the_truth(
    rabbit: PrivateRabbit, make_stack, test_env, outage_s: float
) -> None:
    env = {
        **test_env.env(),
        **FAST,
        "JAUGE_AMQP_URL": rabbit.url,
        "JAUGE_RPC_TIMEOUT_S": RPC_TIMEOUT_S,
    }
    stack = start_stack(make_stack, env, JAUGE_RPC_TIMEOUT_S=RPC_TIMEOUT_S)
    gateway = stack.service("gateway").url
    token = await login(gateway, "alice", "alice-password")
    answers = Answers()
    phases: dict[str, float] = {}
    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=gateway, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        lots = await client.get("/api/lots")
        assert lots.status_code == 200, lots.text
        lot = await client.post("/api/lots", json={"type_lot": "cargo"})
        assert lot.status_code == 201, lot.text
        # a load under way: parcels posted, their slow steps running when the node dies
        forms = [
            {**FORM, "description": f"Colis {i} [test:delay=0.2]", "poids": f"{1 + i}"}
            for i in range(10)
        ]
        posted = await asyncio.gather(
            *(client.post(f"/api/lots/{lot.json()['id']}/colis", data=f) for f in forms)
        )
        assert {r.status_code for r in posted} == {202}, posted[0].text
        await asyncio.sleep(1.0)

        await asyncio.to_thread(kill_rabbit, rabbit)
        down_at = time.monotonic()
        phases["killed"] = down_at - started
        outage = await poll_during(client, gateway, answers, down_at + outage_s)
        assert outage and all(status == 503 for _, status in outage), outage
        assert answers.by_route["GET /api/lots"][503] > 0, answers.by_route

        await asyncio.to_thread(rabbit.start)
        up_at = time.monotonic()
        phases["node up"] = up_at - started
        after = Answers()
        # readiness first, alone: no request to colis-svc is sent while the clients
        # reconnect (before the fix, a request sent at that moment happened to repair the
        # path; without one it stayed broken)
        ready_at = None
        while time.monotonic() < up_at + RECOVERY_S:
            probe = await timed(client, after, "GET /readyz", "GET", gateway + "/readyz")
            if probe is not None and probe.status_code == 200:
                ready_at = time.monotonic() - up_at
                break
            await asyncio.sleep(0.5)
        assert ready_at is not None, ("gateway never ready again", after.by_route)
        # long enough for any client's own reconnection (aio-pika's robust connection
        # tries every 5 s): ready must mean able to ask, not "will be"
        await asyncio.sleep(QUIET_S)
        answered_at = None
        rounds_ok = 0
        while time.monotonic() < up_at + ready_at + QUIET_S + ANSWERED_AFTER_READY_S:
            listed, created = await asyncio.gather(
                timed(client, after, "GET /api/lots", "GET", "/api/lots"),
                timed(
                    client, after, "POST /api/clients", "POST", "/api/clients", json={"name": "Y"}
                ),
            )
            ok = (
                listed is not None
                and listed.status_code == 200
                and created is not None
                and created.status_code == 201
            )
            if ok:
                answered_at = answered_at or time.monotonic() - up_at
                rounds_ok += 1
                if rounds_ok >= 3:
                    break
            await asyncio.sleep(0.5)
        assert answered_at is not None and rounds_ok >= 3, after.by_route
        probe = await client.get(gateway + "/readyz")
        assert probe.status_code == 200, probe.text
        # the parcel form too, on the same path
        again = await client.post(f"/api/lots/{lot.json()['id']}/colis", data=FORM)
        assert again.status_code == 202, again.text

    assert not answers.errors, answers.errors[:10]
    assert not after.errors, after.errors[:10]
    assert all(is_ready(s.url) for s in stack.running), [
        s.spec.name for s in stack.running if not is_ready(s.url)
    ]
    print(
        f"\nbroker SIGKILL {outage_s:.0f}s: during {dict(answers.by_route)};"
        f" after the node was up: ready in {ready_at:.1f}s, routes answering at"
        f" {answered_at:.1f}s (asked from {ready_at + QUIET_S:.1f}s);"
        f" slowest answer during the outage {answers.slowest_s:.1f}s"
    )
