from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt

from jauge_shared.contracts.imports import IMPORT_DB_SUFFIX
from jauge_shared.settings import ServiceSettings

SERVICE = "import-svc"
DB_SUFFIX = IMPORT_DB_SUFFIX


class ImportSettings(ServiceSettings):
    port: int = Field(default=8101, ge=1, le=65535, description="/healthz, /readyz, /metrics.")
    job_deadline_s: PositiveFloat = Field(
        default=3600.0, description="An import still running after this long fails."
    )
    lock_lease_s: PositiveFloat = Field(
        default=30.0, description="The import lock expires this long after its last renewal."
    )
    scheduler_interval_s: PositiveFloat = Field(
        default=2.0, description="How often each replica checks the lock, deadlines and queue."
    )
    test_file_delay_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="Tests only: each file is held this long, one at a time per replica, "
        "before it is read, so a browser test can watch an import or cancel it mid-way. "
        "0 in production.",
    )
    max_file_bytes: PositiveInt = Field(
        default=64 * 1024 * 1024, description="Larger files are rejected without being read."
    )
