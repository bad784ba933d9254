"""Contracts of parcel (colis) tasks, lots and clients (colis-svc)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from jauge_shared.contracts.envelope import Command, Event, Timestamp
from jauge_shared.contracts.fields import Centimetres, JobId, Kilograms, UploadId


class TransportType(StrEnum):
    CARGO = "cargo"
    EXPRESS = "express"
    BATEAU = "bateau"


class ColisOperation(StrEnum):
    CREATE = "create"
    UPDATE = "update"


class TaskStatus(StrEnum):
    """The seed's task states, plus the validation and creation steps of DESIGN.md."""

    PENDING = "pending"
    PROCESSING = "processing"
    VALIDATION = "validation"
    IMAGE_UPLOADING = "image_uploading"
    CREATION = "creation"
    PRICE_CALCULATING = "price_calculating"
    NOTIFICATION_SENDING = "notification_sending"
    COMPLETED = "completed"
    FAILED = "failed"
    FAILED_RETRY = "failed_retry"
    FAILED_FINAL = "failed_final"
    CANCELLED = "cancelled"


class ColisData(BaseModel):
    """The parcel form, as the agent filled it in."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    client_id: str = Field(min_length=1, max_length=64)
    type_transport: TransportType
    longueur: Centimetres = Field(description="cm")
    largeur: Centimetres = Field(description="cm")
    hauteur: Centimetres = Field(description="cm")
    poids: Kilograms = Field(description="kg")
    mode_paiement: str = Field(default="comptant", max_length=40)
    statut: str = Field(default="receptionne", max_length=40)
    description: str = Field(default="", max_length=2000)


class _TaskCommand(Command):
    task_id: JobId
    user_id: str = Field(min_length=1, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _job_is_the_task(cls, data: Any) -> Any:
        if isinstance(data, dict) and "job_id" not in data and "task_id" in data:
            return {**data, "job_id": data["task_id"]}
        return data


_IMAGE_PENDING = Field(
    default=False,
    description="The photo `upload_id` names is still on its way (sent in the background, "
    "resumably): the `image_uploading` step waits for it, up to a deadline.",
)


class CreateColis(_TaskCommand):
    type: Literal["colis.create"] = "colis.create"
    lot_id: JobId
    colis_data: ColisData
    upload_id: UploadId | None = Field(default=None, description="Photo uploaded with the form.")
    image_pending: bool = _IMAGE_PENDING


class UpdateColis(_TaskCommand):
    type: Literal["colis.update"] = "colis.update"
    lot_id: JobId
    colis_id: JobId
    colis_data: ColisData
    upload_id: UploadId | None = None
    image_pending: bool = _IMAGE_PENDING


class RetryColisTask(_TaskCommand):
    type: Literal["colis.retry"] = "colis.retry"
    edits: dict[str, Any] = Field(
        default_factory=dict,
        max_length=len(ColisData.model_fields),
        description="Corrected fields of colis_data (checked as ColisData when applied).",
    )
    force: bool = Field(default=False, description="Admin only: retry a failed_final task.")
    upload_id: UploadId | None = Field(
        default=None, description="A new photo for the task (its upload may still be running)."
    )
    image_pending: bool = _IMAGE_PENDING


class PhotoReady(_TaskCommand):
    """From the gateway, when the last byte of a background photo upload has arrived: the
    task waiting for it in `image_uploading` runs on (colis-svc republishes its command)."""

    type: Literal["colis.photo_ready"] = "colis.photo_ready"
    upload_id: UploadId


class CancelColisTask(_TaskCommand):
    type: Literal["colis.cancel"] = "colis.cancel"
    lot_id: str | None = Field(
        default=None,
        description="Known to the gateway; lets colis-svc report a task it "
        "has not seen yet (its command still queued) as cancelled at once.",
    )
    operation: ColisOperation | None = None


class ColisStepChanged(Event):
    type: Literal["colis.step_changed"] = "colis.step_changed"
    task_id: str
    user_id: str
    lot_id: str
    operation: ColisOperation
    status: TaskStatus
    step: str = Field(description="French label of the step.", examples=["Calcul du prix"])
    percent: int = Field(ge=0, le=100)
    seq: NonNegativeInt = Field(description="Per task, strictly increasing.")
    error: str | None = None
    retry_count: NonNegativeInt = 0
    max_retries: NonNegativeInt = 3
    next_retry_at: Timestamp | None = None
    colis_id: str | None = None
    numero_suivi: str | None = None
    summary: dict[str, Any] = Field(
        default_factory=dict, description="Short summary of colis_data for the dashboard."
    )


class ColisCreated(Event):
    type: Literal["colis.created"] = "colis.created"
    colis: dict[str, Any]


class ColisUpdated(Event):
    type: Literal["colis.updated"] = "colis.updated"
    colis: dict[str, Any]


class LotCreated(Event):
    type: Literal["lot.created"] = "lot.created"
    lot: dict[str, Any]


class NotificationRequested(Event):
    type: Literal["notification.requested"] = "notification.requested"
    user_id: str
    channel: str = "agent"
    message: str


class ColisTaskStalled(Event):
    type: Literal["colis.task_stalled"] = "colis.task_stalled"
    task_id: str
    status: TaskStatus
    stalled_since: Timestamp
    action: Literal["requeued", "failed"]


class ColisRpcRequest(BaseModel):
    """Request/reply from the gateway to colis-svc (`rpc.colis` on `colis-svc.rpc`):
    reads of clients, tariff, lots and parcels, and the synchronous lot/client changes.

    The changes name who asks: `create_lot` and `close_lot` take a `user_id` param (the
    caller's username, for the audit trail; absent, the entry says nobody). The audit
    trail is read with `colis_history` (`colis_id`), `lot_history` (`lot_id`) and `audit`,
    each with `limit` and `before` (docs/colis.md, "Audit trail").

    The reply is `{"ok": true, "result": ...}` or `{"ok": false, "status", "detail"}`
    (an HTTP status and a French message the gateway passes on as they are)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z_]+$",
        examples=["list_lots", "create_lot", "close_lot", "get_colis", "precheck", "colis_history"],
    )
    params: dict[str, Any] = Field(
        default_factory=dict, examples=[{"lot_id": "3f0c9a", "user_id": "alice"}]
    )

    @property
    def is_read(self) -> bool:
        return self.method not in COLIS_RPC_CHANGES


# the request/reply methods that change colis-svc's state; every other one is a read,
# which the gateway may ask twice when the first is lost (a broker node dying)
COLIS_RPC_CHANGES = frozenset({"create_client", "create_lot", "close_lot"})


class ColisRpcReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ok: bool
    result: Any = None
    status: int = 200
    detail: str | None = None
