"""Imported invoices and credit notes, read from import-svc over RabbitMQ."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gateway import keyset
from gateway.deps import CurrentUser, RpcDep, ViewDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER
from gateway.rpc import ask
from jauge_shared.contracts.import_rpc import MAX_INVOICE_KEY, InvoiceList, InvoiceSearchRequest
from jauge_shared.topology import RK

router = APIRouter(
    prefix="/api/invoices", tags=["invoices"], responses={**AUTHENTICATED, **THROUGH_BROKER}
)


class InvoicePage(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="Invoice documents, as in DESIGN.md (amounts as strings), by supplier, number"
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


@router.get("", response_model=InvoicePage, responses=keyset.BAD_CURSOR_RESPONSE)
async def list_invoices(
    user: CurrentUser,
    view: ViewDep,
    rpc: RpcDep,
    supplier: Annotated[
        str | None, Query(max_length=200, description="Supplier id, or part of its name")
    ] = None,
    number: Annotated[str | None, Query(max_length=100)] = None,
    job_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] = None,
    cursor: keyset.Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> InvoicePage:
    """An agent sees the invoices of the imports they started; an admin sees all.
    A page at a time, in key order (supplier, then number)."""
    after = keyset.after_key(cursor)
    if after is not None and len(after) > MAX_INVOICE_KEY:
        raise keyset.BAD_CURSOR
    job_ids = None
    if not user.is_admin:
        # the read model knows who started which import; import-svc knows no users
        job_ids = await view.import_job_ids(user)
        if not job_ids:
            return InvoicePage(items=[], next_cursor=None)
    request = InvoiceSearchRequest(
        supplier=supplier,
        number=number,
        job_id=job_id,
        job_ids=job_ids,
        limit=limit,
        after=after,
    )
    found = await ask(rpc, RK.IMPORT_RPC, request, InvoiceList)
    next_cursor = keyset.key_cursor(found.next_after) if found.next_after else None
    return InvoicePage(items=found.invoices, next_cursor=next_cursor)
