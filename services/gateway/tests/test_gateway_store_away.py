"""The store away answers 503 with the French message, from any route, never a 500.

Before: pymongo's ServerSelectionTimeoutError escaped `users.get` in the authentication
dependency and the generic handler answered 500 (issue 14, B).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from gateway.errors import STORE_UNAVAILABLE
from gateway.main import create_app
from gateway.security import create_access_token
from gateway.settings import GatewaySettings

SECRET = "store-away-test-" + "x" * 40


class AwayUsers:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def get(self, username: str) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ServerSelectionTimeoutError("127.0.0.1:27017: [Errno 111] Connection refused"),
        AutoReconnect("connection closed"),
        NetworkTimeout("timed out"),
        ExecutionTimeout("operation exceeded time limit", 50),
        OperationFailure("SQLITE_BUSY: database is locked"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_an_authenticated_route_answers_503_in_french_when_the_store_is_away(
    error: Exception,
) -> None:
    settings = GatewaySettings(jwt_secret=SECRET)
    app = create_app(settings)
    app.state.gateway = SimpleNamespace(settings=settings, users=AwayUsers(error))
    token = create_access_token("alice", "agent", SECRET, 60)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": STORE_UNAVAILABLE}
    assert response.headers["retry-after"] == "2"


async def test_another_store_error_is_still_a_500_without_details() -> None:
    settings = GatewaySettings(jwt_secret=SECRET)
    app = create_app(settings)
    app.state.gateway = SimpleNamespace(
        settings=settings, users=AwayUsers(OperationFailure("unknown operator: $foo"))
    )
    token = create_access_token("alice", "agent", SECRET, 60)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert "foo" not in response.text
