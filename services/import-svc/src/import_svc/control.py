"""An agent's hand on imports: cancel one, import again the files that failed.

Cancel (`import.cancel`). A queued import ends at once: nothing of it was claimed. A
running one moves to `cancelling`; from then no worker starts a file of it. Each of its
files has one fate, decided by a unique marker (`ImportRepository.take_file`): a worker
that took it first reads it to the end (archived or rejected, announced, counted); the
cancel takes every other and puts it back where it came from, the inbox or, for files
sent from the page, the upload bucket. The import ends `cancelled` once every file is
announced or returned, whoever sees it last (the cancel, a worker, a scheduler pass
after a crash), so its counts are exactly what was done, and the gauge stops with them.

Retry (`import.request` with `retry_of`). The failed files of an earlier import are
kept in `errors/<kind>/` (their name there is the file's `rejected_as`); the retry
claims them back into its work folder under their own names, and their `.error.txt` go.
A file uploaded with the retry replaces the rejected file of the same name.
"""

from __future__ import annotations

import base64
import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from import_svc.context import ENDED, Workflow
from import_svc.ending import JobEnd
from import_svc.events import finished_event
from import_svc.files import FileStore
from import_svc.repository import FileFate, FileState, JobState
from jauge_shared.contracts import CancelImport, ImportKind, ImportStatus
from jauge_shared.contracts.import_rpc import (
    MAX_REJECTED_DOWNLOAD_BYTES,
    InboxCounts,
    RejectedFile,
    RejectedFileRequest,
)
from jauge_shared.mongo import gather_in_chunks

logger = logging.getLogger("import_svc")


