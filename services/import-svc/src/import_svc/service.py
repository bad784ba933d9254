"""The import workflow: queue, start under the lock, fan out, count, clean up, finish.

Every step is safe to run twice (redelivery, a replica dying half-way): state moves
by compare-and-set, events carry ids derived from the work, and files move atomically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from import_svc.files import FileStore
from import_svc.lock import ImportLock
from import_svc.processing import FileOutcome, process_file
from import_svc.repository import FileState, ImportRepository, JobState
from jauge_shared.contracts import (
    FileImported,
    ImportCleanupStarted,
    ImportFile,
    ImportFinished,
    ImportKind,
    ImportQueued,
    ImportStarted,
    ImportStatus,
    Message,
    RequestImport,
    stable_event_id,
    utc_now,
)

logger = logging.getLogger("import_svc")

PRODUCER = "import-svc"
Emit = Callable[[Message], Awaitable[None]]


def import_title(kind: ImportKind) -> str:
    if kind is ImportKind.EDI:
        return "Import des factures EDI"
    return f"Import BBGR {kind.value.removeprefix('bbgr_')}"


def final_message(processed: int, failed: int) -> str:
    if processed == 0:
        return "Import terminé : aucun fichier à importer"
    plural = "s" if processed > 1 else ""
    text = f"Import terminé : {processed} fichier{plural} traité{plural}"
    return text + (f", {failed} en erreur" if failed else "")


class ImportService:
    def __init__(
        self,
        repository: ImportRepository,
        lock: ImportLock,
        files: FileStore,
        emit: Emit,
        *,
        deadline_s: float,
        max_file_bytes: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repo = repository
        self.lock = lock
        self.files = files
        self.emit = emit
        self.deadline = timedelta(seconds=deadline_s)
        self.max_file_bytes = max_file_bytes
        self.clock = clock
        self._schedule_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    # --- requests -------------------------------------------------------------------
    async def request(self, command: RequestImport) -> None:
        job = {
            "_id": command.job_id,
            "kind": command.kind.value,
            "user_id": command.user_id,
            "upload_ids": command.upload_ids,
            "title": import_title(command.kind),
            "state": JobState.QUEUED.value,
            "requested_at": command.occurred_at,
            "announced_position": None,
            "dispatched": False,
        }
        await self.repo.add_job(job)
        await self.schedule()

    # --- scheduling -----------------------------------------------------------------
    async def schedule(self) -> None:
        """One pass: resume or expire the active job, else start the next queued one."""
        async with self._schedule_lock:
            now = self.clock()
            active = await self.repo.jobs_in(JobState.RUNNING, JobState.CLEANING)
            for job in active:
                if await self.lock.acquire(job["_id"], now):
                    await self._resume(job, now)
            if await self.repo.jobs_in(JobState.RUNNING, JobState.CLEANING):
                await self._announce_positions()
                return
            queued = await self.repo.queued_jobs()
            if queued and await self.lock.acquire(queued[0]["_id"], now):
                await self._start(queued[0])
            await self._announce_positions()

    async def _announce_positions(self) -> None:
        for position, job in enumerate(await self.repo.queued_jobs(), start=1):
            if job.get("announced_position") == position:
                continue
            await self.emit(
                ImportQueued(
                    event_id=stable_event_id(job["_id"], "queued", str(position)),
                    producer=PRODUCER,
                    job_id=job["_id"],
                    kind=ImportKind(job["kind"]),
                    user_id=job["user_id"],
                    title=job["title"],
                    position=position,
                )
            )
            await self.repo.jobs.update_one(
                {"_id": job["_id"]}, {"$set": {"announced_position": position}}
            )

    async def _start(self, job: dict[str, Any]) -> None:
        now = self.clock()
        started = await self.repo.move_job(
            job["_id"], JobState.QUEUED, JobState.RUNNING, now, started_at=now
        )
        if started is None:
            return
        kind = ImportKind(job["kind"])
        if job["upload_ids"]:
            names = self.files.claim_uploads(job["upload_ids"], job["_id"])
        else:
            names = self.files.claim_inbox(kind, job["_id"])
        await self.repo.add_files(job["_id"], names, now)
        await self.repo.jobs.update_one({"_id": job["_id"]}, {"$set": {"total": len(names)}})
        await self.emit(
            ImportStarted(
                event_id=stable_event_id(job["_id"], "started"),
                producer=PRODUCER,
                job_id=job["_id"],
                kind=kind,
                user_id=job["user_id"],
                title=job["title"],
                total=len(names),
            )
        )
        await self._dispatch(started)

    async def _dispatch(self, job: dict[str, Any]) -> None:
        kind = ImportKind(job["kind"])
        for doc in await self.repo.file_results(job["_id"]):
            if doc["state"] == FileState.ANNOUNCED.value:
                continue
            await self.emit(
                ImportFile(
                    event_id=stable_event_id(job["_id"], "file", doc["name"]),
                    producer=PRODUCER,
                    job_id=job["_id"],
                    kind=kind,
                    item=doc["name"],
                    index=doc["index"],
                )
            )
        await self.repo.jobs.update_one({"_id": job["_id"]}, {"$set": {"dispatched": True}})
        await self._check_completion(job["_id"])

    async def _resume(self, job: dict[str, Any], now: datetime) -> None:
        """The job's lease was free or ours: make sure it is still moving."""
        started_at = job.get("started_at")
        if (
            job["state"] == JobState.RUNNING.value
            and started_at
            and now - started_at > self.deadline
        ):
            await self._expire(job)
            return
        if job["state"] == JobState.CLEANING.value:
            await self._clean_up_and_finish(job)
        elif not job.get("dispatched"):
            await self._dispatch(job)
        else:
            await self._check_completion(job["_id"])

    async def _expire(self, job: dict[str, Any]) -> None:
        now = self.clock()
        failed = await self.repo.move_job(
            job["_id"], JobState.RUNNING, JobState.FAILED, now, finished_at=now
        )
        if failed is None:
            return
        pending = await self.repo.count_files(job["_id"], FileState.PENDING, FileState.DONE)
        kind = ImportKind(job["kind"])
        # unprocessed files go back to the inbox: the next import picks them up
        for name in self.files.claimed(job["_id"]):
            self.files._move_out(self.files.work(job["_id"]) / name, self.files.inbox(kind))
        minutes = int(self.deadline.total_seconds() // 60)
        await self._finish(
            failed,
            ImportStatus.FAILED,
            error=(
                f"Délai dépassé ({minutes} min) : {pending} fichier(s) non traité(s), "
                "remis dans la boîte de réception"
            ),
        )

    # --- files ----------------------------------------------------------------------
    async def import_file(self, command: ImportFile) -> None:
        job = await self.repo.get_job(command.job_id)
        file = await self.repo.get_file(command.job_id, command.item)
        if job is None or file is None:
            logger.warning("file of an unknown job", extra={"job_id": command.job_id})
            return
        if job["state"] != JobState.RUNNING.value:
            return  # the job ended (deadline): its leftover files went back to the inbox
        await self.lock.renew(job["_id"], self.clock())
        if file["state"] == FileState.PENDING.value:
            path = self.files.work(job["_id"]) / command.item
            outcome = await asyncio.to_thread(process_file, command.kind, path, self.max_file_bytes)
            for invoice in outcome.invoices:
                await self.repo.save_invoice(
                    {**invoice, "job_id": job["_id"], "source_file": command.item}
                )
            await self.repo.finish_file(job["_id"], command.item, _result(outcome))
            file = await self.repo.get_file(command.job_id, command.item)
            assert file is not None
        self._settle(command.kind, job["_id"], file)
        await self.emit(
            FileImported(
                event_id=stable_event_id(job["_id"], "file", command.item),
                producer=PRODUCER,
                job_id=job["_id"],
                item=command.item,
                ok=file["ok"],
                error=file.get("error"),
                invoices=file.get("invoices", 0),
                lines=file.get("lines", 0),
                duration_ms=file.get("duration_ms", 0),
            )
        )
        await self.repo.mark_announced(job["_id"], command.item)
        await self._check_completion(job["_id"])

    def _settle(self, kind: ImportKind, job_id: str, file: dict[str, Any]) -> None:
        """Move the file to where its result says, if an earlier try did not already."""
        if file["ok"]:
            self.files.archive_file(kind, job_id, file["name"], self.clock())
        else:
            self.files.reject_file(kind, job_id, file["name"], file.get("error") or "")

    async def _check_completion(self, job_id: str) -> None:
        if await self.repo.count_files(job_id, FileState.PENDING, FileState.DONE):
            return
        job = await self.repo.move_job(job_id, JobState.RUNNING, JobState.CLEANING, self.clock())
        if job is not None:
            await self._clean_up_and_finish(job)

    # --- the end --------------------------------------------------------------------
    async def _clean_up_and_finish(self, job: dict[str, Any]) -> None:
        await self.emit(
            ImportCleanupStarted(
                event_id=stable_event_id(job["_id"], "cleanup"),
                producer=PRODUCER,
                job_id=job["_id"],
            )
        )
        await self._clean_up(job)
        now = self.clock()
        done = await self.repo.move_job(
            job["_id"], JobState.CLEANING, JobState.COMPLETED, now, finished_at=now
        )
        if done is not None:
            await self._finish(done, ImportStatus.COMPLETED)

    async def _clean_up(self, job: dict[str, Any]) -> None:
        """The seed's sql_clean_general: drop what this import orphaned, recompute totals."""
        self.files.remove_work(job["_id"])

    async def _finish(
        self, job: dict[str, Any], status: ImportStatus, error: str | None = None
    ) -> None:
        processed = await self.repo.count_files(job["_id"], FileState.ANNOUNCED)
        failed = await self.repo.files.count_documents({"job_id": job["_id"], "ok": False})
        invoices = sum(d.get("invoices", 0) for d in await self.repo.file_results(job["_id"]))
        await self.emit(
            ImportFinished(
                event_id=stable_event_id(job["_id"], "finished"),
                producer=PRODUCER,
                job_id=job["_id"],
                status=status,
                error=error,
                processed=processed,
                failed=failed,
                invoices=invoices,
                message=final_message(processed, failed) if error is None else error,
            )
        )
        await self.lock.release(job["_id"])
        # the next queued import starts at once, not at the next scheduler pass
        task = asyncio.create_task(self.schedule())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _result(outcome: FileOutcome) -> dict[str, Any]:
    return {
        "ok": outcome.ok,
        "error": outcome.error,
        "invoices": len(outcome.invoices),
        "lines": outcome.lines,
        "rows": outcome.rows,
        "duration_ms": outcome.duration_ms,
    }
