"""Lots: created, listed, closed and shipped synchronously by colis-svc over RabbitMQ
(ouvert → fermé → expédié; the rules live in colis-svc's domain, `domain/lots.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

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
    shipped_at: datetime | None = None
    colis_count: int = Field(default=0, description="Parcels in the lot.")
    total_prix: str = Field(
        default="0",
        description="The sum of its parcels' prices (a decimal string).",
        examples=["125000"],
    )
    devise: str | None = Field(default=None, examples=["XOF"])


class LotPage(BaseModel):
    items: list[Lot]
    next_cursor: str | None = Field(
        description="Opaque: ask `?cursor=` with it for the next page; null on the last."
    )


class NewLot(BaseModel):
    type_lot: TransportType


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Lot)
async def create_lot(body: NewLot, user: CurrentUser, rpc: RpcDep) -> Any:
    """A new open lot numbered `TYPE-YYYYMMDDNNN` (unique even under concurrency)."""
    return await call_colis(rpc, "create_lot", type_lot=body.type_lot.value, user_id=user.username)


@router.get("", response_model=LotPage, responses=error_responses(400))
async def list_lots(
    user: CurrentUser,
    rpc: RpcDep,
    statut: Annotated[Literal["ouvert", "ferme", "expedie"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    """Newest day first, by number within a day, with each lot's parcel count and total.
    A page: `next_cursor` asks for the next one (read by `_id`, never a scan of history;
    a status filter may end a page early, with a cursor, rather than read far back)."""
    return await call_colis(rpc, "list_lots", statut=statut, limit=limit, cursor=cursor)


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


@router.post(
    "/{lot_id}/ship",
    response_model=Lot,
    responses=error_responses(404, 409, e409="The lot is still open (close it first)"),
)
async def ship_lot(lot_id: LotId, user: CurrentUser, rpc: RpcDep) -> Any:
    """Only a closed lot can be shipped; shipping a shipped lot changes nothing. A closed
    or shipped lot takes no new parcel and no parcel edit."""
    return await call_colis(rpc, "ship_lot", lot_id=lot_id, user_id=user.username)


@router.get("/{lot_id}/history", response_model=AuditPage, responses=error_responses(404))
async def lot_history(
    lot_id: LotId, user: CurrentUser, rpc: RpcDep, limit: Limit = 100, before: Before = None
) -> Any:
    """Who created and closed the lot, and every change to its parcels, newest first:
    open to every signed-in user (lots and parcels are the agency's shared data)."""
    return await history(rpc, "lot_history", limit, before, lot_id=lot_id)
