"""What every room of the import workflow shares: its stores, its clock and its limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from import_svc.files import FileStore
from import_svc.lock import ImportLock
from import_svc.repository import ImportRepository, JobState
from jauge_shared.blobs import Blobs
from jauge_shared.contracts import Message, utc_now
from jauge_shared.faults import FaultPoints

Emit = Callable[[Message], Awaitable[None]]
ENDED = (JobState.COMPLETED.value, JobState.FAILED.value, JobState.CANCELLED.value)


@dataclass
class Workflow:
    repo: ImportRepository
    lock: ImportLock
    files: FileStore
    emit: Emit
    deadline: timedelta
    max_file_bytes: int
    clock: Callable[[], datetime] = utc_now
    faults: FaultPoints = field(default_factory=lambda: FaultPoints("", Path(".")))
    uploads: Blobs | None = None  # the import page's files, from the gateway (files.py)
    file_delay_s: float = 0.0  # tests only: each file held this long (settings.py)
