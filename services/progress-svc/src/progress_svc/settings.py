from __future__ import annotations

from pydantic import Field, PositiveInt

from jauge_shared.settings import ServiceSettings

SERVICE = "progress-svc"
DB_SUFFIX = "progress"


class ProgressSettings(ServiceSettings):
    port: int = Field(default=8103, ge=1, le=65535, description="/healthz, /readyz, /metrics.")
    prefetch: PositiveInt = Field(
        default=256, description="Unacked events in flight; bursts of one job become one write."
    )
    recent_limit: PositiveInt = Field(default=20, description="Latest item results kept per job.")
    errors_limit: PositiveInt = Field(default=200, description="Item errors kept per job.")
    concurrent_writes: PositiveInt = Field(
        default=4,
        description=(
            "Progress documents written at once. The store serialises writes (SQLite behind "
            "FerretDB), so more only adds lock contention; raise it for MongoDB."
        ),
    )
