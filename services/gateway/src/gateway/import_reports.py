"""An import of the user's, and its per-file report from import-svc: what the report
routes, its CSV and the retry of its failed files all start from."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from gateway.progress_view import ProgressView
from gateway.rpc import RpcClient, ask
from gateway.users import User
from jauge_shared.contracts.import_rpc import ImportReport, ImportReportRequest
from jauge_shared.topology import RK

NOT_FOUND = "Import introuvable."


async def import_job(view: ProgressView, user: User, job_id: str) -> dict[str, Any]:
    """The import's progress document, as the user may see it; a 404 for any other job."""
    job: dict[str, Any] = await view.job(user, job_id)
    if not str(job.get("kind", "")).startswith("import"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    return job


async def import_report(rpc: RpcClient, job_id: str, deadline_s: float) -> ImportReport:
    """Every file's result. `deadline_s` (the setting `report_timeout_s`), not the usual
    few seconds: import-svc reads one document a file, and a 5,000-file import's took
    the store seconds (a 504 until the report had its own deadline)."""
    request = ImportReportRequest(job_id=job_id)
    report = await ask(rpc, RK.IMPORT_RPC, request, ImportReport, deadline_s=deadline_s)
    if not report.found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    return report
