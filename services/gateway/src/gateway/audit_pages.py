"""Pages of the audit trail kept by colis-svc (issue 15), as the API shows them: read by
the audit, lots and parcels routers alike."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

from gateway.colis_rpc import call_colis
from gateway.rpc import RpcClient


class AuditEntry(BaseModel):
    id: str = Field(description="Stable: one change is one entry, however often it was sent.")
    at: datetime
    who: str | None = Field(description="The user who made the change.", examples=["alice"])
    what: str = Field(
        description="lot.created, lot.closed, lot.shipped, colis.created, colis.updated, "
        "client.created, client.updated, "
        "task.cancelled, task.retried or task.retry_forced (an admin's, retries spent).",
        examples=["colis.updated"],
    )
    lot_id: str | None = None
    colis_id: str | None = None
    task_id: str | None = Field(default=None, description="The parcel task that made it.")
    changes: dict[str, tuple[Any, Any]] = Field(
        default_factory=dict,
        description="`{field: [before, after]}`; `before` is null for what was created.",
        examples=[{"poids": ["7.5", "9"]}],
    )


class AuditPage(BaseModel):
    entries: list[AuditEntry] = Field(description="Newest first.")
    next: int | None = Field(
        description="Pass it as `before` for the older entries; null: there are none."
    )


Limit = Annotated[int, Query(ge=1, le=500)]
Before = Annotated[int | None, Query(ge=1, description="`next` of the previous page.")]


async def history(rpc: RpcClient, method: str, limit: int, before: int | None, **ids: str) -> Any:
    """One page of colis-svc's audit trail (`audit`, `lot_history`, `colis_history`)."""
    return await call_colis(rpc, method, limit=limit, before=before, **ids)
