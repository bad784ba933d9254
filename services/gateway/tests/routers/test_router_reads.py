"""The smaller routers: invoices (import-svc, scoped by the read model), the audit trail,
clients and tariffs (colis-svc), and /readyz."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from conftest import Gateway


async def test_an_agent_sees_the_invoices_of_their_own_imports_only(gw: Gateway) -> None:
    mine = gw.add_job("alice", kind="import.edi")
    gw.add_job("bob", kind="import.edi")
    gw.rpc.answer = lambda key, body: {"invoices": [], "next_after": None}
    async with gw.client() as c:
        response = await c.get("/api/invoices", headers=gw.auth("alice"))
    assert response.status_code == 200
    [(_, request)] = gw.rpc.asked
    assert request["job_ids"] == [mine["_id"]]


async def test_an_agent_without_imports_is_answered_without_asking(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.get("/api/invoices", headers=gw.auth("alice"))
    assert response.json() == {"items": [], "next_cursor": None}
    assert not gw.rpc.asked


async def test_an_admin_searches_every_invoice(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"invoices": [{"number": "F1"}], "next_after": "S1:F1"}
    async with gw.client() as c:
        response = await c.get("/api/invoices", params={"number": "F1"}, headers=gw.auth("root"))
        cursor = response.json()["next_cursor"]
        await c.get("/api/invoices", params={"cursor": cursor}, headers=gw.auth("root"))
        forged = await c.get("/api/invoices", params={"cursor": "eA"}, headers=gw.auth("root"))
    assert response.json()["items"] == [{"number": "F1"}]
    [(_, request), (_, following)] = gw.rpc.asked
    assert request["job_ids"] is None and request["number"] == "F1"
    assert following["after"] == "S1:F1"  # the next page starts after the last key shown
    assert forged.status_code == 400


async def test_the_whole_audit_trail_is_for_admins(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"ok": True, "result": {"entries": [], "next": None}}
    async with gw.client() as c:
        agent = await c.get("/api/audit", headers=gw.auth("alice"))
        admin = await c.get("/api/audit", params={"before": 7}, headers=gw.auth("root"))
    assert agent.status_code == 403
    assert admin.status_code == 200
    [(_, request)] = gw.rpc.asked
    assert "audit" in orjson.dumps(request).decode()


async def test_clients_and_tariffs_are_colis_svcs_answers(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"ok": True, "result": [{"id": "C1", "name": "Dupont"}]}
    async with gw.client() as c:
        clients = await c.get("/api/clients", headers=gw.auth())
        gw.rpc.answer = lambda key, body: {"ok": True, "result": {"devise": "EUR"}}
        tariff = await c.get("/api/tariffs", headers=gw.auth())
    assert clients.json() == [{"id": "C1", "name": "Dupont", "phone": ""}]
    assert tariff.json() == {"devise": "EUR"}
    assert gw.rpc.asked_about("list_clients") and gw.rpc.asked_about("get_tariff")


class _Broker:
    def __init__(self, up: bool) -> None:
        self.up = up

    async def ping(self, **_: float) -> bool:  # FastStream's ping(timeout=...)
        return self.up


class _Admin:
    async def command(self, name: str) -> dict[str, Any]:
        return {"ok": 1}


class _Mongo:
    admin = _Admin()


async def test_readyz_is_a_503_when_the_broker_is_away(gw: Gateway) -> None:
    state = gw.app.state.gateway
    state.mongo = _Mongo()
    async with gw.client() as c:
        state.broker = _Broker(up=True)
        ready = await c.get("/readyz")
        state.broker = _Broker(up=False)
        not_ready = await c.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"broker": True, "store": True, "rpc": True}}
    assert not_ready.status_code == 503 and not_ready.json()["checks"]["broker"] is False
