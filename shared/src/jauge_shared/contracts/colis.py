"""Contracts of parcel (colis) tasks, lots and clients (colis-svc).

colis-svc owns the rules its neighbours show: the task status sets, whether a task may
be retried or cancelled, the task's short summary and the parcel form (`ColisData`, and
`ColisEdits` for the corrections of a retry). The gateway and progress-svc read them
from here, and `colis.step_changed` carries what they give for each state, so that what
a dashboard shows is what colis-svc decided.

Over 300 lines on purpose: those rules sit next to the commands and events that carry
them, so a change to one is seen with the other.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
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


# The task status sets, defined once. On the way: waiting for or held by a worker.
PIPELINE_STATUSES: tuple[TaskStatus, ...] = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.VALIDATION,
    TaskStatus.IMAGE_UPLOADING,
    TaskStatus.CREATION,
    TaskStatus.PRICE_CALCULATING,
    TaskStatus.NOTIFICATION_SENDING,
)
# colis-svc's database (`<db_prefix>_colis`): the gateway names it only to reach the two
# buckets of photos colis-svc shares with it (jauge_shared.blobs)
COLIS_DB_SUFFIX = "colis"

ACTIVE_STATUSES = frozenset(PIPELINE_STATUSES)
# Held by a worker: cancelling has to wait for the worker to stop at a step boundary.
RUNNING_STATUSES = ACTIVE_STATUSES - {TaskStatus.PENDING}
FAILED_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.FAILED_RETRY, TaskStatus.FAILED_FINAL})
# Nothing more happens by itself (only an admin's forced retry leaves `failed_final`).
FINISHED_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED_FINAL, TaskStatus.CANCELLED})
# Never left: no retry, no cancel, no sweep.
CLOSED_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELLED})


def can_retry(
    status: TaskStatus | str, retry_count: int, max_retries: int, *, force: bool = False
) -> bool:
    """Any failed task while retries remain; `force` (an admin) any failed task."""
    if status not in FAILED_STATUSES:
        return False
    return force or retry_count < max_retries


def can_cancel(status: TaskStatus | str) -> bool:
    """Anything not completed nor cancelled already (the seed refuses only completed)."""
    return status not in CLOSED_STATUSES


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


class ColisEdits(BaseModel):
    """Every field of the form, optional: the agent's corrections before a manual retry
    (applied over the task's `ColisData` and checked as one)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    type_transport: TransportType | None = None
    longueur: Centimetres | None = None
    largeur: Centimetres | None = None
    hauteur: Centimetres | None = None
    poids: Kilograms | None = None
    mode_paiement: str | None = Field(default=None, max_length=40)
    statut: str | None = Field(default=None, max_length=40)
    description: str | None = Field(default=None, max_length=2000)

    def changes(self) -> dict[str, Any]:
        """Only the fields the agent corrected, as `RetryColisTask.edits` carries them."""
        return self.model_dump(mode="json", exclude_none=True)


# French typography groups thousands with a narrow no-break space, so "1 250" never wraps.
_THOUSANDS = "\u202f"

TRANSPORT_LABELS: dict[TransportType, str] = {
    TransportType.CARGO: "Cargo",
    TransportType.EXPRESS: "Express",
    TransportType.BATEAU: "Bateau",
}


def format_fr(value: Decimal, places: int | None = None) -> str:
    """`Decimal("1250.5")` → "1 250,5"; with `places`, a fixed number of decimals."""
    if places is None:
        number = value.normalize()
    else:
        number = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if number.is_zero():
        number = abs(number)  # no "-0" on screen
    # "f" formatting, because normalize() may leave an exponent ("3E+1" for 30).
    text = format(number, "f")
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, fraction = text.partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        whole, tail = whole[:-3], whole[-3:]
        groups.insert(0, tail)
    grouped = _THOUSANDS.join([whole, *groups])
    return f"{sign}{grouped},{fraction}" if fraction else f"{sign}{grouped}"


def format_dimensions(data: ColisData) -> str:
    """Length × width × height as the agent typed them: "30×40×50 cm"."""
    sides = (data.longueur, data.largeur, data.hauteur)
    return "×".join(format_fr(side) for side in sides) + " cm"


def summarize(data: ColisData, client_name: str | None) -> dict[str, str]:
    """The task's short summary for the dashboard, in French ("7,5 kg"): the one function
    that writes it, for every frame of the task. Strings only, so the summary is stored
    and sent as is (no Decimal in BSON or JSON)."""
    transport = TransportType(data.type_transport)
    return {
        "client": client_name or data.client_id,
        "client_id": data.client_id,
        "transport": transport.value,
        "transport_label": TRANSPORT_LABELS[transport],
        "poids": f"{format_fr(data.poids)} kg",
        "dimensions": format_dimensions(data),
    }


def allowed_actions(status: TaskStatus, retry_count: int, max_retries: int) -> dict[str, bool]:
    """What `colis.step_changed` says may be done with the task in this state."""
    return {
        "can_retry": can_retry(status, retry_count, max_retries),
        "can_force_retry": can_retry(status, retry_count, max_retries, force=True),
        "can_cancel": can_cancel(status),
    }


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
        default_factory=dict,
        description="Short summary of colis_data for the dashboard (`summarize`).",
    )
    can_retry: bool | None = Field(
        default=None, description="An agent may retry the task now (colis-svc's rule)."
    )
    can_force_retry: bool | None = Field(
        default=None, description="An admin may retry it now, retries spent or not."
    )
    can_cancel: bool | None = Field(default=None, description="It may be cancelled now.")


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
