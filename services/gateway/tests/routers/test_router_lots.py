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


async def test_lots_are_listed_by_status_a_page_at_a_time(gw: Gateway) -> None:
    counted = {**LOT, "colis_count": 3, "total_prix": "42000", "devise": "XOF"}
    gw.rpc.answer = replying({"items": [counted], "next_cursor": "Mnxq"})
    async with gw.client() as c:
        response = await c.get("/api/lots", params={"statut": "ouvert"}, headers=gw.auth())
        following = await c.get(
            "/api/lots", params={"cursor": "Mnxq", "limit": 1}, headers=gw.auth()
        )
        refused = await c.get("/api/lots", params={"statut": "perdu"}, headers=gw.auth())
        too_many = await c.get("/api/lots", params={"limit": 501}, headers=gw.auth())
    page = response.json()
    assert [lot["id"] for lot in page["items"]] == ["L1"]
    assert (page["items"][0]["colis_count"], page["items"][0]["total_prix"]) == (3, "42000")
    assert page["next_cursor"] == "Mnxq"
    assert gw.rpc.asked_about("list_lots", "ouvert")
    assert following.status_code == 200 and gw.rpc.asked_about("list_lots", "Mnxq")
    assert refused.status_code == 422 and too_many.status_code == 422
    assert len(gw.rpc.asked) == 2  # the invalid requests never reached colis-svc


async def test_shipping_a_lot_names_who_shipped_it_and_passes_the_refusal_on(
    gw: Gateway,
) -> None:
    gw.rpc.answer = replying({**LOT, "statut": "expedie", "shipped_at": "2026-01-03T10:00:00Z"})
    async with gw.client() as c:
        response = await c.post("/api/lots/L1/ship", headers=gw.auth("bob"))
    assert response.json()["statut"] == "expedie"
    assert gw.rpc.asked_about("ship_lot", "L1", "bob")

    detail = "Le lot CARGO-20260101001 est encore ouvert : fermez-le avant de l'expédier."
    gw.rpc.answer = lambda key, body: {"ok": False, "status": 409, "detail": detail}
    async with gw.client() as c:
        refused = await c.post("/api/lots/L1/ship", headers=gw.auth())
    assert refused.status_code == 409
    assert refused.json() == {"detail": detail}


async def test_a_client_is_corrected_with_only_the_fields_given(gw: Gateway) -> None:
    gw.rpc.answer = replying({"id": "C1", "name": "Dupont", "phone": "+33 6"})
    async with gw.client() as c:
        response = await c.patch("/api/clients/C1", json={"phone": "+33 6"}, headers=gw.auth())
        huge = await c.patch("/api/clients/C1", json={"name": "x" * 1001}, headers=gw.auth())
    assert response.status_code == 200 and response.json()["phone"] == "+33 6"
    asked = gw.rpc.asked[0][1]
    assert asked["method"] == "update_client"
    assert asked["params"] == {"client_id": "C1", "phone": "+33 6", "user_id": "alice"}
    assert huge.status_code == 422
    assert len(gw.rpc.asked) == 1

    # a blank name breaks the contracts' bounds, which the schema states: refused field by
    # field before colis-svc is asked (colis-svc's own French refusal: its tests)
    async with gw.client() as c:
        empty = await c.post("/api/clients", json={"name": " "}, headers=gw.auth())
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "name"
    assert len(gw.rpc.asked) == 1


def test_the_changing_requests_are_never_asked_twice() -> None:
    from jauge_shared.contracts.colis_rpc import COLIS_RPC_CHANGES

    assert {"ship_lot", "update_client", "create_client", "close_lot"} <= COLIS_RPC_CHANGES
    assert "list_lots" not in COLIS_RPC_CHANGES


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
