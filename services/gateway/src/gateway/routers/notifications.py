"""The caller's in-app notifications (issue 16, point 9): the bell's list and unread
count, and marking one read. Owner only: a notification is found in the caller's own
inbox or not at all (docs/notifications.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from gateway.deps import CurrentUser, NotificationsDep
from gateway.errors import AUTHENTICATED, error_responses

router = APIRouter(prefix="/api/notifications", tags=["notifications"], responses=AUTHENTICATED)


class Notification(BaseModel):
    id: str
    kind: str
    level: str
    message: str
    job_id: str | None = None
    link: str | None = None
    created_at: str
    read: bool


class NotificationPage(BaseModel):
    items: list[Notification]
    next_cursor: str | None
    unread: int


@router.get("", response_model=NotificationPage)
async def list_notifications(
    user: CurrentUser,
    store: NotificationsDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> NotificationPage:
    """The caller's notifications, newest first; `next_cursor` gives the next page."""
    page = await store.page(user.username, cursor, limit)
    return NotificationPage(
        items=[Notification(**item) for item in page.items],
        next_cursor=page.next_cursor,
        unread=page.unread,
    )


@router.post(
    "/{notification_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
async def mark_read(
    notification_id: Annotated[str, Path(max_length=200)],
    user: CurrentUser,
    store: NotificationsDep,
) -> None:
    """Mark one of the caller's notifications read."""
    if not await store.mark_read(user.username, notification_id):
        raise HTTPException(404, detail="Notification introuvable.")
