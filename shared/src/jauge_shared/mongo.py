"""The one way services open MongoDB (or FerretDB): PyMongo's asyncio client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pymongo import AsyncMongoClient

from jauge_shared.identity import connection_name
from jauge_shared.settings import ServiceSettings

T = TypeVar("T")
R = TypeVar("R")


def make_mongo_client(settings: ServiceSettings, service: str) -> AsyncMongoClient[dict[str, Any]]:
    """A client named after the process, so server logs show who is connected.

    Opening is lazy: nothing touches the network until the first operation, so this
    is safe to call in a lifespan even while the store is still starting.
    """
    return AsyncMongoClient(
        str(settings.mongo_url),
        appname=connection_name(service),
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_timeout_ms,
        tz_aware=True,
    )


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
