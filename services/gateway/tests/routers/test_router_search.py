"""routers/search.py: the header's search box, answered by colis-svc over request/reply."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Gateway

PARCEL = {
    "type": "colis",
    "id": "c1",
    "numero": "TS20261122-7KQ2M9X1",
    "lot_id": "L1",
    "numero_lot": "CARGO-20261122001",
    "statut": "en_attente",
    "url": "/colis/c1",
    "exact": True,
}


async def test_what_colis_svc_finds_is_the_answer_and_the_text_goes_as_typed(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"ok": True, "result": [PARCEL]}
    async with gw.client() as c:
        response = await c.get(
            "/api/search", params={"q": " ts20261122 7kq2m9xl "}, headers=gw.auth()
        )
    assert response.status_code == 200
    assert response.json() == {"query": " ts20261122 7kq2m9xl ", "items": [PARCEL]}
    assert gw.rpc.asked_about("search", "ts20261122 7kq2m9xl")


async def test_an_empty_or_overlong_query_is_refused_before_colis_svc(gw: Gateway) -> None:
    async with gw.client() as c:
        empty = await c.get("/api/search", params={"q": ""}, headers=gw.auth())
        long = await c.get("/api/search", params={"q": "x" * 101}, headers=gw.auth())
        anonymous = await c.get("/api/search", params={"q": "TS"})
    assert empty.status_code == 422 and long.status_code == 422
    assert anonymous.status_code == 401
    assert gw.rpc.asked == []
