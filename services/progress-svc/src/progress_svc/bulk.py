"""Unordered bulk writes to FerretDB in pieces it can take, with each failure by index:
the progress documents' and their entries' (repository.py, lists.py)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, OperationFailure

from progress_svc.aggregate import Document

# FerretDB 1.24 (SQLite) keeps a connection of its pool (100) for each statement of an
# update or delete command until the whole command ends: a bulk of 100 waits for
# itself, and every request to the database with it, for good (seen, goroutine dump)
BULK_OPS = 32
DUPLICATE_KEY = 11000


async def bulk(
    collection: AsyncCollection[Document], ops: list[Any], tolerate: tuple[int, ...] = ()
) -> tuple[int, dict[int, OperationFailure]]:
    """Unordered bulk writes of at most `BULK_OPS` operations each: the documents their
    filters matched, and each failed operation's error by its index in `ops` (those
    with a code in `tolerate` left out)."""
    matched = 0
    errors: dict[int, OperationFailure] = {}
    for start in range(0, len(ops), BULK_OPS):
        try:
            result = await collection.bulk_write(ops[start : start + BULK_OPS], ordered=False)
        except BulkWriteError as e:
            details = e.details
            matched += int(details.get("nMatched", 0))
            errors.update(
                {
                    start + error["index"]: OperationFailure(
                        error.get("errmsg", ""), error.get("code"), error
                    )
                    for error in details.get("writeErrors", [])
                    if error.get("code") not in tolerate
                }
            )
        else:
            matched += result.matched_count
    return matched, errors
