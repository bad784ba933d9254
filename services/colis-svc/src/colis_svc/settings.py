from __future__ import annotations

from pydantic import Field

from jauge_shared.settings import ServiceSettings

SERVICE = "colis-svc"
DB_SUFFIX = "colis"


class ColisSettings(ServiceSettings):
    port: int = Field(default=8102, ge=1, le=65535, description="/healthz, /readyz, /metrics.")
