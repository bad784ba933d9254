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
from import_svc.totals import changes_by_key, job_deltas
from jauge_shared.contracts import ImportKind, ImportStatus
from jauge_shared.metrics import STATE_REANNOUNCED

# what a failed job's end says when the reason was not stored (a crash between the two,
# found once the expiry is STALE_TRANSITION old)
UNKNOWN_FAILURE = "Import interrompu : délai dépassé"
WALK_STEP = 32  # file lookups at once when checking for the end


class JobEnd:
    def __init__(self, flow: Workflow, on_released: Callable[[], None]) -> None:
        self.flow = flow
        # the lock is free: the next queued import may start (ImportService schedules it)
        self.on_released = on_released
        self._finishing = asyncio.Lock()
        # per job, what this replica knows: its files' names, the first file it has not
        # yet seen announced, the files it announced itself, the walks under way
        self._names: dict[str, list[str]] = {}
        self._announced_upto: dict[str, int] = {}
        self._mine: dict[str, set[str]] = {}
        self._seen: dict[str, dict[str, dict[str, Any]]] = {}  # announced files, as stored
        self._walking: set[str] = set()
        self._again: set[str] = set()

    async def check_completion(
        self, job_id: str, announced: str | None = None, file: dict[str, Any] | None = None
    ) -> None:
        """After each file announced (`announced`, by this replica) and each scheduler
        pass: end the job if every file is announced.

        One walk at a time per job in this replica: a check asked while one is under way
        makes it walk once more rather than walk the same files again beside it (with 32
        files in hand per replica, concurrent walks were a third of import-svc's time).
        """
        if job_id not in self._names:
            self._forget_others(job_id)
        if announced is not None:
            self._mine.setdefault(job_id, set()).add(announced)
            if file is not None:  # as stored: announced, its result final
                self._seen.setdefault(job_id, {})[announced] = {
                    **file,
                    "state": FileState.ANNOUNCED.value,
                }
        if job_id in self._walking:
            self._again.add(job_id)  # the walk under way looks again before it stops
            return
        self._walking.add(job_id)
        try:
            while True:
                self._again.discard(job_id)
                done = await self._all_announced(job_id)
                if done or job_id not in self._again:
                    break
        finally:
            self._walking.discard(job_id)
        if not done:
            return
        flow = self.flow
        job = await flow.repo.move_job(job_id, JobState.RUNNING, JobState.CLEANING, flow.clock())
        if job is not None:
            await self.clean_up_and_finish(job)

    def _forget_others(self, job_id: str) -> None:
        """One import runs at a time: what this replica knew of earlier ones can go."""
        for known in (self._names, self._mine, self._announced_upto, self._seen):
            for other in [k for k in known if k != job_id and k not in self._walking]:
                known.pop(other, None)

    async def _all_announced(self, job_id: str) -> bool:
        """Whether every file of the job is announced, by `_id` lookups only.

        It must not scan: on FerretDB any filter but `_id` reads the whole collection,
        which made a 2,000-file import quadratic. Files are checked in order from the
        first one this replica has not yet seen announced (a file once announced stays
        so), skipping those it announced itself, a few at once when they are announced
        (1, 2, 4 … 32 lookups together), so each replica does O(files) lookups per job
        and the last check walks what is left quickly. Two replicas finishing the last
        two files at once cannot both miss the end: each marks its own file before it
        checks the other's.
        """
        repo = self.flow.repo
        names = self._names.get(job_id)
        if names is None:
            job = await repo.get_job(job_id)
            names = (job or {}).get("names")
            if names is None:  # its start has not finished: see JobFlow._prepare (jobs.py)
                return False
            self._names[job_id] = names
        mine = self._mine.get(job_id, set())
        i, step = self._announced_upto.get(job_id, 0), 1
        while i < len(names):
            batch: list[int] = []
            j = i
            while j < len(names) and len(batch) < step:
                if names[j] not in mine:
                    batch.append(j)
                j += 1
            files = await asyncio.gather(*(repo.get_file(job_id, names[k]) for k in batch))
            missing = [
                k
                for k, file in zip(batch, files, strict=True)
                if file is None or file["state"] != FileState.ANNOUNCED.value
            ]
            seen = self._seen.setdefault(job_id, {})
            for file in files:
                if file is not None and file["state"] == FileState.ANNOUNCED.value:
                    seen[file["name"]] = file  # final: the end reads it from here
            i = missing[0] if missing else j
            self._announced_upto[job_id] = max(self._announced_upto.get(job_id, 0), i)
            if missing:
                return False
            step = min(step * 2, WALK_STEP)
        self._announced_upto.pop(job_id, None)
        return True

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
        # job to `cleaning`), and a big import's files are many reads by `_id`. Those
        # this replica announced or saw announced are final and kept from then: at the
        # end of a 2,000-file import, reading them all again took seconds on a busy store
        seen = self._seen.pop(job["_id"], {})
        names = job.get("names") or []
        if names and all(name in seen for name in names):
            files = [seen[name] for name in names]
        else:
            files = await flow.repo.file_results(job, known=seen)
        await self._clean_up(job, files)
        now = flow.clock()
        done = await flow.repo.move_job(
            job["_id"], JobState.CLEANING, JobState.COMPLETED, now, finished_at=now
        )
        flow.faults.hit("import.completed_stored")
        if done is not None:
            await self.finish(done, ImportStatus.COMPLETED, files=files)

    async def _clean_up(self, job: dict[str, Any], files: list[dict[str, Any]]) -> None:
        """The seed's sql_clean_general: drop what this import orphaned, update totals.

        Idempotent (a replica taking over a job in `cleaning` runs it again): orphans
        are found by comparison with this job's stamp and recorded before they go, and
        the totals take each job's change once (totals.py).
        """
        flow = self.flow
        if job["kind"] == ImportKind.EDI.value:
            dropped: list[dict[str, Any]] = []
            for file in files:
                for source in file.get("sources", []):
                    if not source["update"]:
                        continue
                    dropped += await flow.repo.drop_orphans(
                        job["_id"], file["name"], source["orphans"]
                    )
                    await flow.repo.record_source(
                        job["_id"], file["name"], source["supplier"], source["keys"]
                    )
            await flow.lock.renew(job["_id"], flow.clock())
            await self.update_totals(job, files, dropped)
        flow.files.remove_work(job["_id"])

    async def update_totals(
        self, job: dict[str, Any], files: list[dict[str, Any]], dropped: list[dict[str, Any]]
    ) -> None:
        """Add what the job changed to its suppliers' totals, once, without reading
        their other invoices; results recorded before changes were kept are recomputed
        the old way, for their suppliers only."""
        repo, now = self.flow.repo, self.flow.clock()
        by_key, legacy = changes_by_key(job["_id"], files)
        written_twice = [key for key, changes in by_key.items() if len(changes) > 1]
        now_stored = await repo.stored_invoices(written_twice)
        deltas = job_deltas(job["_id"], by_key, now_stored, dropped)
        for supplier in legacy:
            deltas.pop(supplier, None)
        await repo.apply_supplier_deltas(job["_id"], deltas, now)
        if legacy:
            await repo.recompute_supplier_totals(legacy, now, job["_id"])

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
        if status is not ImportStatus.COMPLETED and job["kind"] == ImportKind.EDI.value:
            # the invoices an ended job wrote stay: so does their change to the totals
            # (recorded results, the files not yet marked done included)
            await self.update_totals(job, await flow.repo.recorded_results(job), [])
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
