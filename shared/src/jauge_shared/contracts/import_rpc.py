"""Request/reply contracts of import-svc's reads (`rpc.import` on `import-svc.rpc`).

The gateway owns no import data: it asks import-svc over RabbitMQ (DESIGN.md, "Shape").
Requests carry who may see what (`job_ids`) because import-svc knows nothing of users;
the gateway decides visibility from the progress read model and passes it down.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from jauge_shared.contracts.fields import ID_PATTERN

RPC_ID_PATTERN = ID_PATTERN
# an invoice's key, `supplier_id:number` (import-svc's `invoice_key`), as a page's bound
MAX_INVOICE_KEY = 400


class _Rpc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class ImportReportRequest(_Rpc):
    """Every file's result of one import."""

    op: Literal["import.report"] = "import.report"
    job_id: str = Field(min_length=1, max_length=64, pattern=RPC_ID_PATTERN)


class InvoiceSearchRequest(_Rpc):
    """Imported invoices and credit notes, filtered; `job_ids` = None means no restriction."""

    op: Literal["invoices.search"] = "invoices.search"
    supplier: str | None = Field(
        default=None, max_length=200, description="Supplier id, or part of its name."
    )
    number: str | None = Field(default=None, max_length=100)
    job_id: str | None = Field(default=None, max_length=64, pattern=RPC_ID_PATTERN)
    job_ids: list[str] | None = Field(
        default=None,
        max_length=10_000,
        description="Only invoices of these jobs (an agent's own); None for an admin.",
    )
    limit: int = Field(default=100, ge=1, le=1000)
    after: str | None = Field(
        default=None,
        max_length=MAX_INVOICE_KEY,
        description="The previous page's `next_after`: the page starts after that key.",
    )


ImportRpcRequest = Annotated[ImportReportRequest | InvoiceSearchRequest, Field(discriminator="op")]


class FileReport(_Rpc):
    item: str = Field(description="File name as claimed by the job.")
    index: NonNegativeInt
    state: str = Field(description="pending, done or announced.")
    ok: bool | None = None
    error: str | None = None
    invoices: NonNegativeInt = 0
    lines: NonNegativeInt = 0
    rows: NonNegativeInt = 0
    failed_rows: NonNegativeInt = 0
    duration_ms: NonNegativeInt = 0
    worker: str | None = Field(default=None, description="The import-svc replica that read it.")


class ImportReport(_Rpc):
    found: bool
    job_id: str
    kind: str | None = None
    state: str | None = None
    total: NonNegativeInt = 0
    files: list[FileReport] = Field(default_factory=list)


class InvoiceList(_Rpc):
    """One page of invoices, in key order (supplier, then number)."""

    # required: the handler's reply is checked against its return type, where a model
    # of defaults only would swallow the 503 reply (a dict) as an empty page
    invoices: list[dict[str, Any]] = Field(
        description="Invoice documents, as in DESIGN.md (amounts as strings)."
    )
    next_after: str | None = Field(
        default=None, description="The key to ask `after` for the next page; null at the end."
    )


RPC_MODELS: tuple[type[BaseModel], ...] = (
    ImportReportRequest,
    InvoiceSearchRequest,
    ImportReport,
    InvoiceList,
)
