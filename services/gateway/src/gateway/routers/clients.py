"""Parcel clients, owned by colis-svc and asked over RabbitMQ."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from gateway.colis_rpc import call_colis
from gateway.deps import CurrentUser, RpcDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER

router = APIRouter(
    prefix="/api/clients", tags=["colis"], responses={**AUTHENTICATED, **THROUGH_BROKER}
)


class Client(BaseModel):
    id: str
    name: str
    phone: str = ""


class NewClient(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(default="", max_length=40)


@router.get("", response_model=list[Client])
async def list_clients(user: CurrentUser, rpc: RpcDep) -> Any:
    return await call_colis(rpc, "list_clients")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Client)
async def create_client(body: NewClient, user: CurrentUser, rpc: RpcDep) -> Any:
    return await call_colis(rpc, "create_client", name=body.name, phone=body.phone)
