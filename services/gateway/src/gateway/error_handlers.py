"""How the gateway answers an error: `{"detail": ...}` in French with the right status
(and `errors` for a 422), a 503 the client may retry when the store is away, never a
stack trace, whichever route or middleware raised it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from gateway.errors import STORE_RETRY_AFTER_S, STORE_UNAVAILABLE
from jauge_shared.blobs import BlobBeingWritten
from jauge_shared.mongo import store_unavailable

logger = logging.getLogger("gateway")


def install_error_handlers(app: FastAPI) -> None:
    """Errors are `{"detail": ...}` with the right status, never a stack trace."""

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"][1:]) or "body", "message": err["msg"]}
            for err in exc.errors()[:20]
        ]
        return JSONResponse(
            {"detail": "Requête invalide : vérifiez les champs indiqués.", "errors": problems},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return JSONResponse(
                {"detail": "Méthode non permise sur cette ressource."},
                status_code=405,
                headers={"Allow": ", ".join(allowed_methods(app, request.scope))},
            )
        if unreadable_body(exc):
            return JSONResponse(
                {
                    "detail": "Requête invalide : le corps de la requête est illisible.",
                    "errors": [{"field": "body", "message": "corps illisible"}],
                },
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(PyMongoError)
    async def on_store_error(request: Request, exc: PyMongoError) -> JSONResponse:
        """The store away (killed, unreachable, or holding the connection without an
        answer until the driver's timeouts) is a 503 the client may retry, from any
        route and from the authentication that runs before it; not a 500."""
        if store_unavailable(exc):
            STORE_ERRORS.labels(type(exc).__name__).inc()
            logger.warning(
                "store unavailable", extra={"path": request.url.path, "error": repr(exc)[:300]}
            )
            return store_unavailable_response()
        logger.error("store error", exc_info=exc, extra={"path": request.url.path})
        return JSONResponse({"detail": INTERNAL_ERROR}, 500)

    @app.exception_handler(BlobBeingWritten)
    async def on_blob_being_written(request: Request, exc: BlobBeingWritten) -> JSONResponse:
        """A file whose earlier try was cut off in the store a moment ago (a last chunk
        sent again at once after a store fault): the client tries again shortly."""
        return JSONResponse(
            {"detail": BLOB_BEING_WRITTEN},
            503,
            headers={"Retry-After": str(BLOB_RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, HTTPException):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        return JSONResponse({"detail": INTERNAL_ERROR}, 500)


INTERNAL_ERROR = "Erreur interne : l'incident a été enregistré."
BLOB_BEING_WRITTEN = "Fichier en cours d'enregistrement : renvoyez-le dans un instant."
BLOB_RETRY_AFTER_S = 10
STORE_ERRORS = Counter(
    "jauge_gateway_store_unavailable_total",
    "Requests answered 503 because the store was away or too slow, by driver error.",
    ["error"],
)


def store_unavailable_response() -> JSONResponse:
    return JSONResponse(
        {"detail": STORE_UNAVAILABLE},
        503,
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route takes at this path: Starlette's 405 names only those of
    the first route that matched the path (GET /api/lots and POST /api/lots are two).
    Asked of the routes themselves (`matches`), whatever the way they were included."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed


# What FastAPI raises, in English and as an undocumented 400, when a body cannot even be
# decoded (bytes that are not UTF-8 under a JSON content type, a broken multipart).
_FASTAPI_UNREADABLE_BODY = "There was an error parsing the body"


def unreadable_body(exc: StarletteHTTPException) -> bool:
    """A body that cannot be decoded is a 422 like malformed JSON (FastAPI's json_invalid),
    with the same French shape, rather than FastAPI's English 400 that no route documents."""
    return exc.status_code == 400 and exc.detail == _FASTAPI_UNREADABLE_BODY
