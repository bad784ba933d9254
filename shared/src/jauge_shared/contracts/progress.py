"""The progress read model: one document per job or task, and its change event."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, NonNegativeInt

from jauge_shared.contracts.envelope import Event, Timestamp


class ProgressStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


# progress-svc's database (`<prefix>_progress`) and its repairs, read by the gateway
# and by `jauge repairs` (jauge_ops)
PROGRESS_DB_SUFFIX = "progress"
REPAIRS_COLLECTION = "repairs"

TERMINAL_STATUSES = frozenset(
    {ProgressStatus.COMPLETED, ProgressStatus.FAILED, ProgressStatus.CANCELLED}
)


class ItemResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    item: str
    ok: bool = True
    error: str | None = None
    at: Timestamp | None = None


class ProgressDocument(BaseModel):
    """What a browser sees of a job or task (DESIGN.md, "The progress document")."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # the store keys the document by `_id` (DESIGN.md); on the wire (progress.updated,
    # the API) it is `id`, which every consumer reads (the gateway's hub, the web UI).
    # Both are read, `id` is sent; the AsyncAPI document is generated from the
    # validation schema, whose first alias is `id`, so it says what is sent
    id: str = Field(validation_alias=AliasChoices("id", "_id"), serialization_alias="id")
    kind: str = Field(examples=["import.edi", "colis.create"])
    owner: str
    title: str = ""
    status: ProgressStatus
    step_status: str | None = Field(default=None, description="Colis tasks: the detailed state.")
    total: NonNegativeInt = 0
    processed: NonNegativeInt = 0
    failed: NonNegativeInt = 0
    percent: float = Field(default=0.0, ge=0, le=100)
    current_step: str = ""
    message: str = ""
    errors: list[ItemResult] = Field(default_factory=list)
    recent: list[ItemResult] = Field(default_factory=list)
    queue_position: int | None = None
    created_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    duration_s: float | None = None
    eta_s: float | None = None
    seq: NonNegativeInt = 0
    # colis tasks only
    retry_count: int | None = None
    max_retries: int | None = None
    next_retry_at: Timestamp | None = None
    colis_id: str | None = None
    numero_suivi: str | None = None
    lot_id: str | None = None
    summary: dict[str, Any] | None = None
    # what colis-svc's last step said may be done (colis.step_changed): shown, not recomputed
    can_retry: bool | None = None
    can_force_retry: bool | None = None
    can_cancel: bool | None = None

    def stored(self) -> dict[str, Any]:
        """The document as the store keeps it: keyed by `_id`, statuses as plain strings
        (dates stay dates)."""
        fields = self.model_dump(exclude={"id"})
        fields["status"] = self.status.value
        return {"_id": self.id, **fields}


class ProgressUpdated(Event):
    """progress-svc applied a change; the body carries the whole document after it."""

    type: Literal["progress.updated"] = "progress.updated"
    job: ProgressDocument
