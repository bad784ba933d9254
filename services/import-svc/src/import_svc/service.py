"""import-svc's front door: the rooms of the import workflow, put together.

    jobs.py     queue, start under the lock, fan out, resume, expire, announce again
    worker.py   one file: read, store, archive or reject, announce its gauge items
    ending.py   the last file noticed, the clean-up, import.finished, the lock let go
    control.py  an agent's hand: cancel an import, import again its failed files
    events.py   the events, built from what is stored
    queries.py  the reads the gateway asks for (not here: handlers.py calls it directly)

The handlers call the four methods below; the rooms share one `Workflow` (context.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from import_svc.context import Emit, Workflow
from import_svc.control import ImportControl
from import_svc.ending import JobEnd
from import_svc.files import FileStore
from import_svc.jobs import JobFlow
from import_svc.lock import ImportLock
from import_svc.repository import ImportRepository
from import_svc.worker import FileWorker
from jauge_shared.blobs import Blobs
from jauge_shared.contracts import CancelImport, ImportFile, RequestImport, utc_now
from jauge_shared.faults import FaultPoints


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
        file_delay_s: float = 0.0,
    ) -> None:
        flow = Workflow(
            repo=repository,
            lock=lock,
            files=files,
            emit=emit,
            deadline=timedelta(seconds=deadline_s),
            max_file_bytes=max_file_bytes,
            clock=clock,
            faults=faults or FaultPoints("", Path(".")),
            uploads=uploads,
            file_delay_s=file_delay_s,
        )
        self.end = JobEnd(flow, on_released=self._schedule_soon)
        self.control = ImportControl(flow, self.end, on_released=self._schedule_soon)
        self.jobs = JobFlow(flow, self.end, self.control)
        self.worker = FileWorker(flow, self.end, on_settled=self.control.end_if_settled)
        self.background: set[asyncio.Task[None]] = set()

    async def request(self, command: RequestImport) -> None:
        await self.jobs.request(command)

    async def schedule(self) -> None:
        await self.jobs.schedule()

    async def announce(self, job_id: str, reason: str) -> None:
        await self.jobs.announce(job_id, reason)

    async def import_file(self, command: ImportFile) -> None:
        await self.worker.import_file(command)

    async def cancel(self, command: CancelImport) -> None:
        await self.control.cancel(command)

    def _schedule_soon(self) -> None:
        """The next queued import starts at once, not at the next scheduler pass."""
        task = asyncio.create_task(self.jobs.schedule())
        self.background.add(task)
        task.add_done_callback(self.background.discard)
