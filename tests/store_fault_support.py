"""What the gateway must answer while its store is away or silent (issue 14, B and
item 4), shared by tests/test_faults_store.py (the store killed under load) and
tests/test_faults_gateway_store.py (the store silent): every authenticated route, the
SSE stream and the WebSocket answer 503 with the French message (a new socket, or an
open one that subscribes, is closed 1013 with a reason) within a bounded time, never a
500, never a reset or a hang; and everything answers again once the store is back.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import websockets
from faults_gateway_support import STORE_UNAVAILABLE, Answers, timed
from system_client import Socket, login
from system_colis_support import FORM, TERMINAL

# what an answer may take while the store is away: the gateway's driver gives up after
# its server selection (3 s) when there is no server; on a silent one after its socket
# timeout (10 s) and a retry's connection or selection (3 s more); the rest is margin
# for a loaded machine
KILLED_BOUND_S = 15.0
SILENT_BOUND_S = 25.0
BOUND_S = SILENT_BOUND_S
BACK_WITHIN_S = 60.0
WS_TRY_AGAIN_LATER = 1013


# answers that are not 2xx and still say the system is back: an import of an empty inbox
# is refused by import-svc's count, at once (409)
ANSWERED_WHEN_WELL = {"POST /api/imports": (409,)}


def authenticated_routes(job_id: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(label, method, path, options): reads of the store, of colis-svc and import-svc
    (each behind the user's lookup), a command, and the SSE stream."""
    return [
        ("GET /api/me", "GET", "/api/me", {}),
        ("GET /api/jobs", "GET", "/api/jobs", {}),
        ("GET /api/jobs/{id}", "GET", f"/api/jobs/{job_id}", {}),
        ("GET /api/tasks", "GET", "/api/tasks", {}),
        ("GET /api/tasks/{id}", "GET", f"/api/tasks/{job_id}", {}),
        ("GET /api/lots", "GET", "/api/lots", {}),
        ("GET /api/invoices", "GET", "/api/invoices", {}),
        ("POST /api/imports", "POST", "/api/imports", {"json": {"kind": "edi"}}),
        ("GET /api/jobs/{id}/stream", "GET", f"/api/jobs/{job_id}/stream", {}),
    ]


async def ask_every_route(client: httpx.AsyncClient, job_id: str, answers: Answers) -> list[Any]:
    async def one(label: str, method: str, path: str, options: dict[str, Any]) -> Any:
        if path.endswith("/stream"):  # the status line is all that matters here
            started = time.monotonic()
            try:
                async with client.stream(method, path) as response:
                    body = (await response.aread()) if response.status_code != 200 else b""
                    answers.add(label, response.status_code, time.monotonic() - started)
                    return response.status_code, body.decode(errors="replace")
            except httpx.HTTPError as e:
                answers.add(label, 0, time.monotonic() - started, repr(e))
                return 0, ""
        response = await timed(client, answers, label, method, path, **options)
        return (response.status_code, response.text) if response is not None else (0, "")

    return await asyncio.gather(*(one(*route) for route in authenticated_routes(job_id)))


