"""Chains of links read by `_id`: the audit trail's and the lot index's.

FerretDB serves only lookups by `_id` from an index (docs/decisions.md), so a list that
grows is kept as links `<chain>:<n>`, each inserted once: a unique insert decides which
writer gets a number, never a counter updated in place.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


async def append_link(
    links: AsyncCollection[dict[str, Any]],
    heads: AsyncCollection[dict[str, Any]],
    chain: str,
    fields: dict[str, Any],
) -> int:
    """Add a link at the chain's end; its number. The head says where to start looking."""
    head = await heads.find_one({"_id": chain})
    n = int(head["next"]) if head else 1
    while True:
        try:
            await links.insert_one({"_id": f"{chain}:{n}", **fields})
            break
        except DuplicateKeyError:
            n += 1  # another writer took it: the next one
    # a hint only: racing writers may leave it behind the end, never past it
    with contextlib.suppress(DuplicateKeyError):
        await heads.update_one({"_id": chain}, {"$max": {"next": n + 1}}, upsert=True)
    return n
