"""The gateway's answer times, by route template (gateway.http_metrics)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, HTTPException

from gateway.http_metrics import HTTP_SECONDS, UNMATCHED, HttpTimingMiddleware


def _count(method: str, route: str, status: str) -> float:
    for metric in HTTP_SECONDS.collect():
        for sample in metric.samples:
            labels = sample.labels
            if sample.name.endswith("_count") and (
                labels["method"],
                labels["route"],
                labels["status"],
            ) == (method, route, status):
                return sample.value
    return 0.0


async def test_answers_are_timed_by_route_template_never_by_the_path_sent() -> None:
    app = FastAPI()

    @app.post("/api/lots/{lot_id}/colis", status_code=202)
    async def create(lot_id: str) -> dict[str, str]:
        if lot_id == "closed":
            raise HTTPException(409, "Ce lot est fermé.")
        return {"lot": lot_id}

    app.add_middleware(HttpTimingMiddleware)
    template = "/api/lots/{lot_id}/colis"
    before = {
        key: _count(*key)
        for key in (("POST", template, "2xx"), ("POST", template, "4xx"), ("GET", UNMATCHED, "4xx"))
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for lot in ("a1", "b2", "c3"):
            assert (await client.post(f"/api/lots/{lot}/colis")).status_code == 202
        assert (await client.post("/api/lots/closed/colis")).status_code == 409
        assert (await client.get("/nowhere/at/all")).status_code == 404

    assert _count("POST", template, "2xx") - before[("POST", template, "2xx")] == 3
    assert _count("POST", template, "4xx") - before[("POST", template, "4xx")] == 1
    assert _count("GET", UNMATCHED, "4xx") - before[("GET", UNMATCHED, "4xx")] == 1
    paths = {s.labels["route"] for m in HTTP_SECONDS.collect() for s in m.samples}
    assert "/api/lots/a1/colis" not in paths
