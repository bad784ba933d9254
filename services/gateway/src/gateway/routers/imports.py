"""Starting imports: answered at once, the work goes to import-svc."""

from __future__ import annotations

from uuid import uuid4

from fastapi import APIRouter, status
from pydantic import BaseModel

from gateway.commands import send_command
from gateway.deps import CurrentUser, StateDep
from jauge_shared.contracts import ImportKind, RequestImport

router = APIRouter(prefix="/api/imports", tags=["imports"])


class ImportRequestBody(BaseModel):
    kind: ImportKind


class Accepted(BaseModel):
    job_id: str
    status: str = "queued"


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={503: {"description": "Broker unavailable: nothing was accepted"}},
)
async def start_import(body: ImportRequestBody, user: CurrentUser, state: StateDep) -> Accepted:
    """Import the files waiting in the kind's inbox; follow the job on /ws or /api/jobs."""
    job_id = uuid4().hex
    await send_command(
        state,
        RequestImport(producer="gateway", job_id=job_id, kind=body.kind, user_id=user.username),
    )
    return Accepted(job_id=job_id)
