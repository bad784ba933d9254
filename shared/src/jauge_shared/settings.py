"""The settings every service shares; each service subclasses `ServiceSettings`.

Values come from the environment (prefix ``JAUGE_``) and are validated at start-up,
so a bad value stops the process with a clear message instead of failing later.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AmqpDsn,
    AnyHttpUrl,
    Field,
    MongoDsn,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

_AMQP_DSN: TypeAdapter[AmqpDsn] = TypeAdapter(AmqpDsn)


def _amqp_urls(value: str) -> str:
    """Each comma-separated URL checked as an AMQP URL; the list comes back normalised."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    if not urls:
        raise ValueError("at least one AMQP URL is needed")
    return ",".join(str(_AMQP_DSN.validate_python(url)) for url in urls)


# one broker URL, or the URLs of every node of a cluster separated by commas
AmqpUrls = Annotated[str, AfterValidator(_amqp_urls)]


def split_amqp_urls(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(",") if part)


class QueueType(StrEnum):
    CLASSIC = "classic"
    QUORUM = "quorum"


class ServiceSettings(BaseSettings):
    """What every service needs: where the broker and the store are, and how to run."""

    model_config = SettingsConfigDict(env_prefix="JAUGE_", extra="ignore", frozen=True)

    amqp_url: AmqpUrls = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description=(
            "RabbitMQ connection URL (vhost included). For a cluster, every node's URL "
            "separated by commas: a connection that is lost is opened again on the next "
            "node of the list that answers."
        ),
    )
    mongo_url: MongoDsn = Field(
        default=MongoDsn("mongodb://127.0.0.1:27017/"),
        description="MongoDB (or FerretDB) connection URL.",
    )
    db_prefix: str = Field(
        default="jauge",
        pattern=r"^[a-z][a-z0-9_]{0,30}$",
        description="Each service's database is named `<db_prefix>_<service>`.",
    )
    data_dir: Path = Field(default=Path("var"), description="Root of inbox/, archive/, errors/.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = Field(default=True, description="JSON log lines (false: human-readable).")
    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto",
        description="asyncio's event loop, or uvloop's (auto: uvloop when installed).",
    )
    heartbeat_s: PositiveInt = Field(
        default=10,
        le=3600,
        description="AMQP heartbeat: a connection silent for about three of them is dropped "
        "and opened again (a `heartbeat=` in the AMQP URL wins).",
    )
    prefetch: PositiveInt = Field(default=32, description="Unacked messages per consumer.")
    queue_type: QueueType = Field(
        default=QueueType.CLASSIC,
        description="Durable queues are declared as this type (quorum in production).",
    )
    delivery_limit: PositiveInt = Field(
        default=20, description="Quorum queues dead-letter a message redelivered this often."
    )
    graceful_timeout_s: PositiveFloat = Field(
        default=15.0, description="On SIGTERM, how long in-flight messages may take to finish."
    )
    retry_base_delay_s: PositiveFloat = Field(
        default=0.5, description="First delay before a message that failed transiently is retried."
    )
    retry_max_delay_s: PositiveFloat = Field(
        default=30.0, description="Longest delay between two retries of a transient failure."
    )
    otlp_endpoint: AnyHttpUrl | None = Field(
        default=None, description="OTLP/HTTP traces endpoint; tracing is off without it."
    )
    trace_dir: Path | None = Field(
        default=None, description="Also write spans as JSON lines here (tests, debugging)."
    )
    mongo_timeout_ms: PositiveInt = Field(
        default=5000, description="How long the driver looks for a server before giving up."
    )
    mongo_socket_timeout_ms: int | None = Field(
        gt=0,
        default=None,
        description="How long the driver waits for the store's answer on a connection "
        "(empty: forever): a store that takes the connection and never answers then "
        "fails like one that is away.",
    )
    fault_points: str = Field(
        default="",
        description=(
            "Tests only: places where the process kills or freezes itself once "
            "(jauge_shared.faults). Never set in production."
        ),
    )
