"""Parcel clients, owned by colis-svc and asked over RabbitMQ."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from pydantic import BaseModel

from gateway.colis_rpc import call_colis
from gateway.deps import CurrentUser, RpcDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER, error_responses
from jauge_shared.contracts.colis_rpc import ClientName, ClientPhone

router = APIRouter(
    prefix="/api/clients", tags=["colis"], responses={**AUTHENTICATED, **THROUGH_BROKER}
)


class Client(BaseModel):
    id: str
    name: str
    phone: str = ""


# colis-svc's bounds (contracts/colis_rpc.py), stated in the schema too
class NewClient(BaseModel):
    name: ClientName
    phone: ClientPhone = ""


class ClientChange(BaseModel):
    """Only the fields given change."""

    name: ClientName | None = None
    phone: ClientPhone | None = None


ClientId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("", response_model=list[Client])
async def list_clients(user: CurrentUser, rpc: RpcDep) -> Any:
    return await call_colis(rpc, "list_clients")


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=Client, responses=error_responses(422)
)
async def create_client(body: NewClient, user: CurrentUser, rpc: RpcDep) -> Any:
    return await call_colis(
        rpc, "create_client", name=body.name, phone=body.phone, user_id=user.username
    )


@router.patch("/{client_id}", response_model=Client, responses=error_responses(404, 422))
async def update_client(
    client_id: ClientId, body: ClientChange, user: CurrentUser, rpc: RpcDep
) -> Any:
    """A client's name or phone corrected. Parcels already recorded keep the name they
    were given (it is on their invoices); new ones take the new one."""
    changes = body.model_dump(exclude_none=True)
    return await call_colis(
        rpc, "update_client", client_id=client_id, user_id=user.username, **changes
    )
