"""The header's search box: a parcel by tracking number or a lot by number, asked of
colis-svc (which forgives typing; see its `search.py`). Every signed-in user may look
either up, as they may open any lot or parcel."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gateway.colis_rpc import read_colis
from gateway.deps import CurrentUser, RpcDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER

router = APIRouter(
    prefix="/api/search", tags=["search"], responses={**AUTHENTICATED, **THROUGH_BROKER}
)


class Found(BaseModel):
    type: Literal["colis", "lot"]
    id: str
    numero: str
    url: str
    exact: bool
    statut: str | None = None
    lot_id: str | None = None
    numero_lot: str | None = None
    type_lot: str | None = None


class SearchResults(BaseModel):
    query: str
    items: list[Found]


@router.get("", response_model=SearchResults, response_model_exclude_none=True)
async def search(
    user: CurrentUser,
    rpc: RpcDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="A tracking number (TS20261122-7KQ2M9XH) or a lot number "
            "(CARGO-20261122001), as typed",
        ),
    ],
) -> SearchResults:
    """The parcel or lot `q` names (`exact: true`), else the parcels one swap of two
    neighbouring symbols away (`exact: false`); `items` is empty when nothing matches."""
    found = await read_colis(rpc, "search", q=q.strip())
    return SearchResults(query=q, items=[Found.model_validate(item) for item in found])
