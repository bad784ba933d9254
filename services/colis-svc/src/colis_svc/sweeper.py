"""The sweeper: what happens to tasks when nobody is looking.

Every replica runs it every `sweeper_interval_s`; each decision it takes about a task is a
marker inserted once (see repository.py), so two replicas never act twice.

- due retries: a `failed_retry` task whose `next_retry_at` has come is put back to
  `pending` and its command published again;
- stalls: a task still in an active step `task_time_limit_s` after its run started (its
  worker crashed or hangs), or still `pending` that long after it was put back (a
  relaunch that died between storing `pending` and publishing its command), is reported
  (log, `jauge_colis_tasks_stalled_total`, a `colis.task_stalled` event) and requeued
  while retries remain, else failed;
- photos: a task waiting for its photo is resumed if the photo is there but its notice
  was lost, and failed past `photo_deadline_s` (photos.py);
- clean-up: finished tasks older than `finished_task_retention_s` are removed (a
  failed_final creation's partial parcel with them), at most once every
  `CLEANUP_EVERY_S`, and uploads no live task refers to, older than
  `orphan_upload_age_s`, are deleted.

Retries and stalls are looked for among the open tasks only (`open_tasks_in`): on
FerretDB a query on `status` reads every task kept, and each sweep would have.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from prometheus_client import Counter

from colis_svc import photos
from colis_svc.control import Control
from colis_svc.domain import ACTIVE_STATUSES
from colis_svc.repository import ColisRepository, stalled_decision
from colis_svc.runs import FINISHED, Emit, Tasks
from colis_svc.settings import SERVICE, ColisSettings
from jauge_shared.contracts import ColisTaskStalled, TaskStatus, stable_event_id
from jauge_shared.contracts.colis import CLOSED_STATUSES

logger = logging.getLogger("colis_svc.sweeper")

STALLED = Counter(
    "jauge_colis_tasks_stalled_total", "Parcel tasks found stalled, by action.", ["action"]
)
# finding expired tasks reads every task on FerretDB (0.6 s with 10,000): they are kept
# for days, so looking once an hour, not at every sweep, removes them as surely
CLEANUP_EVERY_S = 3600.0
CLEANED = Counter("jauge_colis_cleaned_total", "Old tasks and orphaned uploads removed.", ["what"])


class Sweeper:
    def __init__(
        self,
        repository: ColisRepository,
        tasks: Tasks,
        control: Control,
        settings: ColisSettings,
        emit: Emit,
        republish: Emit,
    ) -> None:
        self.repo = repository
        self.tasks = tasks
        self.control = control
        self.settings = settings
        self.emit = emit
        self.republish = republish
        self._cleaned_at: float | None = None

    async def sweep(self) -> dict[str, int]:
        counts = {"retried": 0, "stalled": 0, "removed_tasks": 0, "removed_uploads": 0}
        counts["retried"] = await self.retry_due()
        counts["photos"] = await photos.sweep(self.tasks, self.republish)
        counts["stalled"] = await self.stalled()
        if self._cleanup_due():
            counts["removed_tasks"] = await self.remove_old_tasks()
        counts["removed_uploads"] = await self.remove_orphan_uploads()
        return counts

    def _cleanup_due(self) -> bool:
        now = time.monotonic()
        if self._cleaned_at is not None and now - self._cleaned_at < CLEANUP_EVERY_S:
            return False
        self._cleaned_at = now
        return True

    async def retry_due(self) -> int:
        retried = 0
        for doc in await self.repo.open_tasks_in([TaskStatus.FAILED_RETRY.value]):
            if await self.control.retry_due(doc, self.republish):
                retried += 1
        return retried

    async def stalled(self) -> int:
        now = self.tasks.clock()
        limit = timedelta(seconds=self.settings.task_time_limit_s)
        found = 0
        for doc in await self.repo.open_tasks_in([s.value for s in ACTIVE_STATUSES]):
            if photos.is_waiting(doc):  # no worker holds it: see photos.py for its deadline
                continue
            started = doc.get("run_started_at") or doc.get("updated_at")
            if started is None or now - started < limit:
                continue
            status, seq = TaskStatus(doc["status"]), str(doc["seq"])
            if not await self.repo.mark(doc["_id"], stalled_decision(doc["seq"]), now):
                continue
            action = await self.control.handle_stalled(doc)
            found += 1
            STALLED.labels(action).inc()
            logger.warning(
                "stalled task",
                extra={"task_id": doc["_id"], "status": status.value, "action": action},
            )
            await self.emit(
                ColisTaskStalled(
                    producer=SERVICE,
                    job_id=doc["_id"],
                    event_id=stable_event_id(doc["_id"], "stalled", seq),
                    task_id=doc["_id"],
                    status=status,
                    stalled_since=started,
                    action="failed" if action == "failed" else "requeued",
                )
            )
        return found

    async def remove_old_tasks(self) -> int:
        before = self.tasks.clock() - timedelta(seconds=self.settings.finished_task_retention_s)
        removed = 0
        for doc in await self.repo.finished_before(FINISHED, before):
            await self.control.undo_finished(doc)
            await self.repo.delete_task(doc)
            removed += 1
        CLEANED.labels("tasks").inc(removed)
        return removed

    async def remove_orphan_uploads(self) -> int:
        uploads = self.tasks.files.uploads
        old = await uploads.older_than(self.settings.orphan_upload_age_s)
        if not old:
            return 0
        # a failed_final task may still be retried by hand: its upload is live too
        live_statuses = [s.value for s in TaskStatus if s not in CLOSED_STATUSES]
        live = await self.repo.live_upload_ids(live_statuses)
        removed = 0
        for upload_id in old:
            if upload_id not in live:
                await uploads.delete(upload_id)
                removed += 1
        CLEANED.labels("uploads").inc(removed)
        return removed
