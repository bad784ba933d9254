"""The import workflow: queue, start under the lock, fan out, count, clean up, finish.

Every step is safe to run twice (redelivery, a replica dying half-way): state moves
by compare-and-set, events carry ids derived from the work, and files move atomically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from import_svc.files import FileStore, receive_uploads
from import_svc.lock import ImportLock
from import_svc.processing import FileOutcome, gauge_units, process_file, row_key
from import_svc.repository import STALE_TRANSITION, FileState, ImportRepository, JobState
from jauge_shared.blobs import Blobs
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
from jauge_shared.faults import FaultPoints
from jauge_shared.identity import connection_name
from jauge_shared.metrics import STATE_REANNOUNCED

logger = logging.getLogger("import_svc")

PRODUCER = "import-svc"
Emit = Callable[[Message], Awaitable[None]]
ENDED = (JobState.COMPLETED.value, JobState.FAILED.value)
# what a failed job's end says when the reason was not stored (a crash between the two)
UNKNOWN_FAILURE = "Import interrompu : délai dépassé"


def import_title(kind: ImportKind) -> str:
    if kind is ImportKind.EDI:
        return "Import des factures EDI"
    return f"Import BBGR {kind.value.removeprefix('bbgr_')}"


def final_message(processed: int, failed: int, *, rows: bool = False) -> str:
    if processed == 0:
        return "Import terminé : aucun fichier à importer"
    plural = "s" if processed > 1 else ""
    what = f"ligne{plural} traitée{plural}" if rows else f"fichier{plural} traité{plural}"
    text = f"Import terminé : {processed} {what}"
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
        faults: FaultPoints | None = None,
        uploads: Blobs | None = None,
    ) -> None:
        self.repo = repository
        self.uploads = uploads  # the import page's files, from the gateway (files.py)
        self.lock = lock
        self.files = files
        self.emit = emit
        self.deadline = timedelta(seconds=deadline_s)
        self.max_file_bytes = max_file_bytes
        self.clock = clock
        self.faults = faults or FaultPoints("", Path("."))
        self._schedule_lock = asyncio.Lock()
        self._finishing = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._announced_upto: dict[str, int] = {}

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
            if queued:
                await self._release_if_ended()
            if queued and await self.lock.acquire(queued[0]["_id"], now):
                await self._start(queued[0])
            await self._announce_positions()

    async def _release_if_ended(self) -> None:
        """A lock still held by an ended job (its end died before letting go) is free."""
        current = await self.lock.current()
        if current is None or current["released"]:
            return
        holder = await self.repo.get_job(current["holder"])
        if holder is None or holder["state"] in ENDED:
            await self.lock.release(current["holder"])

    async def _announce_positions(self) -> None:
        for position, job in enumerate(await self.repo.queued_jobs(), start=1):
            if job.get("announced_position") == position:
                continue
            await self.emit(_queued_event(job, position))
            await self.repo.set_job_fields(job["_id"], announced_position=position)

    async def _start(self, job: dict[str, Any]) -> None:
        now = self.clock()
        started = await self.repo.move_job(
            job["_id"], JobState.QUEUED, JobState.RUNNING, now, started_at=now
        )
        if started is None:
            return
        await self._prepare(started)
        await self._dispatch(started)

    async def _prepare(self, job: dict[str, Any]) -> None:
        """Claim the files, record them and the total, announce import.started.

        Safe to redo after a failure half-way (a store error, a crash): files already
        claimed are in the work folder and counted again, records are inserted once, and
        import.started has a stable id. Until `names` is recorded the job cannot end.
        """
        kind = ImportKind(job["kind"])
        if job["upload_ids"]:
            if self.uploads is not None:
                await receive_uploads(self.files, self.uploads, job["upload_ids"])
            self.files.claim_uploads(job["upload_ids"], job["_id"])
        else:
            self.files.claim_inbox(kind, job["_id"])
        names = self.files.claimed(job["_id"])
        units = None
        if kind is not ImportKind.EDI:
            # a BBGR gauge advances by rows: count them before announcing the total
            work = self.files.work(job["_id"])
            units = [
                await asyncio.to_thread(gauge_units, kind, work / name, self.max_file_bytes)
                for name in names
            ]
        total = sum(units) if units is not None else len(names)
        await self.repo.add_files(job["_id"], names, self.clock(), units)
        await self.repo.set_job_fields(job["_id"], total=total, names=names)
        job.update(total=total, names=names)
        self.faults.hit("import.started_stored")
        await self._announce_start(job)

    async def _announce_start(self, job: dict[str, Any]) -> None:
        await self.emit(_started_event(job))

    # --- announcing again -------------------------------------------------------------
    async def announce(self, job_id: str, reason: str) -> None:
        """Publish the job's stored state again, each event with its first id.

        The reconciler asks when the job's gauge has not moved for a while: an event
        may have been lost between a write and its publish (a crash, the broker away).
        Every event below is derived from what is stored, so a consumer that had it
        already changes nothing.
        """
        job = await self.repo.get_job(job_id)
        if job is None:
            logger.info("announce asked for an unknown import", extra={"job_id": job_id})
            return
        if job["state"] == JobState.QUEUED.value:
            if job.get("announced_position"):
                await self.emit(_queued_event(job, job["announced_position"]).again())
            STATE_REANNOUNCED.labels(PRODUCER, reason).inc()
            return
        if job.get("total") is None:
            return  # its start is being redone (_resume): that announces it
        await self.emit(_started_event(job).again())
        files = await self.repo.file_results(job)
        for file in files:
            if file["state"] == FileState.ANNOUNCED.value:
                for event in _item_events(job_id, file):
                    await self.emit(event.again())
        if job["state"] == JobState.CLEANING.value:
            await self.emit(_cleanup_event(job_id).again())
        if job["state"] in ENDED:
            await self._announce_end(job, reason, files)
        else:
            STATE_REANNOUNCED.labels(PRODUCER, reason).inc()

    async def _announce_end(
        self, job: dict[str, Any], reason: str, files: list[dict[str, Any]] | None = None
    ) -> None:
        """An ended job's import.finished again; the lock too, if the end died before
        letting it go (the next import would otherwise wait out the lease)."""
        status = (
            ImportStatus.COMPLETED
            if job["state"] == JobState.COMPLETED.value
            else ImportStatus.FAILED
        )
        error = None if status is ImportStatus.COMPLETED else job.get("error") or UNKNOWN_FAILURE
        files = files if files is not None else await self.repo.file_results(job)
        await self.emit(_finished_event(job, status, error, files).again())
        STATE_REANNOUNCED.labels(PRODUCER, reason).inc()
        current = await self.lock.current()
        if current is not None and not current["released"] and current["holder"] == job["_id"]:
            await self.lock.release(job["_id"])
            self._schedule_soon()

    async def _dispatch(self, job: dict[str, Any]) -> None:
        kind = ImportKind(job["kind"])
        for doc in await self.repo.file_results(job):
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
        await self.repo.set_job_fields(job["_id"], dispatched=True)
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
        elif job.get("names") is None:
            # the start failed half-way: redo it, but only once the starter has had
            # time to finish, or two replicas would list the work folder mid-claim
            if started_at and now - started_at > STALE_TRANSITION:
                await self._prepare(job)
                await self._dispatch(job)
        elif not job.get("dispatched"):
            await self._announce_start(job)  # a duplicate if it was sent: ignored
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
        pending = await self.repo.count_files(failed, FileState.PENDING, FileState.DONE)
        kind = ImportKind(job["kind"])
        seconds = int(self.deadline.total_seconds())
        limit = f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"
        if job.get("upload_ids"):
            # an agent's uploaded files are theirs alone: never into the shared inbox,
            # where the next import, anyone's, would read them. They go to errors/ with
            # a note, and the agent is told to send them again.
            for name in self.files.claimed(job["_id"]):
                self.files.reject_file(
                    kind,
                    job["_id"],
                    name,
                    f"Délai dépassé ({limit}) avant la lecture de ce fichier envoyé : "
                    "il n'a pas été importé.",
                )
            where = "à envoyer de nouveau"
        else:
            # unprocessed files go back to the inbox: the next import picks them up
            for name in self.files.claimed(job["_id"]):
                self.files.return_to_inbox(kind, job["_id"], name)
            where = "remis dans la boîte de réception pour le prochain import"
        await self._finish(
            failed,
            ImportStatus.FAILED,
            error=f"Délai dépassé ({limit}) : {pending} fichier(s) non traité(s), {where}",
        )

    # --- files ----------------------------------------------------------------------
    async def import_file(self, command: ImportFile) -> None:
        job = await self.repo.get_job(command.job_id)
        file = await self.repo.get_file(command.job_id, command.item)
        if job is None or file is None:
            logger.warning("file of an unknown job", extra={"job_id": command.job_id})
            return
        if job["state"] in ENDED:
            # this file's handler may be the one that ended the job and died before
            # announcing the end: announce it again (a duplicate if it was)
            await self._announce_end(job, "redelivered")
            return
        if job["state"] != JobState.RUNNING.value:
            return
        await self.lock.renew(job["_id"], self.clock())
        if file["state"] == FileState.PENDING.value:
            path = self.files.work(job["_id"]) / command.item
            outcome = await asyncio.to_thread(process_file, command.kind, path, self.max_file_bytes)
            sources = await self._save_invoices(job["_id"], command.item, outcome)
            await self._save_rows(command.kind, job["_id"], command.item, outcome)
            # which replica did the work: shows in the report that replicas share files
            result = {
                **_result(outcome),
                "worker": connection_name(PRODUCER),
                "finished_at": self.clock(),
                **sources,
            }
            await self.repo.finish_file(job["_id"], command.item, result)
            self.faults.hit("import.file_stored")
            file = await self.repo.get_file(command.job_id, command.item)
            assert file is not None
            current = await self.repo.get_job(command.job_id)
            if current is None or current["state"] != JobState.RUNNING.value:
                # the job ran out of time while this file was read: it went back to the
                # inbox with the others and was counted as not processed, so say nothing
                return
        self._settle(command.kind, job["_id"], file)
        for event in _item_events(job["_id"], file):
            await self.emit(event)
        await self.repo.mark_announced(job["_id"], command.item)
        await self._check_completion(job["_id"])

    async def _save_invoices(self, job_id: str, name: str, outcome: FileOutcome) -> dict[str, Any]:
        """Store the file's invoices; note per supplier what the clean-up must do."""
        by_supplier: dict[str, list[str]] = {}
        for invoice in outcome.invoices:
            key = await self.repo.save_invoice({**invoice, "job_id": job_id, "source_file": name})
            by_supplier.setdefault(invoice["supplier_id"], []).append(key)
        sources = []
        for supplier, keys in sorted(by_supplier.items()):
            previous = await self.repo.previous_keys(job_id, name, supplier, keys)
            sources.append({"supplier": supplier, "keys": keys, **previous})
        return {"sources": sources} if sources else {}

    async def _save_rows(
        self, kind: ImportKind, job_id: str, name: str, outcome: FileOutcome
    ) -> None:
        now = self.clock()
        docs = [
            {
                "_id": row_key(kind, row.values),
                **row.values,
                "source_file": name,
                "line_no": row.line_no,
                "job_id": job_id,
                "imported_at": now,
            }
            for row in outcome.rows
            if row.error is None
        ]
        await self.repo.save_bbgr_rows(kind.value, docs)

    def _settle(self, kind: ImportKind, job_id: str, file: dict[str, Any]) -> None:
        """Move the file to where its result says, if an earlier try did not already."""
        if file["ok"]:
            self.files.archive_file(kind, job_id, file["name"], self.clock())
        else:
            self.files.reject_file(kind, job_id, file["name"], file.get("error") or "")

    async def _all_announced(self, job_id: str) -> bool:
        """Whether every file of the job is announced, by `_id` lookups only.

        Called after each file, so it must not scan: on FerretDB any filter but `_id`
        reads the whole collection, which made a 2,000-file import quadratic. Files are
        checked in order from the first one this replica has not yet seen announced (a
        file once announced stays so), so each replica does O(files) lookups per job.
        Two replicas finishing the last two files at once cannot both miss the end:
        each marks its own file before it checks the other's.
        """
        job = await self.repo.get_job(job_id)
        names = (job or {}).get("names")
        if names is None:  # its start has not finished: see _prepare
            return False
        i = self._announced_upto.get(job_id, 0)
        while i < len(names):
            file = await self.repo.get_file(job_id, names[i])
            if file is None or file["state"] != FileState.ANNOUNCED.value:
                break
            i += 1
        self._announced_upto[job_id] = i
        return i == len(names)

    async def _check_completion(self, job_id: str) -> None:
        if not await self._all_announced(job_id):
            return
        self._announced_upto.pop(job_id, None)
        job = await self.repo.move_job(job_id, JobState.RUNNING, JobState.CLEANING, self.clock())
        if job is not None:
            await self._clean_up_and_finish(job)

    # --- the end --------------------------------------------------------------------
    async def _clean_up_and_finish(self, job: dict[str, Any]) -> None:
        # the handler of the last file and a scheduler pass (which resumes a job left in
        # `cleaning`) may both get here for the same job: one at a time, and the second
        # finds it done. Run together, their upserts of the same supplier totals collided
        # (DuplicateKeyError on FerretDB) and the last file's message was dead-lettered.
        async with self._finishing:
            current = await self.repo.get_job(job["_id"])
            if current is None or current["state"] != JobState.CLEANING.value:
                return
            await self._clean_up_and_finish_now(current)

    async def _clean_up_and_finish_now(self, job: dict[str, Any]) -> None:
        await self.emit(_cleanup_event(job["_id"]))
        # read once for both: every file is announced by now (that is what moved the
        # job to `cleaning`), and a big import's files are many reads by `_id`
        files = await self.repo.file_results(job)
        await self._clean_up(job, files)
        now = self.clock()
        done = await self.repo.move_job(
            job["_id"], JobState.CLEANING, JobState.COMPLETED, now, finished_at=now
        )
        self.faults.hit("import.completed_stored")
        if done is not None:
            await self._finish(done, ImportStatus.COMPLETED, files=files)

    async def _clean_up(self, job: dict[str, Any], files: list[dict[str, Any]]) -> None:
        """The seed's sql_clean_general: drop what this import orphaned, recompute totals.

        Idempotent (a replica taking over a job in `cleaning` runs it again): orphans
        are found by comparison with this job's stamp, totals are recomputed whole.
        """
        if job["kind"] == ImportKind.EDI.value:
            suppliers: set[str] = set()
            for file in files:
                for source in file.get("sources", []):
                    suppliers.add(source["supplier"])
                    if not source["update"]:
                        continue
                    dropped = await self.repo.drop_orphans(
                        job["_id"], file["name"], source["orphans"]
                    )
                    suppliers.update(dropped)
                    await self.repo.record_source(
                        job["_id"], file["name"], source["supplier"], source["keys"]
                    )
            await self.lock.renew(job["_id"], self.clock())
            await self.repo.recompute_supplier_totals(suppliers, self.clock())
        self.files.remove_work(job["_id"])

    async def _finish(
        self,
        job: dict[str, Any],
        status: ImportStatus,
        error: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> None:
        if error is not None:  # kept, so that announcing the end again says the same
            await self.repo.set_job_fields(job["_id"], error=error)
        if files is None:
            files = await self.repo.file_results(job)
        await self.emit(_finished_event(job, status, error, files))
        await self.lock.release(job["_id"])
        self._schedule_soon()

    def _schedule_soon(self) -> None:
        """The next queued import starts at once, not at the next scheduler pass."""
        task = asyncio.create_task(self.schedule())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _queued_event(job: dict[str, Any], position: int) -> ImportQueued:
    return ImportQueued(
        event_id=stable_event_id(job["_id"], "queued", str(position)),
        producer=PRODUCER,
        job_id=job["_id"],
        kind=ImportKind(job["kind"]),
        user_id=job["user_id"],
        title=job["title"],
        position=position,
    )


def _started_event(job: dict[str, Any]) -> ImportStarted:
    return ImportStarted(
        event_id=stable_event_id(job["_id"], "started"),
        producer=PRODUCER,
        job_id=job["_id"],
        kind=ImportKind(job["kind"]),
        user_id=job["user_id"],
        title=job["title"],
        total=job["total"],
    )


def _cleanup_event(job_id: str) -> ImportCleanupStarted:
    return ImportCleanupStarted(
        event_id=stable_event_id(job_id, "cleanup"), producer=PRODUCER, job_id=job_id
    )


def _finished_event(
    job: dict[str, Any], status: ImportStatus, error: str | None, files: list[dict[str, Any]]
) -> ImportFinished:
    """The job's end, counted from what was announced (file.imported confirmed), so
    progress-svc, which refuses a finish ahead of what it applied, always agrees."""
    announced = [d for d in files if d["state"] == FileState.ANNOUNCED.value]
    processed = sum(len(d.get("items") or [d]) for d in announced)
    if job.get("total") is not None:
        processed = min(processed, job["total"])  # progress-svc never counts past total
    failed = min(sum(_failed_units(d) for d in announced), processed)
    invoices = sum(d.get("invoices", 0) for d in announced)
    rows = job["kind"] != ImportKind.EDI.value
    return ImportFinished(
        event_id=stable_event_id(job["_id"], "finished"),
        producer=PRODUCER,
        job_id=job["_id"],
        status=status,
        error=error,
        processed=processed,
        failed=failed,
        invoices=invoices,
        message=final_message(processed, failed, rows=rows) if error is None else error,
    )


def _result(outcome: FileOutcome) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ok": outcome.ok,
        "error": outcome.error,
        "invoices": len(outcome.invoices),
        "lines": outcome.lines,
        "rows": len(outcome.rows),
        "failed_rows": outcome.failed_rows,
        "duration_ms": outcome.duration_ms,
    }
    if outcome.rows:
        # kept so that a redelivery re-announces the same row events after a crash
        result["items"] = [{"line": row.line_no, "error": row.error} for row in outcome.rows]
    return result


def _failed_units(file: dict[str, Any]) -> int:
    if file.get("items"):
        return int(file.get("failed_rows", 0))
    return 0 if file.get("ok") else 1


def _item_events(job_id: str, file: dict[str, Any]) -> list[FileImported]:
    """The gauge items of a finished file: the file itself, or each of its BBGR rows."""
    name = file["name"]
    if not file.get("items"):
        return [
            FileImported(
                event_id=stable_event_id(job_id, "file", name),
                producer=PRODUCER,
                job_id=job_id,
                item=name,
                ok=file["ok"],
                error=file.get("error"),
                invoices=file.get("invoices", 0),
                lines=file.get("lines", 0),
                duration_ms=file.get("duration_ms", 0),
            )
        ]
    return [
        FileImported(
            event_id=stable_event_id(job_id, "row", name, str(item["line"])),
            producer=PRODUCER,
            job_id=job_id,
            item=f"{name} ligne {item['line']}",
            ok=item["error"] is None,
            error=item["error"],
            lines=1,
        )
        for item in file["items"]
    ]
