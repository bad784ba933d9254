"""The shapes of colis-svc's stored documents: a task's state as the task document holds
it, and what the gateway is shown of lots, clients and parcels (no internal fields)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from colis_svc.domain import TaskState
from jauge_shared.contracts import ColisOperation, TaskStatus

Doc = dict[str, Any]

_STATE_FIELDS = (
    "status",
    "seq",
    "retry_count",
    "max_retries",
    "next_retry_at",
    "error",
    "percent",
)


def state_to_doc(state: TaskState) -> Doc:
    doc = asdict(state)
    doc.pop("task_id")
    doc["operation"] = state.operation.value
    doc["status"] = state.status.value
    return doc


def state_from_doc(doc: Doc) -> TaskState:
    return TaskState(
        task_id=doc["_id"],
        operation=ColisOperation(doc["operation"]),
        **{k: doc[k] for k in _STATE_FIELDS if k in doc and k != "status"},
        status=TaskStatus(doc["status"]),
    )


def public_lot(doc: Doc) -> Doc:
    return {
        "id": doc["_id"],
        "numero_lot": doc["numero_lot"],
        "type_lot": doc["type_lot"],
        "statut": doc["statut"],
        "created_at": doc["created_at"],
        "closed_at": doc.get("closed_at"),
        "shipped_at": doc.get("shipped_at"),
        "colis_count": doc.get("colis_count", 0),
        "total_prix": doc.get("total_prix", "0"),
        "devise": doc.get("devise"),
    }


def public_client(doc: Doc) -> Doc:
    return {"id": doc["_id"], "name": doc["name"], "phone": doc.get("phone", "")}


_INTERNAL = frozenset({"_id", "image", "thumbnail", "previous", "listed"})


def public_colis(doc: Doc) -> Doc:
    out = {k: v for k, v in doc.items() if k not in _INTERNAL}
    out["id"] = doc["_id"]
    has_image = bool(doc.get("image"))
    out["image_url"] = f"/api/colis/{doc['_id']}/image" if has_image else None
    out["thumbnail_url"] = f"/api/colis/{doc['_id']}/image?thumbnail=1" if has_image else None
    return out
