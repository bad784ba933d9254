"""Login (OAuth2 password form), logout, and who am I."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from gateway.deps import SESSION_COOKIE, CurrentUser, SettingsDep, UsersDep
from gateway.errors import AUTHENTICATED, error_responses
from gateway.security import create_access_token

router = APIRouter(prefix="/api", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    username: str
    role: str


class LoginRateLimiter:
    """Sliding window of failed logins per (user, address); in memory, per replica."""

    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def blocked_for(self, key: tuple[str, str], limit: int, window_s: float) -> float:
        now = time.monotonic()
        failures = self._failures[key]
        while failures and now - failures[0] > window_s:
            failures.popleft()
        if len(failures) >= limit:
            return window_s - (now - failures[0])
        return 0.0

    def failed(self, key: tuple[str, str]) -> None:
        self._failures[key].append(time.monotonic())

    def succeeded(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)


limiter = LoginRateLimiter()


@router.post(
    "/auth/token",
    response_model=Token,
    responses=error_responses(401, 422, 429, e401="Wrong username or password"),
)
async def login(
    request: Request,
    response: Response,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    users: UsersDep,
    settings: SettingsDep,
) -> Token:
    """Exchange a username and password for a bearer token (also set as a session cookie)."""
    key = (form.username.lower(), request.client.host if request.client else "?")
    wait = limiter.blocked_for(key, settings.login_attempts, settings.login_window_s)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Trop de tentatives de connexion : réessayez dans {int(wait) + 1} s.",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = await users.authenticate(form.username, form.password)
    if user is None:
        limiter.failed(key)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Identifiant ou mot de passe incorrect.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    limiter.succeeded(key)
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


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(response: Response) -> None:
    """Forget the session cookie (bearer tokens simply expire)."""
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me", response_model=Me, responses=AUTHENTICATED)
async def me(user: CurrentUser) -> Me:
    return Me(username=user.username, role=user.role.value)
