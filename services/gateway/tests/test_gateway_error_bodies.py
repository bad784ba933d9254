"""Errors raised before any route code runs still answer in the documented French shape."""

from __future__ import annotations

import httpx
import pytest

from gateway.main import create_app
from gateway.settings import GatewaySettings


@pytest.fixture(scope="module")
def app():  # type: ignore[no-untyped-def]
    return create_app(GatewaySettings(jwt_secret="error-bodies-test-" + "x" * 40))


@pytest.mark.parametrize(
    "body",
    [b'{"kind": "\xff\xfe"}', b'{"kind": ', b"\x00\x01\x02"],
    ids=["not-utf8", "truncated", "binary"],
)
async def test_an_unreadable_json_body_is_a_french_422(app, body: bytes) -> None:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/api/imports", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["detail"].startswith("Requête invalide")
    assert payload["errors"] and all({"field", "message"} <= set(e) for e in payload["errors"])
