"""Lots: created, listed and closed synchronously by colis-svc over RabbitMQ."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel

from gateway.audit_pages import AuditPage, Before, Limit, history
from gateway.colis_rpc import call_colis
from gateway.deps import CurrentUser, LotChecksDep, RpcDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER, error_responses
from jauge_shared.contracts import TransportType

router = APIRouter(
    prefix="/api/lots", tags=["colis"], responses={**AUTHENTICATED, **THROUGH_BROKER}
)

LotId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class Lot(BaseModel):
    id: str
    numero_lot: str
    type_lot: TransportType
    statut: Literal["ouvert", "ferme", "expedie"]
    created_at: datetime
    closed_at: datetime | None = None


class NewLot(BaseModel):
    type_lot: TransportType


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Lot)
async def create_lot(body: NewLot, user: CurrentUser, rpc: RpcDep) -> Any:
    """A new open lot numbered `TYPE-YYYYMMDDNNN` (unique even under concurrency)."""
    return await call_colis(rpc, "create_lot", type_lot=body.type_lot.value, user_id=user.username)


@router.get("", response_model=list[Lot])
async def list_lots(
    user: CurrentUser,
    rpc: RpcDep,
    statut: Annotated[Literal["ouvert", "ferme", "expedie"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    return await call_colis(rpc, "list_lots", statut=statut, limit=limit)


@router.get("/{lot_id}", response_model=Lot, responses=error_responses(404))
async def get_lot(lot_id: LotId, user: CurrentUser, rpc: RpcDep) -> Any:
    return await call_colis(rpc, "get_lot", lot_id=lot_id)


@router.post("/{lot_id}/close", response_model=Lot, responses=error_responses(404))
async def close_lot(lot_id: LotId, user: CurrentUser, rpc: RpcDep, lot_checks: LotChecksDep) -> Any:
    """No parcel can be added to a closed lot. Closing a closed lot changes nothing."""
    lot_checks.forget(lot_id)  # before and after: a check racing the close is not kept
    try:
        return await call_colis(rpc, "close_lot", lot_id=lot_id, user_id=user.username)
    finally:
        lot_checks.forget(lot_id)


@router.get("/{lot_id}/history", response_model=AuditPage, responses=error_responses(404))
async def lot_history(
    lot_id: LotId, user: CurrentUser, rpc: RpcDep, limit: Limit = 100, before: Before = None
) -> Any:
    """Who created and closed the lot, and every change to its parcels, newest first:
    open to every signed-in user (lots and parcels are the agency's shared data)."""
    return await history(rpc, "lot_history", limit, before, lot_id=lot_id)
