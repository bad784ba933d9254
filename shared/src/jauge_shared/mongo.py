"""The one way services open MongoDB (or FerretDB): PyMongo's asyncio client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any, TypeVar

import pymongo
from prometheus_client import Counter
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

# the store's half of the one transient rule (jauge_shared.errors), where callers find it
from jauge_shared.errors import store_unavailable as store_unavailable
from jauge_shared.identity import connection_name
from jauge_shared.settings import ServiceSettings

T = TypeVar("T")
R = TypeVar("R")


STORE_COMMANDS = Counter(
    "jauge_store_commands_total",
    "Commands this process sent to the store, by command name and outcome (ok, failed): "
    "its round trips to MongoDB/FerretDB, reads and writes apart.",
    ["command", "outcome"],
)


class StoreCommandCounter(monitoring.CommandListener):
    """Counts each command the driver sends, once it has its answer (or none)."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        STORE_COMMANDS.labels(event.command_name, "ok").inc()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        STORE_COMMANDS.labels(event.command_name, "failed").inc()


def make_mongo_client(settings: ServiceSettings, service: str) -> AsyncMongoClient[dict[str, Any]]:
    """A client named after the process, so server logs show who is connected.

    Opening is lazy: nothing touches the network until the first operation, so this
    is safe to call in a lifespan even while the store is still starting.

    `mongo_socket_timeout_ms` bounds the wait for an answer: without it a store that
    accepts connections and then says nothing (a partition, a hung process) holds every
    caller forever, since the driver sets no socket timeout by default. It is not the
    driver's `timeoutMS`, which retries a read for as long as it lasts: a store that is
    plainly away would then cost every request the whole budget instead of the server
    selection's few seconds.

    Every command is counted (`jauge_store_commands_total`): a service's round trips to
    the store are what its speed depends on (docs/performance.md).
    """
    options: dict[str, Any] = {}
    if settings.mongo_socket_timeout_ms is not None:
        options["socketTimeoutMS"] = settings.mongo_socket_timeout_ms
    return AsyncMongoClient(
        str(settings.mongo_url),
        appname=connection_name(service),
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_timeout_ms,
        tz_aware=True,
        event_listeners=[StoreCommandCounter()],
        **options,
    )


def within_caller_deadline(
    expiration: object, default_s: float = 5.0
) -> AbstractContextManager[None]:
    """Store operations of a request/reply handler bounded by the caller's patience.

    The gateway sends each request with an AMQP expiration (aio-pika gives it in
    seconds) equal to how long it waits for the reply. With its store operations
    given most of that (the driver's `timeoutMS`), a handler whose store is away or
    silent answers "unavailable" while the caller still listens, rather than a reply
    nobody reads after a 504.
    """
    if isinstance(expiration, timedelta):
        expiration = expiration.total_seconds()
    patience = float(expiration) if isinstance(expiration, int | float) else default_s
    # half a second kept for the reply's way back (half the patience when it is short)
    return pymongo.timeout(max(0.5 * patience, patience - 0.5))


def database_name(settings: ServiceSettings, service: str) -> str:
    """`jauge_import`, `jauge_colis`, ...: each service owns exactly one database."""
    return f"{settings.db_prefix}_{service}"


async def gather_in_chunks(
    items: Sequence[T], call: Callable[[T], Awaitable[R]], size: int = 32
) -> list[R]:
    """`call` on every item, `size` at a time, results in the items' order.

    For many point operations by `_id`, which FerretDB answers from its index while it
    scans for any other filter: concurrent enough to overlap round trips, bounded so
    one caller does not flood the store's connection pool.
    """
    results: list[R] = []
    for start in range(0, len(items), size):
        results += await asyncio.gather(*(call(item) for item in items[start : start + size]))
    return results


# more keys than this may be read as one range of `_id`s (`read_keyed`)
RANGE_READ_FROM = 64


async def read_keyed(
    collection: AsyncCollection[dict[str, Any]],
    prefix: str,
    keys: Sequence[str],
    *,
    of_prefix: int,
) -> dict[str, dict[str, Any]]:
    """The documents `{prefix}{key}` of `keys` that exist, by key; `of_prefix`: how many
    documents have `_id`s with that prefix in all (an import's files: `{job_id}/`).

    A few are read one by one (`gather_in_chunks`). Many, a good share of the prefix's,
    are read as one range of `_id`s, which FerretDB reads from its index in one round
    trip: an import's 5,005 files read by `_id` took longer than the gateway waits for
    their report. The range returns every document of the prefix, so a few keys among
    many are still read one by one. A key the range did not return (FerretDB compares
    `_id`s by their JSON text, deploy/local/ferretdb-sqlite-id-range.patch) is read again
    by `_id`. `prefix` must end with "/": "0", the character after it, ends the range.
    """
    if not prefix.endswith("/"):
        raise ValueError(f"a key prefix ends with '/': {prefix!r}")
    wanted = set(keys)
    read: dict[str, dict[str, Any]] = {}
    if len(keys) > RANGE_READ_FROM and len(keys) * 3 >= of_prefix:
        ids = {"$gte": prefix, "$lt": prefix[:-1] + "0"}
        async for doc in collection.find({"_id": ids}):
            key = doc["_id"][len(prefix) :]
            if key in wanted:
                read[key] = doc
    rest = [key for key in keys if key not in read]
    found = await gather_in_chunks(rest, lambda key: collection.find_one({"_id": prefix + key}))
    read |= {key: doc for key, doc in zip(rest, found, strict=True) if doc is not None}
    return read


async def upsert_one(
    collection: AsyncCollection[dict[str, Any]],
    filter_: dict[str, Any],
    update: dict[str, Any],
    *,
    replace: bool = False,
) -> UpdateResult:
    """An upsert by `_id` that two writers may send at the same instant.

    Both may find no document and both insert: one wins, the other gets
    DuplicateKeyError. MongoDB retries such an upsert itself; FerretDB does not. The
    loser's write changed nothing, and the document now exists, so sending it once
    more is an update that applies it (an `$inc` is counted once, not lost).
    """
    write = collection.replace_one if replace else collection.update_one
    try:
        return await write(filter_, update, upsert=True)
    except DuplicateKeyError:
        return await write(filter_, update, upsert=True)
