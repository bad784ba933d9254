"""The progress read model, as the gateway reads it: the one room that reads the
`progress` collection (progress-svc writes it) and says who may see which document.

The jobs and tasks routes, the SSE stream, the WebSocket and the live updates all ask
`ProgressView`; none of them queries the collection or applies the visibility rule
itself. It also keeps the two in-memory views fed by progress.updated: each caller's
newest jobs (`RecentJobs`, the `jobs` snapshot) and the latest task durations
(`RecentDurations`, the tasks' ETA).

Visibility: an agent sees their own jobs and tasks, an admin everyone's; a document the
caller may not see is answered exactly as one that does not exist (404, or no snapshot).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException, status
from pymongo.asynchronous.collection import AsyncCollection

from gateway import keyset
from gateway.durations import RecentDurations, Sample
from gateway.list_filters import ACTIVE, TASK_KINDS, JobFilters, TaskFilters, aware
from gateway.list_pages import ListPages, Range
from gateway.recent import RecentJobs
from gateway.users import User
from jauge_shared.contracts import ProgressDocument, TaskStatus
from jauge_shared.contracts.colis import can_cancel as shared_can_cancel
from jauge_shared.contracts.colis import can_retry as shared_can_retry
from jauge_shared.contracts.progress_lists import EVERYONE, job_id_of, prefix, scope_of, when

Progress = AsyncCollection[dict[str, Any]]
Doc = dict[str, Any]  # a progress document as stored
Job = dict[str, Any]  # a progress document as the API and the sockets show it
Page = tuple[list[Job], str | None]  # a page of a list, and the cursor of the next one

NOT_FOUND = HTTPException(status.HTTP_404_NOT_FOUND, detail="Tâche introuvable.")
ETA_SAMPLE = 20  # completed tasks per operation behind an ETA
JOBS_SNAPSHOT_LIMIT = 100  # jobs in a `jobs` subscription's snapshot


def to_public(doc: Doc) -> Job:
    return ProgressDocument.model_validate(doc).model_dump(mode="json", by_alias=True)


def can_retry(doc: Doc, user: User) -> bool:
    """What colis-svc said with the task's last step (`colis.step_changed`); colis-svc's
    rule (jauge_shared.contracts.colis) for a document stored before it said so."""
    said = doc.get("can_force_retry" if user.is_admin else "can_retry")
    if said is not None:
        return bool(said)
    retries = (doc.get("retry_count") or 0, doc.get("max_retries") or 0)
    return shared_can_retry(str(doc.get("step_status")), *retries, force=user.is_admin)


def can_cancel(doc: Doc) -> bool:
    said = doc.get("can_cancel")
    return bool(said) if said is not None else shared_can_cancel(str(doc.get("step_status")))


def present(doc: Doc, user: User, averages: dict[str, float], now: datetime) -> Job:
    """A task as the dashboard shows it: what may be done with it and its ETA."""
    view = to_public(doc)
    view["can_retry"] = can_retry(doc, user)
    view["can_cancel"] = can_cancel(doc)
    eta = None
    if doc.get("step_status") in ACTIVE and doc.get("kind") in averages:
        started = doc.get("started_at") or doc.get("created_at") or now
        elapsed = (now - started).total_seconds()
        eta = round(max(averages[doc["kind"]] - elapsed, 0.0), 1)
    view["eta_s"] = eta
    view["estimated_completion_at"] = (
        (now + timedelta(seconds=eta)).isoformat() if eta is not None else None
    )
    return view


class ProgressView:
    def __init__(self, progress: Progress, lists: Progress) -> None:
        self.progress = progress
        self.pages = ListPages(lists, progress)
        self.recent = RecentJobs(self._newest_stored, limit=JOBS_SNAPSHOT_LIMIT)
        self.durations = RecentDurations(TASK_KINDS, self._stored_durations, sample=ETA_SAMPLE)

    # --- fed by progress.updated -------------------------------------------------------

    def update(self, job: Job) -> None:
        """A newer state of a job, from this replica's progress.updated queue."""
        self.recent.update(job)
        self.durations.update(job)

    def forget(self) -> None:
        """Read the store again on the next request (after a broker reconnection)."""
        self.recent.forget()
        self.durations.forget()

    async def _newest_stored(self, query: dict[str, Any], n: int) -> list[Job]:
        """The `n` newest jobs of an owner (`query`) or of everyone, read once per view
        (RecentJobs): the newest started, from their list. A job started long before
        and updated since (a task retried) joins the view with its next update."""
        owner = query.get("owner")
        scope = scope_of(owner) if isinstance(owner, str) else EVERYONE
        where = Range.of(prefix("jobs|all", scope), newest_first=True)
        docs, _ = await self.pages.page(where, None, n, lambda doc: True)
        never = datetime.min.replace(tzinfo=UTC)
        docs.sort(key=lambda doc: aware(doc.get("updated_at")) or never, reverse=True)
        return [to_public(doc) for doc in docs]

    async def _stored_durations(self, kind: str, n: int) -> list[Sample]:
        """The `n` latest completions of `kind` in the store (read once, by
        RecentDurations), from everyone's list of completed tasks."""
        where = Range.of(prefix("tasks|completed", EVERYONE), newest_first=True)

        def timed(doc: Doc) -> bool:
            return doc.get("kind") == kind and bool(
                doc.get("duration_s") and doc.get("finished_at")
            )

        docs, _ = await self.pages.page(where, None, n, timed)
        return [(str(d["_id"]), d["finished_at"], float(d["duration_s"])) for d in docs]

    # --- one document ------------------------------------------------------------------

    async def visible(self, user: User, job_id: str) -> Doc | None:
        """One progress document if the caller may see it.

        Read by `_id` alone and checked here rather than with `owner` in the filter:
        FerretDB's SQLite backend uses the `_id` index only for a filter on `_id` alone,
        and scans the collection for any other (every GET of a task or job, every poll).
        """
        doc = await self.progress.find_one({"_id": job_id})
        return doc if doc is not None and user.may_see(doc.get("owner")) else None

    async def hidden_from(self, user: User, job_id: str) -> bool:
        """The job exists and is someone else's (a job not there yet may be followed)."""
        doc = await self.progress.find_one({"_id": job_id}, {"owner": 1})
        return doc is not None and not user.may_see(doc.get("owner"))

    async def snapshot(self, user: User, job_id: str) -> Job | None:
        found = await self.visible(user, job_id)
        return to_public(found) if found is not None else None

    async def job(self, user: User, job_id: str) -> Job:
        """The job if the caller may see it; 404 otherwise, never another agent's data."""
        doc = await self.visible(user, job_id)
        if doc is None:
            raise NOT_FOUND
        return to_public(doc)

    async def task_doc(self, user: User, task_id: str) -> Doc:
        """A parcel task as stored, if the caller may see it; 404 otherwise."""
        doc = await self.visible(user, task_id)
        if doc is None or doc.get("kind") not in TASK_KINDS:
            raise NOT_FOUND
        return doc

    async def task(self, user: User, task_id: str) -> Job:
        doc = await self.task_doc(user, task_id)
        return present(doc, user, await self.durations.averages(), datetime.now(UTC))

    # --- lists ---------------------------------------------------------------------------

    def _scope(self, user: User, owner: str | None) -> str:
        """Whose list: the caller's; an admin's is everyone's, or one `owner`'s."""
        if user.is_admin:
            return scope_of(owner) if owner else EVERYONE
        return scope_of(user.username)

    async def jobs(self, user: User, filters: JobFilters, cursor: str | None, limit: int) -> Page:
        """The jobs and tasks the caller may see, newest started first, a page at a time."""
        where = Range.of(
            prefix(f"jobs|{filters.family()}", self._scope(user, filters.owner)),
            newest_first=True,
            **filters.days(),
        )
        docs, next_key = await self.pages.page(
            where, keyset.after_key(cursor), limit, lambda doc: filters.accepts(doc, user)
        )
        return [to_public(doc) for doc in docs], _cursor(next_key)

    async def newest_jobs(self, user: User) -> list[Job]:
        """The `jobs` subscription's snapshot, from memory once loaded."""
        return await self.recent.newest(user)

    async def import_job_ids(self, user: User) -> list[str]:
        """The imports the caller started (import-svc knows no users): read from their
        list's entries alone."""
        where = Range.of(prefix("jobs|import", self._scope(user, None)), newest_first=True)
        ids: list[str] = []
        while keys := await self.pages.keys(where, 1000):
            ids += [job_id_of(key) for key in keys]
            where = where.after(keys[-1])
        return ids

    async def tasks(self, user: User, filters: TaskFilters, cursor: str | None, limit: int) -> Page:
        """`active`: waiting or running, oldest first; `failed`: newest first, the
        retryable ones first within a page; `completed`: the last 24 h, newest first."""
        now = datetime.now(UTC)
        where = Range.of(
            prefix(f"tasks|{filters.state}", self._scope(user, filters.owner)),
            newest_first=filters.state != "active",
            **filters.bounds(now),
        )
        averages = await self.durations.averages()
        docs, next_key = await self.pages.page(
            where, keyset.after_key(cursor), limit, lambda doc: filters.accepts(doc, user, now)
        )
        tasks = [present(doc, user, averages, now) for doc in docs]
        if filters.state == "failed":  # retryable first, each group newest first (stable)
            tasks.sort(key=lambda t: not t["can_retry"])
        return tasks, _cursor(next_key)

    async def task_stats(self, user: User, owner: str | None) -> dict[str, Any]:
        """Today's figures (UTC day) for the caller's tasks, or everyone's for an admin:
        read from today's entries and the running ones, never from all history."""
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        scope = self._scope(user, owner)
        today = Range.of(prefix("jobs|colis", scope), newest_first=True, since=when(midnight))
        counts: dict[str, int] = {}
        for doc in await self.pages.every_document(today):
            key = str(doc.get("step_status"))
            counts[key] = counts.get(key, 0) + 1
        total = sum(counts.values())
        completed = counts.get(TaskStatus.COMPLETED.value, 0)
        failed = counts.get(TaskStatus.FAILED.value, 0) + counts.get(
            TaskStatus.FAILED_FINAL.value, 0
        )
        busy = Range.of(prefix("tasks|busy", scope), newest_first=True)
        active = len(await self.pages.every_document(busy))
        return {
            "total_today": total,
            "completed_today": completed,
            "failed_today": failed,
            "active_now": active,
            "success_rate": round(completed / total * 100, 1) if total else 0.0,
            "scope": "all" if user.is_admin and not owner else (owner or user.username),
        }


def _cursor(next_key: str | None) -> str | None:
    return keyset.key_cursor(next_key) if next_key is not None else None
