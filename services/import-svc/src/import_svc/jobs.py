"""The job workflow: queue, start under the lock, fan out, resume, expire, announce again.

One import runs at a time (the lock, with a lease); the others wait in line and are told
their position. Every step is safe to run twice (redelivery, a replica dying half-way):
state moves by compare-and-set, events carry ids derived from the work, and files move
atomically. What happens after the last file is ending.py's.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from import_svc.context import ENDED, Workflow
from import_svc.control import ImportControl, upload_origins
from import_svc.ending import JobEnd
from import_svc.events import (
    PRODUCER,
    cleanup_event,
    file_command,
    item_events,
    queued_event,
    started_event,
)
from import_svc.files import receive_uploads
from import_svc.processing import gauge_units
from import_svc.repository import STALE_TRANSITION, FileState, JobState
from jauge_shared.contracts import ImportKind, ImportStatus, RequestImport
from jauge_shared.contracts.imports import import_title
from jauge_shared.metrics import STATE_REANNOUNCED

# a job's dispatch says it is alive this often, and is taken over once silent this long
DISPATCH_BEAT = timedelta(seconds=1)
DISPATCH_STALE = timedelta(seconds=5)

logger = logging.getLogger("import_svc")
ACTIVE = (JobState.RUNNING, JobState.CLEANING, JobState.CANCELLING)  # they hold the lock


class JobFlow:
    def __init__(self, flow: Workflow, end: JobEnd, control: ImportControl) -> None:
        self.flow = flow
        self.end = end
        self.control = control
        self._schedule_lock = asyncio.Lock()

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
            "retry_of": command.retry_of,
        }
        await self.flow.repo.add_job(job)
        if command.retry_of:  # both reports show the link
            await self.flow.repo.set_job_fields(command.retry_of, retried_by=command.job_id)
        await self.schedule()

    # --- scheduling -----------------------------------------------------------------
    async def schedule(self) -> None:
        """One pass: resume or expire the active job, else start the next queued one."""
        repo, lock = self.flow.repo, self.flow.lock
        async with self._schedule_lock:
            now = self.flow.clock()
            active = await repo.jobs_in(*ACTIVE)
            for job in active:
                if await lock.acquire(job["_id"], now):
                    await self._resume(job, now)
            if await repo.jobs_in(*ACTIVE):
                await self._announce_positions()
                return
            queued = await repo.queued_jobs()
            if queued:
                await self._release_if_ended()
            if queued and await lock.acquire(queued[0]["_id"], now):
                await self._start(queued[0])
            await self._announce_positions()

    async def _release_if_ended(self) -> None:
        """A lock still held by an ended job (its end died before letting go) is free."""
        current = await self.flow.lock.current()
        if current is None or current["released"]:
            return
        holder = await self.flow.repo.get_job(current["holder"])
        if holder is None or holder["state"] in ENDED:
            await self.flow.lock.release(current["holder"])

    async def _announce_positions(self) -> None:
        for position, job in enumerate(await self.flow.repo.queued_jobs(), start=1):
            if job.get("announced_position") == position:
                continue
            await self.flow.emit(queued_event(job, position))
            await self.flow.repo.set_job_fields(job["_id"], announced_position=position)

    async def _start(self, job: dict[str, Any]) -> None:
        now = self.flow.clock()
        started = await self.flow.repo.move_job(
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
        flow = self.flow
        kind = ImportKind(job["kind"])
        if job["upload_ids"] and flow.uploads is not None:
            await receive_uploads(flow.files, flow.uploads, job["upload_ids"])
        if job["upload_ids"]:  # where each came from: a cancel puts it back there
            origins = upload_origins(flow.files, job["upload_ids"])
            if origins:
                await flow.repo.set_job_fields(job["_id"], origins=origins)
                job["origins"] = origins
        if job.get("retry_of"):
            await self.control.claim_retry(job)
        elif job["upload_ids"]:
            flow.files.claim_uploads(job["upload_ids"], job["_id"])
        else:
            flow.files.claim_inbox(kind, job["_id"])
        names = flow.files.claimed(job["_id"])
        units = None
        if kind is not ImportKind.EDI:
            # a BBGR gauge advances by rows: count them before announcing the total
            work = flow.files.work(job["_id"])
            units = [
                await asyncio.to_thread(gauge_units, kind, work / name, flow.max_file_bytes)
                for name in names
            ]
        total = sum(units) if units is not None else len(names)
        await flow.repo.add_files(job["_id"], names, flow.clock(), units)
        await flow.repo.set_job_fields(job["_id"], total=total, names=names)
        job.update(total=total, names=names)
        flow.faults.hit("import.started_stored")
        await flow.emit(started_event(job))

    async def _dispatch(self, job: dict[str, Any]) -> None:
        """Every file's command, then `dispatched`. While it sends, `dispatching_at` says
        so every `DISPATCH_BEAT`: another replica's pass leaves the job to it until that
        is `DISPATCH_STALE` old (the sender died), rather than sending them all again."""
        flow = self.flow
        beat = flow.clock()
        await flow.repo.set_job_fields(job["_id"], dispatching_at=beat)
        for doc in await flow.repo.file_results(job):
            if doc["state"] == FileState.ANNOUNCED.value:
                continue
            await flow.emit(file_command(job, doc))
            if flow.clock() - beat > DISPATCH_BEAT:
                beat = flow.clock()
                await flow.repo.set_job_fields(job["_id"], dispatching_at=beat)
        await flow.repo.set_job_fields(job["_id"], dispatched=True)
        await self.end.check_completion(job["_id"])

    def _dispatching(self, job: dict[str, Any], now: datetime) -> bool:
        """Another replica is sending this job's commands now."""
        beat: datetime | None = job.get("dispatching_at")
        if beat is None:
            return False
        if beat.tzinfo is None:  # the store's dates are UTC
            beat = beat.replace(tzinfo=now.tzinfo)
        return now - beat < DISPATCH_STALE

    async def _resume(self, job: dict[str, Any], now: datetime) -> None:
        """The job's lease was free or ours: make sure it is still moving."""
        started_at = job.get("started_at")
        if (
            job["state"] == JobState.RUNNING.value
            and started_at
            and now - started_at > self.flow.deadline
        ):
            await self._expire(job)
            return
        if job["state"] == JobState.CANCELLING.value:
            await self.control.put_back(job)  # a cancel died half-way: finish it
        elif job["state"] == JobState.CLEANING.value:
            await self.end.clean_up_and_finish(job)
        elif job.get("names") is None:
            # the start failed half-way: redo it, but only once the starter has had
            # time to finish, or two replicas would list the work folder mid-claim
            if started_at and now - started_at > STALE_TRANSITION:
                await self._prepare(job)
                await self._dispatch(job)
        elif not job.get("dispatched"):
            if self._dispatching(job, now):
                return  # its starter is sending the commands: not all of them twice
            await self.flow.emit(started_event(job))  # a duplicate if it was sent: ignored
            await self._dispatch(job)
        else:
            await self.end.check_completion(job["_id"])

    async def _expire(self, job: dict[str, Any]) -> None:
        flow = self.flow
        now = flow.clock()
        failed = await flow.repo.move_job(
            job["_id"], JobState.RUNNING, JobState.FAILED, now, finished_at=now
        )
        if failed is None:
            return
        pending = await flow.repo.count_files(failed, FileState.PENDING, FileState.DONE)
        kind = ImportKind(job["kind"])
        seconds = int(flow.deadline.total_seconds())
        limit = f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"
        if job.get("upload_ids"):
            # an agent's uploaded files are theirs alone: never into the shared inbox,
            # where the next import, anyone's, would read them. They go to errors/ with
            # a note, and the agent is told to send them again.
            for name in flow.files.claimed(job["_id"]):
                flow.files.reject_file(
                    kind,
                    job["_id"],
                    name,
                    f"Délai dépassé ({limit}) avant la lecture de ce fichier envoyé : "
                    "il n'a pas été importé.",
                )
            where = "à envoyer de nouveau"
        else:
            # unprocessed files go back to the inbox: the next import picks them up
            for name in flow.files.claimed(job["_id"]):
                flow.files.return_to_inbox(kind, job["_id"], name)
            where = "remis dans la boîte de réception pour le prochain import"
        await self.end.finish(
            failed,
            ImportStatus.FAILED,
            error=f"Délai dépassé ({limit}) : {pending} fichier(s) non traité(s), {where}",
        )

    # --- announcing again -------------------------------------------------------------
    async def announce(self, job_id: str, reason: str) -> None:
        """Publish the job's stored state again, each event with its first id.

        The reconciler asks when the job's gauge has not moved for a while: an event
        may have been lost between a write and its publish (a crash, the broker away).
        Every event below is derived from what is stored, so a consumer that had it
        already changes nothing.
        """
        flow = self.flow
        job = await flow.repo.get_job(job_id)
        if job is None:
            logger.info("announce asked for an unknown import", extra={"job_id": job_id})
            return
        if job["state"] == JobState.QUEUED.value:
            if job.get("announced_position"):
                await flow.emit(queued_event(job, job["announced_position"]).again())
            STATE_REANNOUNCED.labels(PRODUCER, reason).inc()
            return
        if job.get("total") is None:
            if job["state"] in ENDED:  # cancelled while queued
                await self.end.announce_end(job, reason, [])
            return  # its start is being redone (_resume): that announces it
        await flow.emit(started_event(job).again())
        files = await flow.repo.file_results(job)
        for file in files:
            if file["state"] == FileState.ANNOUNCED.value:
                for event in item_events(job_id, file):
                    await flow.emit(event.again())
        if job["state"] == JobState.CLEANING.value:
            await flow.emit(cleanup_event(job_id).again())
        if job["state"] in ENDED:
            await self.end.announce_end(job, reason, files)
        else:
            STATE_REANNOUNCED.labels(PRODUCER, reason).inc()
