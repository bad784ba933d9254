"""routers/auth.py: login, logout, who am I, WebSocket tickets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.deps import SESSION_COOKIE
from gateway.security import decode_access_token

if TYPE_CHECKING:
    from conftest import Gateway

SECRET_OF = "secret-"  # the fake users' passwords: "secret-<username>"


async def test_a_login_answers_a_token_and_sets_the_session_cookie(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.post(
            "/api/auth/token", data={"username": "alice", "password": SECRET_OF + "alice"}
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert response.cookies[SESSION_COOKIE] == token
        me = await c.get("/api/me")  # with the cookie alone
    claims = decode_access_token(token, gw.settings.jwt_secret.get_secret_value())
    assert claims.username == "alice"
    assert me.json() == {"username": "alice", "role": "agent"}


async def test_a_wrong_password_is_a_401_in_french(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.post("/api/auth/token", data={"username": "alice", "password": "no"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Identifiant ou mot de passe incorrect."}
    assert SESSION_COOKIE not in response.cookies


async def test_too_many_failures_are_a_429_with_retry_after(gw: Gateway) -> None:
    async with gw.client() as c:
        statuses = [
            (await c.post("/api/auth/token", data={"username": "alice", "password": "x"}))
            for _ in range(gw.settings.login_attempts + 1)
        ]
    assert statuses[-1].status_code == 429
    assert int(statuses[-1].headers["retry-after"]) >= 1


async def test_a_logout_revokes_the_token(gw: Gateway) -> None:
    headers = gw.auth("bob")
    async with gw.client() as c:
        before = await c.get("/api/me", headers=headers)
        logout = await c.post("/api/auth/logout", headers=headers)
        after = await c.get("/api/me", headers=headers)
    assert before.status_code == 200
    assert logout.status_code == 204
    assert [name for name, _ in gw.users.revoked] == ["bob"]
    assert after.status_code == 401


async def test_a_ws_ticket_is_for_the_socket_only(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.post("/api/auth/ws-ticket", headers=gw.auth())
        ticket = response.json()["ticket"]
        as_bearer = await c.get("/api/me", headers={"Authorization": f"Bearer {ticket}"})
    assert response.json()["expires_in"] == 30
    assert as_bearer.status_code == 401  # a ticket is no access token


async def test_who_am_i_needs_a_session(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.get("/api/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
