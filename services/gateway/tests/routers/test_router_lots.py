"""routers/lots.py: lots created, read and closed by colis-svc over request/reply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Gateway

LOT = {
    "id": "L1",
    "numero_lot": "CARGO-20260101001",
    "type_lot": "cargo",
    "statut": "ouvert",
    "created_at": "2026-01-01T10:00:00Z",
}


def replying(result: Any) -> Any:
    return lambda key, body: {"ok": True, "result": result}


async def test_a_new_lot_is_colis_svcs_answer_and_names_who_asked(gw: Gateway) -> None:
    gw.rpc.answer = replying(LOT)
    async with gw.client() as c:
        response = await c.post("/api/lots", json={"type_lot": "cargo"}, headers=gw.auth())
    assert response.status_code == 201
    assert response.json()["numero_lot"] == "CARGO-20260101001"
    assert gw.rpc.asked_about("create_lot", "cargo", "alice")


async def test_a_lot_colis_svc_does_not_know_is_its_404(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"ok": False, "status": 404, "detail": "Lot introuvable."}
    async with gw.client() as c:
        response = await c.get("/api/lots/L404", headers=gw.auth())
    assert response.status_code == 404
    assert response.json() == {"detail": "Lot introuvable."}


async def test_lots_are_listed_by_status(gw: Gateway) -> None:
    gw.rpc.answer = replying([LOT])
    async with gw.client() as c:
        response = await c.get("/api/lots", params={"statut": "ouvert"}, headers=gw.auth())
        refused = await c.get("/api/lots", params={"statut": "perdu"}, headers=gw.auth())
    assert [lot["id"] for lot in response.json()] == ["L1"]
    assert gw.rpc.asked_about("list_lots", "ouvert")
    assert refused.status_code == 422
    assert len(gw.rpc.asked) == 1  # the invalid status never reached colis-svc


async def test_closing_a_lot_names_who_closed_it(gw: Gateway) -> None:
    gw.rpc.answer = replying({**LOT, "statut": "ferme", "closed_at": "2026-01-02T10:00:00Z"})
    async with gw.client() as c:
        response = await c.post("/api/lots/L1/close", headers=gw.auth("bob"))
    assert response.json()["statut"] == "ferme"
    assert gw.rpc.asked_about("close_lot", "L1", "bob")


async def test_a_lots_history_is_a_page_of_the_audit_trail(gw: Gateway) -> None:
    entry = {"id": "e1", "at": "2026-01-01T10:00:00Z", "who": "alice", "what": "lot.created"}
    gw.rpc.answer = replying({"entries": [entry], "next": None})
    async with gw.client() as c:
        response = await c.get("/api/lots/L1/history", params={"limit": 5}, headers=gw.auth())
    assert response.status_code == 200
    assert response.json()["entries"][0]["what"] == "lot.created"
    assert gw.rpc.asked_about("lot_history", "L1")


async def test_colis_svc_away_is_a_503_naming_it(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: ConnectionError("broker away")
    async with gw.client() as c:
        response = await c.get("/api/lots", headers=gw.auth())
    assert response.status_code == 503
    assert "des colis" in response.json()["detail"]


async def test_lots_need_a_session(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.post("/api/lots", json={"type_lot": "cargo"})
    assert response.status_code == 401
    assert not gw.rpc.asked