class ImportControl:
    def __init__(self, flow: Workflow, end: JobEnd, on_released: Callable[[], None]) -> None:
        self.flow = flow
        self.end = end  # its supplier totals: a cancelled import's files read stay imported
        self.on_released = on_released  # the lock is free: the next import may start

    # --- cancel -------------------------------------------------------------------
    async def cancel(self, command: CancelImport) -> None:
        flow = self.flow
        job = await flow.repo.get_job(command.job_id)
        if job is None or job["state"] in ENDED:
            logger.info("cancel of an unknown or ended import", extra={"job_id": command.job_id})
            return
        logger.info("import cancel", extra={"job_id": job["_id"], "user": command.user_id})
        now = flow.clock()
        if job["state"] == JobState.QUEUED.value:
            ended = await flow.repo.move_job(
                job["_id"], JobState.QUEUED, JobState.CANCELLED, now, finished_at=now
            )
            if ended is not None:
                # nothing was claimed: its files are still in the inbox or the bucket
                await flow.emit(finished_event(ended, ImportStatus.CANCELLED, None, []))
                self.on_released()  # the others' queue positions move up
            return
        await flow.repo.move_job(job["_id"], JobState.RUNNING, JobState.CANCELLING, now)
        current = await flow.repo.get_job(job["_id"])
        if current is not None and current["state"] == JobState.CANCELLING.value:
            await self.put_back(current)

    async def put_back(self, job: dict[str, Any]) -> None:
        """Every file no worker took goes back; the import ends if nothing is in flight.
        Safe to run again (a redelivered cancel, a scheduler pass after a crash)."""
        flow = self.flow
        if job.get("names") is None:
            # its start died before recording its files: none was read
            await flow.repo.set_job_fields(job["_id"], names=[], total=0)
            for name in flow.files.claimed(job["_id"]):
                await self._return(job, name, None)
            job = {**job, "names": [], "total": 0}
        pending = [
            file
            for file in await flow.repo.file_results(job)
            if file["state"] == FileState.PENDING.value
        ]

        async def give_back(file: dict[str, Any]) -> None:
            if await flow.repo.take_file(job["_id"], file["name"], FileFate.RETURNED):
                await self._return(job, file["name"], file["index"])
                await flow.repo.mark_returned(job["_id"], file["name"])

        # a few at once: one by one, a 5,000-file import's took a minute
        await gather_in_chunks(pending, give_back, size=16)
        await self.end_if_settled(job["_id"])

    async def _return(self, job: dict[str, Any], name: str, index: int | None) -> None:
        files, kind = self.flow.files, ImportKind(job["kind"])
        if not job.get("upload_ids"):
            files.return_to_inbox(kind, job["_id"], name)
            return
        path = files.work(job["_id"]) / name
        if not path.exists() or self.flow.uploads is None:
            return  # already back (a redone cancel)
        origins = dict(o.split("/", 1)[::-1] for o in job.get("origins") or [])
        upload_id = origins.get(name) or job["upload_ids"][0]
        blob_id = f"{upload_id}.back{index if index is not None else zlib.crc32(name.encode())}"
        await self.flow.uploads.put_file(blob_id, path, filename=name, upload_id=upload_id)
        path.unlink(missing_ok=True)

    async def end_if_settled(self, job_id: str) -> None:
        """A cancelling import whose every file is announced or put back: it ends."""
        flow = self.flow
        # asked after every file: the state alone first, the names (another read) if cancelling
        current = await flow.repo.get_job(job_id, names=False)
        if current is None or current["state"] != JobState.CANCELLING.value:
            return
        job = await flow.repo.get_job(job_id)
        if job is None or job["state"] != JobState.CANCELLING.value:
            return
        files = await flow.repo.file_results(job)
        settled = (FileState.ANNOUNCED.value, FileState.RETURNED.value)
        if any(f["state"] not in settled for f in files):
            return  # a worker still reads one: its announce calls this again
        if job["kind"] == ImportKind.EDI.value:
            # before the end, not after it: the totals take each job's change once
            # (totals.py), and an end that crashed is announced again without them
            await self.end.update_totals(job, await flow.repo.recorded_results(job), [])
        now = flow.clock()
        ended = await flow.repo.move_job(
            job_id, JobState.CANCELLING, JobState.CANCELLED, now, finished_at=now
        )
        if ended is None:
            return
        flow.files.remove_work(job_id)
        await flow.emit(finished_event(ended, ImportStatus.CANCELLED, None, files))
        await flow.lock.release(job_id)
        self.on_released()

    # --- retry the failed files ---------------------------------------------------
    async def claim_retry(self, job: dict[str, Any]) -> None:
        """Claim the failed files of `job["retry_of"]` (or their uploaded replacements)."""
        flow, kind = self.flow, ImportKind(job["kind"])
        work = flow.files.work(job["_id"])
        work.mkdir(parents=True, exist_ok=True)
        moves: list[tuple[Path, str]] = []
        for upload_id in job.get("upload_ids") or []:
            folder = flow.files.uploads(upload_id)
            if folder.is_dir():
                moves += [(p, p.name) for p in sorted(folder.iterdir()) if p.is_file()]
        replaced = {name for _, name in moves}
        earlier = await flow.repo.get_job(job["retry_of"])
        superseded: list[Path] = []
        for file in await flow.repo.file_results(earlier) if earlier else []:
            if file.get("ok") is False:
                path = flow.files.rejected(kind, file.get("rejected_as") or file["name"])
                if file["name"] in replaced:
                    superseded.append(path)
                else:
                    moves.append((path, file["name"]))
        for source, name in moves:
            if name.startswith(".") or (work / name).exists():
                continue
            try:
                os.replace(source, work / name)
            except FileNotFoundError:
                continue  # taken by a redone claim, or already retried
            # imported again: the old reason no longer applies
            source.with_name(source.name + ".error.txt").unlink(missing_ok=True)
        for path in superseded:  # replaced by the agent's upload: the bad copy goes
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".error.txt").unlink(missing_ok=True)

    # --- reads ----------------------------------------------------------------------
    def inbox(self) -> InboxCounts:
        return InboxCounts(
            counts={kind.value: self.flow.files.waiting(kind) for kind in ImportKind}
        )

    async def rejected_file(self, request: RejectedFileRequest) -> RejectedFile:
        flow = self.flow
        job = await flow.repo.get_job(request.job_id)
        names = (job or {}).get("names") or []
        if job is None or request.index >= len(names):
            return RejectedFile(found=False)
        file = await flow.repo.get_file(job["_id"], names[request.index])
        if file is None or file.get("ok") is not False:
            return RejectedFile(found=False)
        path = rejected_path(flow.files, job, file)
        if request.what == "note":
            path = path.with_name(path.name + ".error.txt")
        name = file["name"] + (".error.txt" if request.what == "note" else "")
        if not path.is_file():
            return RejectedFile(found=False, name=name)
        size = path.stat().st_size
        if size > MAX_REJECTED_DOWNLOAD_BYTES:
            return RejectedFile(found=True, name=name, size=size, too_big=True)
        data = path.read_bytes()
        return RejectedFile(
            found=True, name=name, size=size, content_b64=base64.b64encode(data).decode()
        )


def rejected_path(files: FileStore, job: dict[str, Any], file: dict[str, Any]) -> Path:
    return files.rejected(ImportKind(job["kind"]), file.get("rejected_as") or file["name"])


def upload_origins(files: FileStore, upload_ids: list[str]) -> list[str]:
    """Which upload each file of an import of uploads came from (a cancel puts it back):
    `<upload_id>/<name>` (FerretDB refuses a key with a dot, and nested arrays)."""
    origins: list[str] = []
    for upload_id in upload_ids:
        folder = files.uploads(upload_id)
        if folder.is_dir():
            origins += [f"{upload_id}/{path.name}" for path in sorted(folder.iterdir())]
    return origins
