"""Dependencies of the routes, as narrow `Annotated` aliases: a route names the parts it
uses (the settings, the progress view, the RPC client...), never the whole state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Cookie, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, cookie_parser
from starlette.types import Scope

from gateway.colis_rpc import LotChecks
from gateway.commands import Publishers
from gateway.handover import Buckets
from gateway.hub import Hub
from gateway.notifications import NotificationStore
from gateway.photo_handovers import PhotoHandovers
from gateway.productivity import Productivity
from gateway.progress_view import ProgressView
from gateway.rpc import RpcClient
from gateway.security import ACCESS, InvalidTokenError, TokenClaims, decode_access_token
from gateway.sessions import SessionWatch
from gateway.settings import GatewaySettings
from gateway.users import User, UserRepository, still_valid

SESSION_COOKIE = "jauge_session"
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def _part(name: str) -> Callable[[HTTPConnection], Awaitable[Any]]:
    """A dependency answering one part of what the gateway opened at start-up.

    `async` though it awaits nothing: FastAPI runs a plain `def` dependency in its
    thread pool, and a parcel form named five of these (issue 18: 15% of the gateway's
    time under load went into those thread hops and their locks)."""

    async def get(connection: HTTPConnection) -> Any:
        return getattr(connection.app.state.gateway, name)

    get.__name__ = f"get_{name}"
    return get


SettingsDep = Annotated[GatewaySettings, Depends(_part("settings"))]
UsersDep = Annotated[UserRepository, Depends(_part("users"))]
ViewDep = Annotated[ProgressView, Depends(_part("view"))]
HubDep = Annotated[Hub, Depends(_part("hub"))]
SessionsDep = Annotated[SessionWatch, Depends(_part("sessions"))]
RpcDep = Annotated[RpcClient, Depends(_part("rpc"))]
PublishersDep = Annotated[Publishers, Depends(_part("publishers"))]
BrokerDep = Annotated[RabbitBroker, Depends(_part("broker"))]
BucketsDep = Annotated[Buckets, Depends(_part("buckets"))]
HandoversDep = Annotated[PhotoHandovers, Depends(_part("handovers"))]
NotificationsDep = Annotated[NotificationStore, Depends(_part("notifications"))]
ProductivityDep = Annotated[Productivity, Depends(_part("productivity"))]


async def _lot_checks(connection: HTTPConnection) -> LotChecks:
    """Made with the app (`create_app`), as the login limiter: no store or broker behind."""
    checks: LotChecks = connection.app.state.lot_checks
    return checks


LotChecksDep = Annotated[LotChecks, Depends(_lot_checks)]
MongoDep = Annotated[AsyncMongoClient[dict[str, Any]], Depends(_part("mongo"))]

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="Authentification requise : connectez-vous.",
    headers={"WWW-Authenticate": "Bearer"},
)


async def session_from_token(
    token: str | None, settings: GatewaySettings, users: UserRepository, kind: str = ACCESS
) -> tuple[User, TokenClaims] | None:
    """The user and claims of a valid token: signed, unexpired, of an enabled user, and
    not revoked by a logout."""
    if not token:
        return None
    try:
        claims = decode_access_token(token, settings.jwt_secret.get_secret_value(), kind)
    except InvalidTokenError:
        return None
    user = await users.get(claims.username)
    if not still_valid(user, claims):
        return None
    assert user is not None
    return user, claims


async def user_from_token(
    token: str | None, settings: GatewaySettings, users: UserRepository
) -> User | None:
    session = await session_from_token(token, settings, users)
    return session[0] if session else None


def token_of_scope(scope: Scope) -> str | None:
    """The bearer token of a request, else its session cookie (as `get_current_user`)."""
    headers = Headers(scope=scope)
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)


# the request's user as the upload routes' middleware found it: (token, user)
_USER_OF_REQUEST = "jauge.user"


async def username_of_scope(scope: Scope) -> str | None:
    """Who sends this request, read before its body (the upload routes' middleware).
    Kept in the request's state for `get_current_user`: one read of the user a request,
    not two, on a store that is the bottleneck under load (docs/performance.md)."""
    gateway = scope["app"].state.gateway
    token = token_of_scope(scope)
    user = await user_from_token(token, gateway.settings, gateway.users)
    scope.setdefault("state", {})[_USER_OF_REQUEST] = (token, user)
    return user.username if user else None


async def get_current_user(
    connection: HTTPConnection,
    settings: SettingsDep,
    users: UsersDep,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> User:
    token = bearer or session
    found: tuple[str | None, User | None] | None = connection.scope.get("state", {}).get(
        _USER_OF_REQUEST
    )
    user: User | None
    if found is not None and found[0] == token:
        user = found[1]
    else:
        user = await user_from_token(token, settings, users)
    if user is None:
        raise UNAUTHORIZED
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_session(
    settings: SettingsDep,
    users: UsersDep,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> tuple[User, TokenClaims]:
    found = await session_from_token(bearer or session, settings, users)
    if found is None:
        raise UNAUTHORIZED
    return found


CurrentSession = Annotated[tuple[User, TokenClaims], Depends(get_current_session)]
