"""Imported invoices and credit notes, read from import-svc over RabbitMQ."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import CurrentUser, RpcDep, ViewDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER
from gateway.rpc import ask
from jauge_shared.contracts.import_rpc import MAX_OFFSET, InvoiceList, InvoiceSearchRequest
from jauge_shared.topology import RK

router = APIRouter(
    prefix="/api/invoices", tags=["invoices"], responses={**AUTHENTICATED, **THROUGH_BROKER}
)


@router.get("", response_model=InvoiceList)
async def list_invoices(
    user: CurrentUser,
    view: ViewDep,
    rpc: RpcDep,
    supplier: Annotated[
        str | None, Query(max_length=200, description="Supplier id, or part of its name")
    ] = None,
    number: Annotated[str | None, Query(max_length=100)] = None,
    job_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> InvoiceList:
    """An agent sees the invoices of the imports they started; an admin sees all."""
    job_ids = None
    if not user.is_admin:
        # the read model knows who started which import; import-svc knows no users
        job_ids = await view.import_job_ids(user)
        if not job_ids:
            return InvoiceList(total=0, invoices=[])
    request = InvoiceSearchRequest(
        supplier=supplier,
        number=number,
        job_id=job_id,
        job_ids=job_ids,
        limit=limit,
        offset=offset,
    )
    return await ask(rpc, RK.IMPORT_RPC, request, InvoiceList)
