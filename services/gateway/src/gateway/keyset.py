"""Paged lists: `?cursor=` in, `next_cursor` out, read by keyset, never by offset.

A page is the next `limit` documents after the last one shown, in the order of a sort
key and `_id` (the tie-break that makes the order total): a range on an indexed key,
so reading page 100 costs what reading page 1 does, and a document inserted meanwhile
shifts nothing. The cursor is that last document's (key, `_id`), opaque to clients
(base64 of JSON); one that does not decode is a 400.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import HTTPException, Query

from gateway.errors import error_responses

BAD_CURSOR = HTTPException(
    400, detail="Curseur de pagination invalide : repartez de la première page."
)

BAD_CURSOR_RESPONSE = error_responses(400, e400="A cursor that is not one of ours")
Cursor = Annotated[
    str | None,
    Query(
        max_length=4096,  # a list key holds a quoted owner (up to 64 characters)
        pattern=r"^[A-Za-z0-9_-]+={0,2}$",
        description="`next_cursor` of the previous page; absent for the first page",
    ),
]


def encode(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    shown = value.isoformat() if isinstance(value, datetime) else value
    raw = orjson.dumps([shown, isinstance(value, datetime), doc["_id"]])
    return base64.urlsafe_b64encode(raw).decode()


def decode(cursor: str) -> tuple[Any, str]:
    """The (sort key, `_id`) a cursor holds; BAD_CURSOR if it is not one of ours."""
    try:
        shown, is_date, last_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        value = datetime.fromisoformat(shown) if is_date else shown
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as e:
        raise BAD_CURSOR from e
    if not isinstance(last_id, str) or (is_date and value.tzinfo is None):
        raise BAD_CURSOR
    return value, last_id


def after(cursor: str | None, key: str, direction: int) -> dict[str, Any]:
    """The filter of what comes after the cursor, in `(key, _id)` order `direction`."""
    if cursor is None:
        return {}
    value, last_id = decode(cursor)
    beyond = "$lt" if direction < 0 else "$gt"
    return {"$or": [{key: {beyond: value}}, {key: value, "_id": {beyond: last_id}}]}


def sort(key: str, direction: int) -> list[tuple[str, int]]:
    return [(key, direction), ("_id", direction)]


def page(
    docs: list[dict[str, Any]], limit: int, key: str
) -> tuple[list[dict[str, Any]], str | None]:
    """`docs` read with `limit + 1`: the page, and the cursor of the next one if any."""
    if len(docs) <= limit:
        return docs, None
    return docs[:limit], encode(docs[limit - 1], key)


def key_cursor(key: str) -> str:
    """A cursor of a list read in `_id` order alone (another service's, which names the
    last key of its page)."""
    return encode({"_id": key}, "_id")


def after_key(cursor: str | None) -> str | None:
    return decode(cursor)[1] if cursor is not None else None
