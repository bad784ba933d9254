"""What the pipeline, control and the photo wait share about a task: the unit of work
(`Run`), storing a state then announcing it, announcing it again, and the endings
(failed, cancelled, undone).

Every transition is stored in the task document, then published as `colis.step_changed`
with the task's next `seq`; the event id is stable, so a state announced twice (a crash
between the store and the publish) is recognised as one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from colis_svc import audit, photos
from colis_svc.documents import state_from_doc, state_to_doc
from colis_svc.domain import (
    ACTIVE_STATUSES,
    TaskState,
    TransientTaskError,
    next_retry_delay,
)
from colis_svc.files import FileStore
from colis_svc.repository import CANCEL, ColisRepository, Doc
from colis_svc.settings import SERVICE, ColisSettings
from jauge_shared import messaging
from jauge_shared.contracts import (
    ColisData,
    ColisOperation,
    ColisStepChanged,
    CreateColis,
    Message,
    TaskStatus,
    UpdateColis,
    stable_event_id,
)
from jauge_shared.contracts.colis import FINISHED_STATUSES, allowed_actions
from jauge_shared.errors import TransientError
from jauge_shared.faults import fault_points
from jauge_shared.messaging import TRANSIENT_ERRORS
from jauge_shared.metrics import STATE_REANNOUNCED

logger = logging.getLogger("colis_svc")

Emit = Callable[[Message], Awaitable[None]]
TaskCommand = CreateColis | UpdateColis
FINISHED = sorted(status.value for status in FINISHED_STATUSES)

TASK_RUNS = Counter(
    "jauge_colis_task_runs_total", "Parcel task runs, by operation and outcome.", ["op", "outcome"]
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def step_event(doc: Doc, state: TaskState) -> ColisStepChanged:
    """The colis.step_changed of `state`, for the task stored as `doc`. Its id is stable:
    the same step emitted again after a crash is recognised as a duplicate."""
    return ColisStepChanged(
        producer=SERVICE,
        job_id=state.task_id,
        event_id=stable_event_id(state.task_id, "step", str(state.seq), state.status.value),
        task_id=state.task_id,
        user_id=doc["user_id"],
        lot_id=doc["lot_id"],
        operation=state.operation,
        status=state.status,
        step=photos.step_label(doc, state),
        percent=state.percent,
        seq=state.seq,
        error=state.error,
        retry_count=state.retry_count,
        max_retries=state.max_retries,
        next_retry_at=state.next_retry_at,
        colis_id=doc.get("colis_id") if doc.get("numero_suivi") else None,
        numero_suivi=doc.get("numero_suivi"),
        summary=doc.get("summary") or {},
        **allowed_actions(state.status, state.retry_count, state.max_retries),
    )


@dataclass
class Run:
    """What one delivery of a task command works with."""

    doc: Doc
    state: TaskState
    data: ColisData | None = None
    client: Doc | None = None
    lot: Doc | None = None
    changes: Doc = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return self.state.task_id


class Tasks:
    """A task's stored state and its announcements, and how a run ends."""

    def __init__(
        self,
        repository: ColisRepository,
        files: FileStore,
        emit: Emit,
        settings: ColisSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repo = repository
        self.files = files
        self.emit = emit
        self.settings = settings
        self.clock = clock
        self.faults = fault_points(settings.fault_points, settings.data_dir)
        self.audit = audit.AuditLog(repository.db, clock)

    async def store_and_emit(self, run: Run, **fields: Any) -> None:
        fields["updated_at"] = self.clock()
        await self.repo.save_state(run.state, **run.changes, **fields)
        # a crash or an outage from here until the publish is confirmed leaves a state
        # stored and not announced: the command's redelivery, or the reconciler's
        # request, announces it again (announce_again)
        self.faults.hit("colis.stored", run.state.status.value)
        run.doc.update(state_to_doc(run.state), **run.changes, **fields)
        run.changes = {}
        await self.emit(step_event(run.doc, run.state))

    async def announce_again(self, doc: Doc, reason: str) -> None:
        """Publish the task's stored state with the event id it had the first time."""
        await self.emit(step_event(doc, state_from_doc(doc)).again())
        STATE_REANNOUNCED.labels(SERVICE, reason).inc()

    async def cancel_asked(self, task_id: str) -> bool:
        """The one cancel mechanism: a `cancel` marker inserted once by the request
        (domain: `TaskState.cancel_plan`), looked for at each step boundary."""
        return await self.repo.has_marker(task_id, CANCEL)

    async def fail(self, run: Run, *, error: str, permanent: bool = False) -> None:
        state = run.state
        if state.status not in ACTIVE_STATUSES:
            return
        if await self.cancel_asked(run.task_id):
            # the agent asked to stop: a retry would run what they cancelled
            await self.finish_cancelled(run)
            return
        if permanent:
            run.state = state.fail_permanent(error)
        else:
            delay = next_retry_delay(
                state.retry_count, self.settings.task_retry_base_s, self.settings.task_retry_max_s
            )
            run.state = state.fail_transient(error, self.clock(), delay)
        finished = run.state.status is TaskStatus.FAILED_FINAL
        logger.warning(
            "task failed",
            extra={"task_id": run.task_id, "status": run.state.status.value, "error": error},
        )
        await self.store_and_emit(run, finished_at=self.clock() if finished else None)

    async def finish_cancelled(self, run: Run) -> None:
        await self.undo(run.doc)
        if run.state.status is TaskStatus.CANCELLED:
            return
        run.state = run.state.cancel()
        await self.store_and_emit(run, finished_at=self.clock())

    async def undo(self, doc: Doc) -> None:
        """No half-made parcel and no stored photo survive a cancelled task."""
        if doc["operation"] == ColisOperation.CREATE.value:
            await self.repo.delete_colis(doc["colis_id"])
        elif doc.get("previous"):
            await self.repo.replace_colis(doc["previous"])
        await self.repo.lot_index.refresh_totals(doc["lot_id"])
        await self.files.remove_images(doc["_id"])
        await self.files.remove_upload(doc.get("upload_id"))

    def command_for(self, doc: Doc, data: ColisData) -> TaskCommand:
        """The task's command, to publish again (a retry, a photo that came)."""
        common = {
            "producer": SERVICE,
            "task_id": doc["_id"],
            "user_id": doc["user_id"],
            "lot_id": doc["lot_id"],
            "colis_data": data,
            "upload_id": doc.get("upload_id"),
        }
        if doc["operation"] == ColisOperation.UPDATE.value:
            return UpdateColis(colis_id=doc["colis_id"], **common)
        return CreateColis(**common)


def is_transient(error: BaseException) -> bool:
    """Worth another try: a step's own transient failure, or what the shared rule calls
    transient (the store or broker away, a timeout, FerretDB's "database is locked")."""
    return isinstance(error, TransientTaskError) or messaging.is_transient(error)


@contextlib.asynccontextmanager
async def store_errors_are_transient() -> AsyncIterator[None]:
    """Store errors that are worth a retry become `TransientError`, which the broker's
    middleware retries after a delay instead of dead-lettering the message."""
    try:
        yield
    except TransientError:
        raise
    except Exception as e:
        if is_transient(e) and not isinstance(e, TRANSIENT_ERRORS):
            raise TransientError(str(e)) from e
        raise


def reply(result: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": result}


def refuse(status: int, detail: str) -> dict[str, Any]:
    return {"ok": False, "status": status, "detail": detail}
