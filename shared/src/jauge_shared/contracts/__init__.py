"""Every command and event that crosses the broker, and how to find a model by type."""

from __future__ import annotations

from jauge_shared.contracts.announce import AnnounceColisTask, AnnounceImport, AnnounceState
from jauge_shared.contracts.colis import (
    CancelColisTask,
    ColisCreated,
    ColisData,
    ColisOperation,
    ColisStepChanged,
    ColisTaskStalled,
    ColisUpdated,
    CreateColis,
    LotCreated,
    NotificationRequested,
    PhotoReady,
    RetryColisTask,
    TaskStatus,
    TransportType,
    UpdateColis,
)
from jauge_shared.contracts.colis_rpc import (
    COLIS_RPC_CHANGES,
    ColisQuery,
    ColisRpcReply,
    ColisRpcRequest,
)
from jauge_shared.contracts.envelope import (
    SCHEMA_VERSION,
    Command,
    Event,
    Message,
    stable_event_id,
    utc_now,
)
from jauge_shared.contracts.fields import (
    BoundedDecimal,
    Centimetres,
    FileItem,
    JobId,
    Kilograms,
    UploadId,
    is_file_item,
)
from jauge_shared.contracts.imports import (
    CancelImport,
    FileImported,
    ImportCleanupStarted,
    ImportFile,
    ImportFinished,
    ImportKind,
    ImportQueued,
    ImportStarted,
    ImportStatus,
    RequestImport,
)
from jauge_shared.contracts.progress import (
    TERMINAL_STATUSES,
    ItemResult,
    ProgressDocument,
    ProgressStatus,
    ProgressUpdated,
)

ALL_MESSAGES: tuple[type[Message], ...] = (
    RequestImport,
    CancelImport,
    ImportFile,
    ImportQueued,
    ImportStarted,
    ImportCleanupStarted,
    FileImported,
    ImportFinished,
    CreateColis,
    UpdateColis,
    RetryColisTask,
    CancelColisTask,
    PhotoReady,
    ColisStepChanged,
    ColisCreated,
    ColisUpdated,
    LotCreated,
    NotificationRequested,
    ColisTaskStalled,
    ProgressUpdated,
    AnnounceImport,
    AnnounceColisTask,
)


def message_type(model: type[Message]) -> str:
    """The routing key a model is published with (its `type` default)."""
    default = model.model_fields["type"].default
    assert isinstance(default, str)
    return default


MESSAGES_BY_TYPE: dict[str, type[Message]] = {message_type(m): m for m in ALL_MESSAGES}

__all__ = [
    "ALL_MESSAGES",
    "COLIS_RPC_CHANGES",
    "MESSAGES_BY_TYPE",
    "SCHEMA_VERSION",
    "TERMINAL_STATUSES",
    "AnnounceColisTask",
    "AnnounceImport",
    "AnnounceState",
    "BoundedDecimal",
    "CancelColisTask",
    "CancelImport",
    "Centimetres",
    "ColisCreated",
    "ColisData",
    "ColisOperation",
    "ColisQuery",
    "ColisRpcReply",
    "ColisRpcRequest",
    "ColisStepChanged",
    "ColisTaskStalled",
    "ColisUpdated",
    "Command",
    "CreateColis",
    "Event",
    "FileImported",
    "FileItem",
    "ImportCleanupStarted",
    "ImportFile",
    "ImportFinished",
    "ImportKind",
    "ImportQueued",
    "ImportStarted",
    "ImportStatus",
    "ItemResult",
    "JobId",
    "Kilograms",
    "LotCreated",
    "Message",
    "NotificationRequested",
    "PhotoReady",
    "ProgressDocument",
    "ProgressStatus",
    "ProgressUpdated",
    "RequestImport",
    "RetryColisTask",
    "TaskStatus",
    "TransportType",
    "UpdateColis",
    "UploadId",
    "is_file_item",
    "message_type",
    "stable_event_id",
    "utc_now",
]
