"""The shape of every error the API answers, for the OpenAPI document.

The bodies themselves come from `HTTPException(detail=...)` and the handlers in
`gateway.error_handlers`; this module only says, route by route, which statuses can happen and
what they look like, so a client generated from /openapi.json knows them all.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# what every route answers, with a 503, while the store (FerretDB/MongoDB) is away or
# does not answer: the request changed nothing and can be sent again
STORE_UNAVAILABLE = (
    "Service momentanément indisponible : la base de données ne répond pas, "
    "réessayez dans un instant."
)
STORE_RETRY_AFTER_S = 2


class ErrorBody(BaseModel):
    detail: str = Field(
        description="What went wrong, in French, ready to show to the user.",
        examples=["Tâche introuvable."],
    )


class FieldProblem(BaseModel):
    field: str = Field(examples=["poids"])
    message: str = Field(examples=["doit être supérieur à 0"])


class InvalidRequestBody(ErrorBody):
    errors: list[FieldProblem] = Field(description="One entry per field refused.")


WHEN: dict[int, str] = {
    400: "Unreadable request (no file, a name with a folder in it, not multipart...)",
    401: "No token, or an expired or invalid one",
    403: "The caller's role does not allow it",
    404: "Not found, or not the caller's (the same answer, so ids leak nothing)",
    409: "The current state does not allow it",
    413: "Body, file or photo over its limit",
    415: "Unsupported media type",
    422: "A field is missing or out of range",
    429: "Too many attempts; `Retry-After` says when to try again",
    503: "A service, the broker or the store is unreachable: nothing was accepted, try again",
    504: "A service did not answer in time",
}


def error_responses(*codes: int, **when: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: each status with its body and meaning.

    `when` overrides a meaning for this route, keyed `e409="Lot closed"`.
    """
    return {
        code: {
            "model": InvalidRequestBody if code == 422 else ErrorBody,
            "description": when.get(f"e{code}", WHEN[code]),
        }
        for code in codes
    }


# what any authenticated route may answer; routes add their own
AUTHENTICATED = error_responses(401, 422)
# reads and commands that go through the broker
THROUGH_BROKER = error_responses(503, 504)
