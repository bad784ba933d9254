"""The one way services open MongoDB (or FerretDB): PyMongo's asyncio client."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

from jauge_shared.identity import connection_name
from jauge_shared.settings import ServiceSettings


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
