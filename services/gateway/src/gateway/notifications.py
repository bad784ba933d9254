"""In-app notifications: what an agent is told, kept per owner, read by `_id` only.

Each owner has one inbox document (`notifications` collection, `_id` = the owner): the
newest `limit` notifications, newest first. One document per owner rather than one per
notification because FerretDB's SQLite backend uses no index but `_id`
(docs/decisions.md, "FerretDB scans for any filter but `_id`"): a filter on the owner
would read every notification ever kept, on every bell. The inbox is bounded, so the
read and the write are one small document whatever the history (docs/notifications.md).

Writes are a compare-and-set on the inbox's `v` (the `_id` is in the filter, so FerretDB
pushes it down): a notification added by the consumer and one marked read by the API at
the same instant never lose each other, on MongoDB and on the project's FerretDB build
(deploy/local/ferretdb-atomic-writes.patch). The writes to one inbox also take a lock
per owner in this process: fewer conflicts to retry, and exact counts within one
process on a FerretDB built without that patch (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import base64
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jauge_shared.contracts import NotificationRequested, ProgressStatus

Notification = dict[str, Any]
COLLECTION = "notifications"
CAS_ATTEMPTS = 20


def from_request(event: NotificationRequested) -> Notification:
    """colis-svc's notification (a parcel recorded or changed), keyed by its event id:
    a redelivery or an announcement again is the same notification."""
    return {
        "id": str(event.event_id),
        "kind": "colis",
        "level": "info",
        "message": event.message,
        "job_id": event.job_id,
        "link": None,
        "created_at": event.occurred_at.isoformat(),
        "read": False,
    }


def from_failure(job: dict[str, Any]) -> Notification | None:
    """A task or an import that ended in failure, from its progress document; None for
    anything else. Keyed by the job and its attempt: the same failure published again
    (progress-svc republishes on duplicates) is one notification, a new failure after a
    retry is another."""
    if job.get("status") != ProgressStatus.FAILED.value:
        return None
    kind = str(job.get("kind") or "")
    job_id = str(job["id"])
    attempt = int(job.get("retry_count") or 0)
    if kind.startswith("colis."):
        what = f"La tâche « {job.get('title') or job_id} » a échoué"
        link = "/taches"
    else:
        what = f"L'import « {job.get('title') or job_id} » a échoué"
        link = f"/imports/{job_id}"
    reason = job.get("message") or ""
    at = job.get("finished_at") or job.get("updated_at") or datetime.now(UTC).isoformat()
    return {
        "id": f"failed:{job_id}:{attempt}",
        "kind": "failure",
        "level": "error",
        "message": f"{what} : {reason}" if reason else f"{what}.",
        "job_id": job_id,
        "link": link,
        "created_at": at if isinstance(at, str) else at.isoformat(),
        "read": False,
    }


@dataclass(frozen=True)
class Page:
    items: list[Notification]
    next_cursor: str | None
    unread: int


def encode_cursor(notification_id: str) -> str:
    return base64.urlsafe_b64encode(notification_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        return None


class NotificationStore:
    def __init__(self, collection: AsyncCollection[dict[str, Any]], limit: int = 100) -> None:
        self.collection = collection
        self.limit = limit
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, owner: str) -> asyncio.Lock:
        lock = self._locks.get(owner)
        if lock is None:
            lock = self._locks[owner] = asyncio.Lock()
        return lock

    async def add(self, owner: str, notification: Notification) -> bool:
        """Keep `notification` for `owner`; False if it is already there (a redelivery)."""
        async with self._lock(owner):
            return await self._add(owner, notification)

    async def _add(self, owner: str, notification: Notification) -> bool:
        for _ in range(CAS_ATTEMPTS):
            inbox = await self.collection.find_one({"_id": owner})
            if inbox is None:
                try:
                    await self.collection.insert_one(
                        {"_id": owner, "v": 1, "items": [{**notification, "owner": owner}]}
                    )
                except DuplicateKeyError:
                    continue  # created meanwhile: read it again
                return True
            items = inbox.get("items", [])
            if any(item["id"] == notification["id"] for item in items):
                return False
            kept = [{**notification, "owner": owner}, *items][: self.limit]
            if await self._swap(owner, inbox["v"], kept):
                return True
        raise RuntimeError(f"inbox of {owner} kept changing")

    async def mark_read(self, owner: str, notification_id: str) -> bool:
        """False if the owner has no such notification (never someone else's)."""
        async with self._lock(owner):
            return await self._mark_read(owner, notification_id)

    async def _mark_read(self, owner: str, notification_id: str) -> bool:
        for _ in range(CAS_ATTEMPTS):
            inbox = await self.collection.find_one({"_id": owner})
            items = inbox.get("items", []) if inbox else []
            if not any(item["id"] == notification_id for item in items):
                return False
            assert inbox is not None
            kept = [{**i, "read": True} if i["id"] == notification_id else i for i in items]
            if kept == items or await self._swap(owner, inbox["v"], kept):
                return True
        raise RuntimeError(f"inbox of {owner} kept changing")

    async def page(self, owner: str, cursor: str | None, limit: int) -> Page:
        """The owner's notifications, newest first, after `cursor` (the last one seen)."""
        inbox = await self.collection.find_one({"_id": owner})
        items: list[Notification] = inbox.get("items", []) if inbox else []
        start = 0
        if cursor is not None:
            after = decode_cursor(cursor)
            ids = [item["id"] for item in items]
            start = ids.index(after) + 1 if after in ids else len(items)
        chosen = items[start : start + limit]
        more = start + limit < len(items)
        return Page(
            items=[_public(item) for item in chosen],
            next_cursor=encode_cursor(chosen[-1]["id"]) if more and chosen else None,
            unread=sum(1 for item in items if not item.get("read")),
        )

    async def _swap(self, owner: str, version: int, items: list[Notification]) -> bool:
        result = await self.collection.update_one(
            {"_id": owner, "v": version}, {"$set": {"items": items, "v": version + 1}}
        )
        return result.modified_count == 1


def _public(item: Notification) -> Notification:
    return {key: value for key, value in item.items() if key != "owner"}
