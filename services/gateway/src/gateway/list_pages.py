"""A page of a progress list, read as a range of its entries' `_id`s, then the documents
by `_id` (jauge_shared.contracts.progress_lists): the only reads FerretDB answers from an
index, so a page costs the same on the first day and after a year of history.

An entry is a hint: a document is shown only if it still has that entry
(`list_keys(doc)`), which drops the entries a crash left behind. The other filters
(a status, a lot, a client) are applied to the documents; a page that finds few of them
stops after `EXAMINED_PER_PAGE` entries, with a cursor, rather than reading back through
all history (a short page then, never a long one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from jauge_shared.contracts.progress_lists import END, job_id_of, list_keys
from jauge_shared.mongo import gather_in_chunks

Doc = dict[str, Any]
EXAMINED_PER_PAGE = 1_000
BATCH = 100  # entries read at once: a page of 20 with few misses is one read
CONCURRENT_READS = 16


@dataclass(frozen=True)
class Range:
    """Entries from `low` (inclusive, or exclusive once a page went past it) to `high`
    (exclusive), newest first or oldest."""

    low: str
    high: str
    newest_first: bool
    past_low: bool = False

    @classmethod
    def of(cls, prefix: str, newest_first: bool, since: str = "", until: str = END) -> Range:
        """The entries of a list's prefix, sorted keys from `since` to before `until`."""
        return cls(prefix + since, prefix + until, newest_first)

    def after(self, key: str | None) -> Range:
        """What comes after `key` in reading order."""
        if key is None:
            return self
        if self.newest_first:
            return Range(self.low, min(self.high, key), True)
        if key < self.low:
            return self
        # `$gt` the key, not `$gte` the key and a NUL: the range is compared as JSON
        # text on FerretDB, where a NUL is escaped (ferretdb-sqlite-id-range.patch)
        return Range(key, self.high, False, past_low=True)


class ListPages:
    def __init__(self, lists: AsyncCollection[Doc], progress: AsyncCollection[Doc]) -> None:
        self.lists = lists
        self.progress = progress

    async def keys(self, where: Range, limit: int) -> list[str]:
        found = (
            self.lists.find(
                {"_id": {"$gt" if where.past_low else "$gte": where.low, "$lt": where.high}},
                {"_id": True},
            )
            .sort("_id", -1 if where.newest_first else 1)
            .limit(limit)
        )
        return [str(entry["_id"]) async for entry in found]

    async def documents(self, keys: list[str]) -> list[Doc | None]:
        """Each entry's document if it still has that entry; None otherwise."""

        async def read(key: str) -> Doc | None:
            doc = await self.progress.find_one({"_id": job_id_of(key)})
            return doc if doc is not None and key in list_keys(doc) else None

        return await gather_in_chunks(keys, read, size=CONCURRENT_READS)

    async def page(
        self, where: Range, cursor: str | None, limit: int, accept: Callable[[Doc], bool]
    ) -> tuple[list[Doc], str | None]:
        """Up to `limit` documents `accept` takes, and the key to go on from (None at the
        end). `cursor`: the key the previous page went on from."""
        shown: list[Doc] = []
        where, examined, last = where.after(cursor), 0, None
        while examined < EXAMINED_PER_PAGE:
            keys = await self.keys(where, min(BATCH, EXAMINED_PER_PAGE - examined))
            for key, doc in zip(keys, await self.documents(keys), strict=True):
                examined += 1
                if doc is not None and accept(doc):
                    if len(shown) == limit:  # one more than the page: there is a next
                        return shown, last
                    shown.append(doc)
                last = key
            if len(keys) < BATCH:
                return shown, None
            where = where.after(last)
        return shown, last

    async def every_document(self, where: Range) -> list[Doc]:
        """Every document of a range that still has its entry (a day's tasks, the
        tasks now running: ranges bounded by the work, not by history)."""
        docs: list[Doc] = []
        while keys := await self.keys(where, BATCH):
            docs += [doc for doc in await self.documents(keys) if doc is not None]
            if len(keys) < BATCH:
                break
            where = where.after(keys[-1])
        return docs
