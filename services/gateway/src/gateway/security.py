"""Passwords (argon2 via pwdlib) and access tokens (JWT via PyJWT)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import jwt
from pwdlib import PasswordHash

_passwords = PasswordHash.recommended()
ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    return _passwords.verify(password, hashed)


class HashingBusyError(Exception):
    """More password checks waiting than the gateway takes on: the login gets a 503."""


class PasswordWorkers:
    """Password checks in a few threads, never on the event loop.

    An argon2 check costs tens of milliseconds of CPU by design: on the loop, a few
    dozen logins a second stalled every socket of the replica. In threads (argon2
    releases the GIL) the loop keeps serving; the pool's size caps the CPU that logins
    take, and past `queue` waiting checks a login is refused at once instead of piling up.
    """

    def __init__(self, concurrency: int, queue: int) -> None:
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="password")
        self._limit = concurrency + queue
        self.in_use = 0

    async def verify(self, password: str, hashed: str) -> bool:
        if self.in_use >= self._limit:
            raise HashingBusyError
        self.in_use += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, verify_password, password, hashed)
        finally:
            self.in_use -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


ACCESS = "access"
WS_TICKET = "ws"  # a short-lived token that only opens /ws, safe in a URL
WS_TICKET_TTL_S = 30


@dataclass(frozen=True)
class TokenClaims:
    username: str
    role: str
    expires_at: datetime
    # the id of the session (the access token's id; a ticket carries its token's), so
    # that a logout revokes the token and every socket opened with it
    token_id: str = ""
    # when the session ends: the token's own expiry, or for a ticket its token's
    session_expires_at: datetime | None = None

    @property
    def session_end(self) -> datetime:
        return self.session_expires_at or self.expires_at


class InvalidTokenError(Exception):
    pass


def create_access_token(username: str, role: str, secret: str, ttl_s: int) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": username,
        "role": role,
        "typ": ACCESS,
        "jti": uuid4().hex,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def create_ws_ticket(claims: TokenClaims, secret: str, ttl_s: int = WS_TICKET_TTL_S) -> str:
    """A ticket for one WebSocket handshake, of the session `claims` belong to.

    Query strings end up in access logs (the proxy's, if not ours): a ticket found there
    is worthless a few seconds later, where an access token would open the API for
    half an hour.
    """
    now = datetime.now(UTC)
    payload = {
        "sub": claims.username,
        "role": claims.role,
        "typ": WS_TICKET,
        "jti": claims.token_id,
        "sxp": int(claims.session_end.timestamp()),
        "iat": now,
        "exp": min(now + timedelta(seconds=ttl_s), claims.session_end),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, secret: str, kind: str = ACCESS) -> TokenClaims:
    """The claims of a token of `kind`; a ticket is no access token, nor the reverse."""
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as e:
        raise InvalidTokenError(str(e)) from e
    if payload.get("typ", ACCESS) != kind:
        raise InvalidTokenError(f"not a token of kind {kind}")
    session_end = payload.get("sxp")
    return TokenClaims(
        username=str(payload["sub"]),
        role=str(payload.get("role", "agent")),
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        token_id=str(payload.get("jti", "")),
        session_expires_at=datetime.fromtimestamp(session_end, UTC) if session_end else None,
    )
