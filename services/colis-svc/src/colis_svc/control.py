"""Control of tasks from outside their run: cancel and retry (the gateway's requests),
the sweeper's due retries and stalls, and the clean-up of old failed creations.

One cancel mechanism (the domain's `TaskState.cancel_plan`): a task no worker holds is
undone and cancelled at once; a running one gets a `cancel` marker, inserted once, which
its worker finds at its next step boundary. From `notification_sending` on, the worker and
the cancel race for one `fate` marker per run: the parcel is announced or it is undone,
never both.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from colis_svc import photos
from colis_svc.documents import state_from_doc
from colis_svc.domain import (
    CancelPlan,
    IllegalTransitionError,
    PermanentTaskError,
    TaskState,
    apply_edits,
    format_fr,
)
from colis_svc.repository import CANCEL, Doc, fate_decision, retry_decision
from colis_svc.runs import Emit, Run, Tasks, refuse, reply, step_event
from jauge_shared.contracts import (
    CancelColisTask,
    ColisData,
    ColisOperation,
    RetryColisTask,
    TaskStatus,
)
from jauge_shared.contracts.colis import FAILED_STATUSES, summarize


class Control:
    def __init__(self, tasks: Tasks) -> None:
        self.tasks = tasks
        self.repo = tasks.repo
        self.files = tasks.files
        self.settings = tasks.settings
        self.audit = tasks.audit

    async def cancel(self, command: CancelColisTask) -> dict[str, Any]:
        now = self.tasks.clock()
        doc = await self.repo.get_task(command.task_id)
        if doc is None:
            # its command is still queued: the worker will cancel it on arrival
            await self.repo.mark(command.task_id, CANCEL, now)
            await self.audit.task_cancelled(command, None)
            if command.lot_id and command.operation:
                state = TaskState.new(command.task_id, command.operation).cancel()
                stub = {"user_id": command.user_id, "lot_id": command.lot_id}
                await self.tasks.emit(step_event(stub, state))
            return reply({"status": TaskStatus.CANCELLED.value})
        state = state_from_doc(doc)
        if state.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            # the caller may be acting on a gauge that missed this end: say it again
            await self.tasks.announce_again(doc, "redelivered")
        try:
            state.cancel_plan(worker_holds=True)
        except IllegalTransitionError as e:
            return refuse(409, e.message)
        fate = await self.repo.decide(
            command.task_id, fate_decision(state.retry_count), "cancel", now
        )
        if fate != "cancel":
            return refuse(409, "Trop tard : le colis est déjà annoncé, la tâche se termine.")
        await self.repo.mark(command.task_id, CANCEL, now)
        await self.audit.task_cancelled(command, doc)
        # a task waiting for its photo has no worker: whoever stops the wait acts on it
        waiting = await photos.stop_for_cancel(self.tasks, doc)
        plan = state.cancel_plan(worker_holds=not waiting)
        if plan is CancelPlan.AT_NEXT_STEP:
            # a worker holds it: it stops at its next step boundary
            return reply({"status": plan.value})
        await self.tasks.finish_cancelled(Run(doc=doc, state=state))
        return reply({"status": plan.value})

    async def retry(self, command: RetryColisTask, republish: Emit) -> dict[str, Any]:
        doc = await self.repo.get_task(command.task_id)
        if doc is None:
            return refuse(404, "Tâche introuvable.")
        state = state_from_doc(doc)
        if not state.can_retry(force=command.force):
            if state.status in FAILED_STATUSES:
                detail = "Plus de nouvel essai possible : seul un administrateur peut la relancer."
            else:
                detail = f"Une tâche « {state.label} » ne peut pas être relancée."
            return refuse(409, detail)
        data = ColisData.model_validate(doc["colis_data"])
        if command.edits:
            try:
                data = apply_edits(data, command.edits)
            except PermanentTaskError as e:
                return refuse(422, e.message)
        if command.upload_id and command.upload_id != doc.get("upload_id"):
            photo = photos.new_photo(command.upload_id, command.image_pending)
            await self.repo.set_task_fields(command.task_id, **photo)
            await self.files.remove_upload(doc.get("upload_id"))
            await self.files.remove_images(command.task_id)
            doc = {**doc, **photo}
        relaunch = self._relaunch(doc, state, data, republish, force=command.force)
        return await self.audit.task_retried(command, doc, data, relaunch)

    async def _relaunch(
        self, doc: Doc, state: TaskState, data: ColisData, republish: Emit, *, force: bool = False
    ) -> dict[str, Any]:
        decision = retry_decision(state.retry_count + 1, state.seq)
        if not await self.repo.mark(state.task_id, decision, self.tasks.clock()):
            return refuse(409, "Cette tâche est déjà relancée.")
        client = await self.repo.get_client(data.client_id)
        run = Run(doc=doc, state=state.retry(force=force))
        run.changes = {
            "colis_data": data.model_dump(mode="json"),
            "summary": summarize(data, client["name"] if client else None),
        }
        await self.tasks.store_and_emit(run, finished_at=None, run_started_at=None)
        await republish(self.tasks.command_for(run.doc, data))
        return reply({"status": TaskStatus.PENDING.value, "retry_count": run.state.retry_count})

    async def retry_due(self, doc: Doc, republish: Emit) -> bool:
        """The sweeper's automatic retry of a `failed_retry` task whose time has come."""
        state = state_from_doc(doc)
        if not state.retry_due(self.tasks.clock()):
            return False
        if await self.tasks.cancel_asked(state.task_id):
            await self.tasks.finish_cancelled(Run(doc=doc, state=state))
            return False
        data = ColisData.model_validate(doc["colis_data"])
        answer = await self._relaunch(doc, state, data, republish)
        return bool(answer["ok"])

    async def handle_stalled(self, doc: Doc) -> str:
        """A task active past the time limit: its worker died or hangs. Requeued while
        retries remain (as a transient failure due now), else failed for good."""
        run = Run(doc=doc, state=state_from_doc(doc))
        if await self.tasks.cancel_asked(run.task_id):
            await self.tasks.finish_cancelled(run)
            return "failed"
        minutes = format_fr(Decimal(self.settings.task_time_limit_s) / 60, 1)
        error = f"Tâche bloquée depuis plus de {minutes} min (service interrompu ?)."
        now = self.tasks.clock()
        run.state = run.state.fail_transient(error, now, 0.0)
        finished = run.state.status is TaskStatus.FAILED_FINAL
        await self.tasks.store_and_emit(run, finished_at=now if finished else None)
        return "failed" if finished else "requeued"

    async def undo_finished(self, doc: Doc) -> None:
        """Cleaning an old failed_final creation: its partial parcel and files go too
        (an update is not undone: a later update may have changed the parcel since)."""
        failed = doc["status"] == TaskStatus.FAILED_FINAL.value
        if failed and doc["operation"] == ColisOperation.CREATE.value:
            await self.tasks.undo(doc)
        else:
            await self.files.remove_upload(doc.get("upload_id"))
