"""The active price table (colis-svc)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway.colis_rpc import call_colis
from gateway.deps import CurrentUser, RpcDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER

router = APIRouter(
    prefix="/api/tariffs", tags=["colis"], responses={**AUTHENTICATED, **THROUGH_BROKER}
)


@router.get("")
async def get_tariff(user: CurrentUser, rpc: RpcDep) -> Any:
    """`{devise, minimum, tarifs: {cargo: {par_kg}, express: {par_kg}, bateau: {par_m3}}}`;
    amounts are strings, exact."""
    return await call_colis(rpc, "get_tariff")
