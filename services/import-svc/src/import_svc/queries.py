"""Reads the gateway asks for over RabbitMQ: an import's report, imported invoices."""

from __future__ import annotations

from import_svc.control import rejected_path
from import_svc.files import FileStore
from import_svc.repository import ImportRepository
from jauge_shared.contracts.import_rpc import (
    FileReport,
    ImportReport,
    ImportReportRequest,
    InvoiceList,
    InvoiceSearchRequest,
)


class ImportQueries:
    def __init__(self, repository: ImportRepository, files: FileStore | None = None) -> None:
        self.repo = repository
        self.files = files  # to tell whether a rejected file's copy is still kept

    async def report(self, request: ImportReportRequest) -> ImportReport:
        job = await self.repo.get_job(request.job_id)
        if job is None:
            return ImportReport(found=False, job_id=request.job_id)
        files = [
            FileReport(
                item=doc["name"],
                index=doc["index"],
                state=doc["state"],
                ok=doc.get("ok"),
                error=doc.get("error"),
                invoices=doc.get("invoices", 0),
                lines=doc.get("lines", 0),
                rows=doc.get("rows", 0),
                failed_rows=doc.get("failed_rows", 0),
                duration_ms=doc.get("duration_ms", 0),
                worker=doc.get("worker"),
                rejected=doc.get("ok") is False
                and self.files is not None
                and rejected_path(self.files, job, doc).is_file(),
            )
            for doc in await self.repo.file_results(job)
        ]
        return ImportReport(
            found=True,
            job_id=request.job_id,
            kind=job["kind"],
            state=job["state"],
            total=job.get("total", 0),
            files=files,
            retry_of=job.get("retry_of"),
            retried_by=job.get("retried_by"),
        )

    async def invoices(self, request: InvoiceSearchRequest) -> InvoiceList:
        docs, next_after = await self.repo.search_invoices(
            supplier=request.supplier,
            number=request.number,
            job_id=request.job_id,
            job_ids=request.job_ids,
            limit=request.limit,
            after=request.after,
        )
        return InvoiceList(invoices=docs, next_after=next_after)
