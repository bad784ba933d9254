"""The audit trail of lots and parcels, kept by colis-svc (issue 15): who changed what
and when. A parcel's and a lot's history are on their own routes (routers/colis.py,
routers/lots.py) for every signed-in user; everything at once is for admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from gateway.colis_rpc import call_colis
from gateway.deps import CurrentUser, StateDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER, error_responses

router = APIRouter(tags=["audit"], responses={**AUTHENTICATED, **THROUGH_BROKER})


class AuditEntry(BaseModel):
    id: str = Field(description="Stable: one change is one entry, however often it was sent.")
    at: datetime
    who: str | None = Field(description="The user who made the change.", examples=["alice"])
    what: str = Field(
        description="lot.created, lot.closed, colis.created, colis.updated, "
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


async def history(state: StateDep, method: str, limit: int, before: int | None, **ids: str) -> Any:
    return await call_colis(state, method, limit=limit, before=before, **ids)


@router.get("/api/audit", response_model=AuditPage, responses=error_responses(403))
async def audit_trail(
    user: CurrentUser, state: StateDep, limit: Limit = 100, before: Before = None
) -> Any:
    """Every change to lots and parcels, newest first: admins only."""
    if not user.is_admin:
        raise HTTPException(403, detail="Seul un administrateur peut lire tout l'historique.")
    return await history(state, "audit", limit, before)
