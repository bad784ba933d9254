"""The end of an import: noticing the last file, the clean-up, import.finished, the lock.

Reached from the file worker (the last file announced), from the job workflow (an
expired job, a job resumed in `cleaning`) and from announcing again (an end that died
before letting the lock go). Whoever gets here, a job is cleaned up and finished once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from import_svc.context import Workflow
from import_svc.events import PRODUCER, cleanup_event, finished_event
from import_svc.repository import STALE_TRANSITION, FileState, JobState
from jauge_shared.contracts import ImportKind, ImportStatus
from jauge_shared.metrics import STATE_REANNOUNCED

# what a failed job's end says when the reason was not stored (a crash between the two,
# found once the expiry is STALE_TRANSITION old)
UNKNOWN_FAILURE = "Import interrompu : délai dépassé"


class JobEnd:
    def __init__(self, flow: Workflow, on_released: Callable[[], None]) -> None:
        self.flow = flow
        # the lock is free: the next queued import may start (ImportService schedules it)
        self.on_released = on_released
        self._finishing = asyncio.Lock()
        self._announced_upto: dict[str, int] = {}

    async def check_completion(self, job_id: str) -> None:
        if not await self._all_announced(job_id):
            return
        self._announced_upto.pop(job_id, None)
        flow = self.flow
        job = await flow.repo.move_job(job_id, JobState.RUNNING, JobState.CLEANING, flow.clock())
        if job is not None:
            await self.clean_up_and_finish(job)

    async def _all_announced(self, job_id: str) -> bool:
        """Whether every file of the job is announced, by `_id` lookups only.

        Called after each file, so it must not scan: on FerretDB any filter but `_id`
        reads the whole collection, which made a 2,000-file import quadratic. Files are
        checked in order from the first one this replica has not yet seen announced (a
        file once announced stays so), so each replica does O(files) lookups per job.
        Two replicas finishing the last two files at once cannot both miss the end:
        each marks its own file before it checks the other's.
        """
        repo = self.flow.repo
        job = await repo.get_job(job_id)
        names = (job or {}).get("names")
        if names is None:  # its start has not finished: see JobFlow._prepare (jobs.py)
            return False
        i = self._announced_upto.get(job_id, 0)
        while i < len(names):
            file = await repo.get_file(job_id, names[i])
            if file is None or file["state"] != FileState.ANNOUNCED.value:
                break
            i += 1
        self._announced_upto[job_id] = i
        return i == len(names)

    async def clean_up_and_finish(self, job: dict[str, Any]) -> None:
        # the handler of the last file and a scheduler pass (which resumes a job left in
        # `cleaning`) may both get here for the same job: one at a time, and the second
        # finds it done. Run together, their upserts of the same supplier totals collided
        # (DuplicateKeyError on FerretDB) and the last file's message was dead-lettered.
        async with self._finishing:
            current = await self.flow.repo.get_job(job["_id"])
            if current is None or current["state"] != JobState.CLEANING.value:
                return
            await self._clean_up_and_finish_now(current)

    async def _clean_up_and_finish_now(self, job: dict[str, Any]) -> None:
        flow = self.flow
        await flow.emit(cleanup_event(job["_id"]))
        # read once for both: every file is announced by now (that is what moved the
        # job to `cleaning`), and a big import's files are many reads by `_id`
        files = await flow.repo.file_results(job)
        await self._clean_up(job, files)
        now = flow.clock()
        done = await flow.repo.move_job(
            job["_id"], JobState.CLEANING, JobState.COMPLETED, now, finished_at=now
        )
        flow.faults.hit("import.completed_stored")
        if done is not None:
            await self.finish(done, ImportStatus.COMPLETED, files=files)

    async def _clean_up(self, job: dict[str, Any], files: list[dict[str, Any]]) -> None:
        """The seed's sql_clean_general: drop what this import orphaned, recompute totals.

        Idempotent (a replica taking over a job in `cleaning` runs it again): orphans
        are found by comparison with this job's stamp, totals are recomputed whole.
        """
        flow = self.flow
        if job["kind"] == ImportKind.EDI.value:
            suppliers: set[str] = set()
            for file in files:
                for source in file.get("sources", []):
                    suppliers.add(source["supplier"])
                    if not source["update"]:
                        continue
                    dropped = await flow.repo.drop_orphans(
                        job["_id"], file["name"], source["orphans"]
                    )
                    suppliers.update(dropped)
                    await flow.repo.record_source(
                        job["_id"], file["name"], source["supplier"], source["keys"]
                    )
            await flow.lock.renew(job["_id"], flow.clock())
            await flow.repo.recompute_supplier_totals(suppliers, flow.clock())
        flow.files.remove_work(job["_id"])

    async def finish(
        self,
        job: dict[str, Any],
        status: ImportStatus,
        error: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> None:
        flow = self.flow
        if error is not None:  # kept, so that announcing the end again says the same
            await flow.repo.set_job_fields(job["_id"], error=error)
        if files is None:
            files = await flow.repo.file_results(job)
        await flow.emit(finished_event(job, status, error, files))
        await flow.lock.release(job["_id"])
        self.on_released()

    async def announce_end(
        self, job: dict[str, Any], reason: str, files: list[dict[str, Any]] | None = None
    ) -> None:
        """An ended job's import.finished again; the lock too, if the end died before
        letting it go (the next import would otherwise wait out the lease)."""
        flow = self.flow
        status = (
            ImportStatus.COMPLETED
            if job["state"] == JobState.COMPLETED.value
            else ImportStatus.CANCELLED
            if job["state"] == JobState.CANCELLED.value
            else ImportStatus.FAILED
        )
        if status is ImportStatus.FAILED and job.get("error") is None:
            finished_at = job.get("finished_at")
            if finished_at is not None and flow.clock() - finished_at < STALE_TRANSITION:
                # expired a moment ago, its reason not yet stored: the expiry is still
                # under way and announces the end itself, with its reason. Announced now,
                # this end said "Import interrompu" and, being first, was the one shown.
                return
        error = None if status is not ImportStatus.FAILED else job.get("error") or UNKNOWN_FAILURE
        files = files if files is not None else await flow.repo.file_results(job)
        await flow.emit(finished_event(job, status, error, files).again())
        STATE_REANNOUNCED.labels(PRODUCER, reason).inc()
        current = await flow.lock.current()
        if current is not None and not current["released"] and current["holder"] == job["_id"]:
            await flow.lock.release(job["_id"])
            self.on_released()
