"""The audit trail of lots and parcels, kept by colis-svc (issue 15): who changed what
and when. A parcel's and a lot's history are on their own routes (routers/colis.py,
routers/lots.py) for every signed-in user; everything at once is for admins only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from gateway.audit_pages import AuditPage, Before, Limit, history
from gateway.deps import CurrentUser, RpcDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER, error_responses

router = APIRouter(tags=["audit"], responses={**AUTHENTICATED, **THROUGH_BROKER})


@router.get("/api/audit", response_model=AuditPage, responses=error_responses(403))
async def audit_trail(
    user: CurrentUser, rpc: RpcDep, limit: Limit = 100, before: Before = None
) -> Any:
    """Every change to lots and parcels, newest first: admins only."""
    if not user.is_admin:
        raise HTTPException(403, detail="Seul un administrateur peut lire tout l'historique.")
    return await history(rpc, "audit", limit, before)
