"""Login (OAuth2 password form), logout, and who am I."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from gateway.deps import (
    SESSION_COOKIE,
    CurrentSession,
    CurrentUser,
    SessionsDep,
    SettingsDep,
    UsersDep,
    oauth2_scheme,
    session_from_token,
)
from gateway.errors import AUTHENTICATED, error_responses
from gateway.security import (
    WS_TICKET_TTL_S,
    HashingBusyError,
    create_access_token,
    create_ws_ticket,
)

router = APIRouter(prefix="/api", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    username: str
    role: str


MAX_USERNAME = 128
MAX_PASSWORD = 1024


class LoginRateLimiter:
    """Sliding windows of failed logins; in memory, per replica, and bounded.

    Counted three ways, so that neither many names from one address nor one name from
    many addresses gets unlimited tries: per (user, address), per user, per address.
    At most `max_keys` keys are remembered (the least recently used are forgotten) and
    each keeps at most its limit of timestamps, so a flood of made-up names costs the
    gateway a fixed amount of memory; names are cut to `MAX_USERNAME` characters.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def _blocked(self, key: tuple[str, str], limit: int, window_s: float, now: float) -> float:
        failures = self._failures.get(key)
        if not failures:
            return 0.0
        while failures and now - failures[0] > window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0.0
        if len(failures) >= limit:
            return window_s - (now - failures[0])
        return 0.0

    def blocked_for(
        self, user: str, address: str, limits: tuple[int, int, int], window_s: float
    ) -> float:
        """Seconds to wait before trying again; `limits`: per pair, per user, per address."""
        now = time.monotonic()
        return max(
            self._blocked(key, limit, window_s, now)
            for key, limit in zip(_keys(user, address), limits, strict=True)
        )

    def failed(self, user: str, address: str, limits: tuple[int, int, int]) -> None:
        now = time.monotonic()
        for key, limit in zip(_keys(user, address), limits, strict=True):
            failures = self._failures.get(key)
            if failures is None or failures.maxlen != limit:
                failures = self._failures[key] = deque(failures or (), maxlen=limit)
            failures.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, user: str, address: str) -> None:
        self._failures.pop(("pair", f"{user}\x00{address}"), None)


def _keys(user: str, address: str) -> tuple[tuple[str, str], ...]:
    return (("pair", f"{user}\x00{address}"), ("user", user), ("address", address))


def client_address(request: Request) -> str:
    """The socket's peer; behind a trusted proxy (`trusted_proxies`), uvicorn has already
    put the forwarded address there, and an X-Forwarded-For from anyone else is ignored."""
    return request.client.host if request.client else "?"


def get_limiter(request: Request) -> LoginRateLimiter:
    limiter: LoginRateLimiter = request.app.state.login_limiter
    return limiter


def too_many(wait: float) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"Trop de tentatives de connexion : réessayez dans {int(wait) + 1} s.",
        headers={"Retry-After": str(int(wait) + 1)},
    )


WRONG_PASSWORD = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    detail="Identifiant ou mot de passe incorrect.",
    headers={"WWW-Authenticate": "Bearer"},
)


@router.post(
    "/auth/token",
    response_model=Token,
    responses=error_responses(401, 422, 429, 503, e401="Wrong username or password"),
)
async def login(
    request: Request,
    response: Response,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    users: UsersDep,
    settings: SettingsDep,
    limiter: Annotated[LoginRateLimiter, Depends(get_limiter)],
) -> Token:
    """Exchange a username and password for a bearer token (also set as a session cookie)."""
    name = form.username.lower()[:MAX_USERNAME]
    address = client_address(request)
    limits = (
        settings.login_attempts,
        settings.login_account_attempts,
        settings.login_client_attempts,
    )
    wait = limiter.blocked_for(name, address, limits, settings.login_window_s)
    if wait > 0:
        raise too_many(wait)
    if len(form.username) > MAX_USERNAME or len(form.password) > MAX_PASSWORD:
        # no such account can exist: refused without the cost of a hash, and counted
        limiter.failed(name, address, limits)
        raise WRONG_PASSWORD
    try:
        user = await users.authenticate(form.username, form.password)
    except HashingBusyError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="Trop de connexions en cours : réessayez dans quelques secondes.",
            headers={"Retry-After": "2"},
        ) from None
    if user is None:
        limiter.failed(name, address, limits)
        raise WRONG_PASSWORD
    limiter.succeeded(name, address)
    token = create_access_token(
        user.username, user.role.value, settings.jwt_secret.get_secret_value(), settings.token_ttl_s
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.token_ttl_s,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
    )
    return Token(access_token=token, expires_in=settings.token_ttl_s)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(422))
async def logout(
    request: Request,
    response: Response,
    settings: SettingsDep,
    users: UsersDep,
    sessions: SessionsDep,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> None:
    """End the session: its token (bearer or cookie) is refused from now on, the
    WebSockets and streams opened with it are closed, and the cookie is forgotten."""
    found = await session_from_token(bearer or session, settings, users)
    if found is not None:
        user, claims = found
        await users.revoke(user.username, claims.token_id, claims.expires_at)
        sessions.end(user.username, claims.token_id)
    response.delete_cookie(SESSION_COOKIE)


class WsTicket(BaseModel):
    ticket: str
    expires_in: int


@router.post("/auth/ws-ticket", response_model=WsTicket, responses=AUTHENTICATED)
async def ws_ticket(current: CurrentSession, settings: SettingsDep) -> WsTicket:
    """A ticket to open `/ws?ticket=...`: good for one handshake within 30 s, so that the
    URL, which access logs keep, never holds the access token itself."""
    _, claims = current
    ticket = create_ws_ticket(claims, settings.jwt_secret.get_secret_value())
    return WsTicket(ticket=ticket, expires_in=WS_TICKET_TTL_S)


@router.get("/me", response_model=Me, responses=AUTHENTICATED)
async def me(user: CurrentUser) -> Me:
    return Me(username=user.username, role=user.role.value)
