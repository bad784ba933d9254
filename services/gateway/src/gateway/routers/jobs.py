"""Progress documents: the read model, read directly (read-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from gateway.deps import CurrentUser, ProgressDep
from gateway.users import User
from jauge_shared.contracts import ProgressDocument, ProgressStatus

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

NOT_FOUND = HTTPException(status.HTTP_404_NOT_FOUND, detail="Tâche introuvable.")


def to_public(doc: dict[str, Any]) -> dict[str, Any]:
    return ProgressDocument.model_validate(doc).model_dump(mode="json", by_alias=True)


def visible_to(user: User) -> dict[str, Any]:
    return {} if user.is_admin else {"owner": user.username}


async def find_visible(progress: ProgressDep, user: User, job_id: str) -> dict[str, Any]:
    """The job if the caller may see it; 404 otherwise, never another agent's data."""
    doc = await progress.find_one({"_id": job_id, **visible_to(user)})
    if doc is None:
        raise NOT_FOUND
    return to_public(doc)


@router.get("", response_model=list[ProgressDocument], response_model_by_alias=True)
async def list_jobs(
    user: CurrentUser,
    progress: ProgressDep,
    kind: Annotated[str | None, Query(max_length=40, description="e.g. import.edi")] = None,
    status_: Annotated[ProgressStatus | None, Query(alias="status")] = None,
    since: Annotated[datetime | None, Query(description="Updated at or after (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """The jobs and tasks the caller may see, newest first."""
    query: dict[str, Any] = visible_to(user)
    if kind:
        query["kind"] = kind
    if status_:
        query["status"] = status_.value
    if since:
        query["updated_at"] = {"$gte": since}
    cursor = progress.find(query).sort("updated_at", -1).limit(limit)
    return [to_public(doc) async for doc in cursor]


@router.get(
    "/{job_id}",
    response_model=ProgressDocument,
    response_model_by_alias=True,
    responses={404: {"description": "Unknown, or not the caller's"}},
)
async def get_job(job_id: str, user: CurrentUser, progress: ProgressDep) -> dict[str, Any]:
    return await find_visible(progress, user, job_id)
