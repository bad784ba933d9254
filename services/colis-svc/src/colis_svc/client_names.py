"""The clients list, by name, read as a range of `_id`s.

A sort of `clients` on `name` reads the whole collection on FerretDB (docs/decisions.md,
"The progress lists are entries read by `_id` range"). So each client has an entry in
`client_names` whose `_id` is its name as sortable text, then its id: the hex of the
case-folded name's UTF-8 (hex sorts as the bytes do, and never holds a character the
range read cannot compare), `|`, the id. The list is a range of those, in order.

An entry is added before its client is stored or renamed, the old one removed after: a
crash in between leaves an entry too many, which readers drop (its client's name no
longer gives it), never a client missing from the list.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from jauge_shared.mongo import gather_in_chunks

logger = logging.getLogger("colis_svc")
Doc = dict[str, Any]
LISTED = "~listed"  # after every entry (hex and `|` sort before `~`): all are listed
END = "~"
BATCH = 200


def name_key(name: str, client_id: str) -> str:
    return f"{name.casefold().encode().hex()}|{client_id}"


def _key_of(client: Doc) -> str:
    return name_key(str(client.get("name") or ""), str(client["_id"]))


class ClientNames:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.names = db["client_names"]
        self.clients = db["clients"]

    async def add(self, client_id: str, name: str) -> None:
        with contextlib.suppress(DuplicateKeyError):  # a retried write
            await self.names.insert_one({"_id": name_key(name, client_id)})

    async def remove(self, client_id: str, name: str) -> None:
        await self.names.delete_one({"_id": name_key(name, client_id)})

    async def first(self, limit: int) -> list[Doc]:
        """The first `limit` clients by name; entries whose client has another name now
        (or none) are skipped."""
        shown: list[Doc] = []
        after: str | None = None
        while len(shown) < limit:
            bound = {"$gt": after} if after is not None else {"$gte": ""}
            found = (
                self.names.find({"_id": {**bound, "$lt": END}}, {"_id": True})
                .sort("_id", 1)
                .limit(BATCH)
            )
            keys = [str(entry["_id"]) async for entry in found]
            clients = await gather_in_chunks(
                keys, lambda key: self.clients.find_one({"_id": key.split("|", 1)[1]})
            )
            shown += [
                client
                for key, client in zip(keys, clients, strict=True)
                if client is not None and _key_of(client) == key
            ]
            if len(keys) < BATCH:
                break
            after = keys[-1]
        return shown[:limit]

    async def list_unlisted(self) -> None:
        """The clients of a store written before the list: one read of them, once."""
        if await self.names.find_one({"_id": LISTED}) is not None:
            return
        async for client in self.clients.find({}, {"name": True}):
            with contextlib.suppress(DuplicateKeyError):
                await self.names.insert_one({"_id": _key_of(client)})
        with contextlib.suppress(DuplicateKeyError):
            await self.names.insert_one({"_id": LISTED})