async def closed_with(socket: Socket) -> tuple[int, str, list[dict[str, Any]]]:
    """How `socket` was closed (code, reason) and the frames it received before."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(BOUND_S):
        try:
            while True:
                frames.append(json.loads(await socket.connection.recv()))
        except websockets.ConnectionClosed as e:
            close = e.rcvd
    assert close is not None, "closed without a close frame"
    return close.code, close.reason, frames


async def new_socket_is_refused_with_a_reason(gateway: str, token: str) -> tuple[int, str]:
    """A WebSocket opened while the store is away: closed 1013 with its reason."""
    url = gateway.replace("http://", "ws://") + "/ws"
    async with asyncio.timeout(BOUND_S):
        connection = await websockets.connect(
            url, open_timeout=BOUND_S, additional_headers={"Authorization": f"Bearer {token}"}
        )
        try:
            await connection.send(json.dumps({"op": "subscribe", "topic": "jobs"}))
            while True:
                await connection.recv()
        except websockets.ConnectionClosed as e:
            closed = e.rcvd
        finally:
            await connection.close()
    assert closed is not None, "closed without a close frame"
    return closed.code, closed.reason


async def prepare(gateway: str) -> tuple[str, str]:
    """alice's token and one of her tasks (a parcel), finished."""
    token = await login(gateway, "alice", "alice-password")
    async with httpx.AsyncClient(
        base_url=gateway, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        lot = await client.post("/api/lots", json={"type_lot": "cargo"})
        assert lot.status_code == 201, lot.text
        posted = await client.post(f"/api/lots/{lot.json()['id']}/colis", data=FORM)
        assert posted.status_code == 202, posted.text
        task_id = str(posted.json()["task_id"])
        # finished: no update of it can arrive during the fault and stand in for the
        # snapshot the socket asks for
        deadline = time.monotonic() + 90
        while True:
            task = await client.get(f"/api/tasks/{task_id}")
            if task.status_code == 200 and task.json()["step_status"] in TERMINAL:
                break
            assert time.monotonic() < deadline, f"the task never finished: {task.text}"
            await asyncio.sleep(0.2)
    return token, task_id


async def during_the_fault(
    gateway: str, token: str, job_id: str, outage_s: float, socket: Socket
) -> tuple[Answers, list[tuple[int, str]], tuple[int, str, list[dict[str, Any]]]]:
    """Every route asked again and again while the fault lasts, a new socket opened
    each round, and `socket`, opened before the fault, subscribing to the task."""
    answers = Answers()
    refusals: list[tuple[int, str]] = []
    ends = time.monotonic() + outage_s
    # the open socket subscribes once: its snapshot cannot be read, so it is closed
    await socket.subscribe(f"job:{job_id}")
    subscribed = asyncio.create_task(closed_with(socket))
    try:
        async with httpx.AsyncClient(
            base_url=gateway, timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            first = True
            while first or time.monotonic() < ends:
                first = False
                routes, refusal = await asyncio.gather(
                    ask_every_route(client, job_id, answers),
                    new_socket_is_refused_with_a_reason(gateway, token),
                )
                for status, body in routes:
                    if status == 503:
                        assert json.loads(body)["detail"] == STORE_UNAVAILABLE, body
                refusals.append(refusal)
                await asyncio.sleep(0.5)
        closed = await subscribed
    finally:
        subscribed.cancel()
        await socket.close()
    return answers, refusals, closed


async def until_everything_answers(gateway: str, token: str, job_id: str) -> float:
    """Seconds until every route answers 2xx again and a socket gets its snapshot."""
    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=gateway, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        while True:
            answers = Answers()
            results = await ask_every_route(client, job_id, answers)
            labels = [label for label, *_ in authenticated_routes(job_id)]
            if all(
                200 <= status < 300 or status in ANSWERED_WHEN_WELL.get(label, ())
                for label, (status, _) in zip(labels, results, strict=True)
            ):
                break
            assert time.monotonic() - started < BACK_WITHIN_S, answers.by_route
            await asyncio.sleep(1.0)
    socket = await Socket.open(gateway, token)
    try:
        await socket.subscribe(f"job:{job_id}")
        frame = await socket.until(lambda f: f["type"] in ("snapshot", "error"), 30)
        assert frame["type"] == "snapshot" and frame["job"]["id"] == job_id, frame
    finally:
        await socket.close()
    return time.monotonic() - started


def check(
    answers: Answers,
    refusals: list[tuple[int, str]],
    closed: tuple[int, str, list[dict[str, Any]]],
    bound_s: float,
) -> None:
    assert not answers.errors, answers.errors[:10]  # no 500, no reset, no hang
    assert answers.statuses() == {503}, answers.by_route
    assert answers.slowest_s < bound_s, answers.slowest_s
    assert refusals and all(code == WS_TRY_AGAIN_LATER and reason for code, reason in refusals), (
        refusals
    )
    # the open socket: no snapshot made up, closed with a reason (jauge.js reconnects)
    code, reason, frames = closed
    assert code == WS_TRY_AGAIN_LATER and reason, closed
    assert not [f for f in frames if f.get("type") == "snapshot"], frames
