"""Dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Cookie, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from pymongo.asynchronous.collection import AsyncCollection

from gateway.durations import RecentDurations
from gateway.security import InvalidTokenError, decode_access_token
from gateway.settings import GatewaySettings
from gateway.state import GatewayState
from gateway.users import User, UserRepository

SESSION_COOKIE = "jauge_session"
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]


def get_settings(state: StateDep) -> GatewaySettings:
    return state.settings


def get_users(state: StateDep) -> UserRepository:
    return state.users


def get_progress(state: StateDep) -> AsyncCollection[dict[str, Any]]:
    return state.progress


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
UsersDep = Annotated[UserRepository, Depends(get_users)]
ProgressDep = Annotated[AsyncCollection[dict[str, Any]], Depends(get_progress)]


def get_durations(state: StateDep) -> RecentDurations:
    return state.durations


DurationsDep = Annotated[RecentDurations, Depends(get_durations)]

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="Authentification requise : connectez-vous.",
    headers={"WWW-Authenticate": "Bearer"},
)


async def user_from_token(
    token: str | None, settings: GatewaySettings, users: UserRepository
) -> User | None:
    if not token:
        return None
    try:
        claims = decode_access_token(token, settings.jwt_secret.get_secret_value())
    except InvalidTokenError:
        return None
    user = await users.get(claims.username)
    if user is None or user.disabled:
        return None
    return user


async def get_current_user(
    settings: SettingsDep,
    users: UsersDep,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> User:
    user = await user_from_token(bearer or session, settings, users)
    if user is None:
        raise UNAUTHORIZED
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
