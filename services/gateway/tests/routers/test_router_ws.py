"""routers/ws.py: the WebSocket protocol (subscribe, unsubscribe, ping; snapshot, error,
pong), its authentication and origin check, snapshots from the progress view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

if TYPE_CHECKING:
    from conftest import Gateway


def socket(gw: Gateway, username: str = "alice", **headers: str) -> Any:
    """A socket opened without the app's lifespan (which would connect a broker)."""
    auth = {"authorization": f"Bearer {gw.token(username)}"} if username else {}
    return TestClient(gw.app).websocket_connect("/ws", headers={**auth, **headers})


def ask(ws: Any, **frame: Any) -> dict[str, Any]:
    ws.send_text(orjson.dumps(frame).decode())
    answer: dict[str, Any] = orjson.loads(ws.receive_text())
    return answer


def test_a_socket_without_credentials_is_closed_4401(gw: Gateway) -> None:
    with socket(gw, username="") as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_text()
    assert closed.value.code == 4401


def test_a_socket_from_another_site_is_closed_4403(gw: Gateway) -> None:
    with (
        socket(gw, origin="https://evil.example") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    assert closed.value.code == 4403


def test_a_job_subscription_starts_with_its_snapshot(gw: Gateway) -> None:
    job = gw.add_job("alice", processed=4, total=8)
    with socket(gw) as ws:
        frame = ask(ws, op="subscribe", topic=f"job:{job['_id']}")
    assert frame["type"] == "snapshot" and frame["topic"] == f"job:{job['_id']}"
    assert frame["job"]["id"] == job["_id"] and frame["job"]["processed"] == 4


def test_another_agents_job_has_an_empty_snapshot(gw: Gateway) -> None:
    theirs = gw.add_job("bob")
    with socket(gw, "alice") as ws:
        frame = ask(ws, op="subscribe", topic=f"job:{theirs['_id']}")
    assert frame["type"] == "snapshot" and frame["job"] is None


def test_the_jobs_topic_snapshots_the_callers_jobs_only(gw: Gateway) -> None:
    mine = [gw.add_job("alice"), gw.add_job("alice")]
    gw.add_job("bob")
    with socket(gw, "alice") as ws:
        ws.send_text('{"op": "subscribe", "topic": "jobs"}')
        frames = [orjson.loads(ws.receive_text()) for _ in mine]
        pong = ask(ws, op="ping")  # nothing else was queued before it
    assert {f["job"]["id"] for f in frames} == {d["_id"] for d in mine}
    assert pong == {"type": "pong"}


def test_frames_that_break_the_protocol_are_answered_with_errors(gw: Gateway) -> None:
    with socket(gw) as ws:
        ws.send_text("not json")
        unreadable = orjson.loads(ws.receive_text())
        unknown = ask(ws, op="shout", topic="jobs")
        bad_topic = ask(ws, op="subscribe", topic="job:../../etc")
    assert unreadable["code"] == "bad_frame"
    assert unknown["code"] == "unknown_op"
    assert bad_topic["code"] == "bad_topic"


def test_a_socket_is_registered_with_the_hub_while_open(gw: Gateway) -> None:
    with socket(gw) as ws:
        ask(ws, op="ping")
        assert len(gw.hub.connections) == 1 and len(gw.sessions) == 1
    assert not gw.hub.connections and len(gw.sessions) == 0
