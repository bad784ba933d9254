"""Passwords (argon2 via pwdlib) and access tokens (JWT via PyJWT)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash

_passwords = PasswordHash.recommended()
ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    return _passwords.verify(password, hashed)


@dataclass(frozen=True)
class TokenClaims:
    username: str
    role: str
    expires_at: datetime


class InvalidTokenError(Exception):
    pass


def create_access_token(username: str, role: str, secret: str, ttl_s: int) -> str:
    now = datetime.now(UTC)
    payload = {"sub": username, "role": role, "iat": now, "exp": now + timedelta(seconds=ttl_s)}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, secret: str) -> TokenClaims:
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as e:
        raise InvalidTokenError(str(e)) from e
    return TokenClaims(
        username=str(payload["sub"]),
        role=str(payload.get("role", "agent")),
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )
