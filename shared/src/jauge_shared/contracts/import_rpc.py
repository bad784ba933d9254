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


class InboxRequest(_Rpc):
    """How many files wait in each kind's inbox (what `POST /api/imports` would take)."""

    op: Literal["inbox.count"] = "inbox.count"


class RejectedFileRequest(_Rpc):
    """A rejected file of one import (`what="file"`) or its `.error.txt` (`"note"`), as
    kept in import-svc's errors folder."""

    op: Literal["import.rejected_file"] = "import.rejected_file"
    job_id: str = Field(min_length=1, max_length=64, pattern=RPC_ID_PATTERN)
    index: NonNegativeInt = Field(le=1_000_000, description="The file's `index` in the report.")
    what: Literal["file", "note"] = "file"


ImportRpcRequest = Annotated[
    ImportReportRequest | InvoiceSearchRequest | InboxRequest | RejectedFileRequest,
    Field(discriminator="op"),
]


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
    rejected: bool = Field(
        default=False, description="A copy and its .error.txt are kept in the errors folder."
    )


class ImportReport(_Rpc):
    found: bool
    job_id: str
    kind: str | None = None
    state: str | None = None
    total: NonNegativeInt = 0
    files: list[FileReport] = Field(default_factory=list)
    retry_of: str | None = Field(
        default=None, description="The import whose failed files this one imports again."
    )
    retried_by: str | None = Field(
        default=None, description="The import that took this one's failed files again."
    )


class InboxCounts(_Rpc):
    counts: dict[str, NonNegativeInt] = Field(description="Files waiting, by import kind.")


# a rejected file travels in the reply itself: past this size it is not offered for download
MAX_REJECTED_DOWNLOAD_BYTES = 8 * 1024 * 1024


class RejectedFile(_Rpc):
    found: bool
    name: str | None = None
    size: NonNegativeInt = 0
    too_big: bool = False
    content_b64: str | None = Field(default=None, description="The file's bytes, base64.")


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
    InboxRequest,
    InboxCounts,
    RejectedFileRequest,
    RejectedFile,
)
