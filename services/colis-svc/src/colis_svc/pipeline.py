"""The parcel pipeline: one task command in, its steps walked, its end stored and told.

    pending → processing → validation → image_uploading → creation
            → price_calculating → notification_sending → completed

Each step's work is idempotent, so a run interrupted by a crash (the message is
redelivered) or stalled (the sweeper requeues it) resumes at the step it had reached and
redoes it without making anything twice: the parcel's `_id` is the creating task's id,
tracking numbers are reserved by a unique insert, photos are written under the task's id,
and events carry stable ids. At each step boundary the run looks for a cancel request
(runs.py, `Tasks.cancel_asked`) and, if there is one, undoes what it made.

Over 300 lines on purpose: the walk and its six steps read together, since what makes
each step safe to redo depends on where the walk resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from colis_svc import photos
from colis_svc.documents import public_colis, state_from_doc, state_to_doc
from colis_svc.domain import (
    ACTIVE_STATUSES,
    PermanentTaskError,
    TaskCancelledError,
    TaskState,
    TransientTaskError,
    ensure_open,
    format_fr,
    invalid_data_error,
    minor_units,
    price,
    process_photo,
)
from colis_svc.hooks import NoHooks, StepHooks
from colis_svc.repository import Doc, fate_decision
from colis_svc.runs import (
    TASK_RUNS,
    Run,
    TaskCommand,
    Tasks,
    is_transient,
    step_event,
    store_errors_are_transient,
)
from colis_svc.settings import SERVICE
from jauge_shared.contracts import (
    AnnounceColisTask,
    ColisCreated,
    ColisData,
    ColisOperation,
    ColisUpdated,
    NotificationRequested,
    TaskStatus,
    UpdateColis,
    stable_event_id,
)
from jauge_shared.contracts.colis import PIPELINE_STATUSES, summarize
from jauge_shared.identity import connection_name

logger = logging.getLogger("colis_svc")

PIPELINE = PIPELINE_STATUSES[1:]  # every step after pending
_ORDER = {status: i for i, status in enumerate(PIPELINE_STATUSES)}


def _colis_fields(data: ColisData) -> Doc:
    """The form's fields as the parcel document stores them (quantities as strings)."""
    return {
        "client_id": data.client_id,
        "type_transport": data.type_transport.value,
        "longueur": str(data.longueur),
        "largeur": str(data.largeur),
        "hauteur": str(data.hauteur),
        "poids": str(data.poids),
        "mode_paiement": data.mode_paiement,
        "statut": data.statut,
        "description": data.description,
    }


def _transient_message(error: BaseException) -> str:
    return f"Service momentanément indisponible ({type(error).__name__}) : nouvel essai programmé."


class Pipeline:
    def __init__(self, tasks: Tasks, hooks: StepHooks | None = None) -> None:
        self.tasks = tasks
        self.repo = tasks.repo
        self.files = tasks.files
        self.settings = tasks.settings
        self.hooks = hooks or NoHooks()
        self.slots = asyncio.Semaphore(self.settings.task_concurrency)
        self.image_slots = asyncio.Semaphore(self.settings.image_workers)

    def clock(self) -> datetime:
        return self.tasks.clock()

    async def run_task(self, command: TaskCommand) -> None:
        async with self.slots, store_errors_are_transient():
            with contextlib.suppress(photos.WaitingForPhoto):  # stored as waiting
                await self._run_task(command)

    async def _run_task(self, command: TaskCommand) -> None:
        doc = await self.load_or_create(command)
        state = state_from_doc(doc)
        if state.status not in ACTIVE_STATUSES:
            # a command for a task already ended: the run that ended it may have died
            # between storing the end and announcing it, so the end is announced again
            logger.info(
                "task command for an ended task: its state announced again",
                extra={"task_id": state.task_id, "status": state.status.value},
            )
            await self.tasks.announce_again(doc, "redelivered")
            return
        run = Run(doc=doc, state=state)
        op = state.operation.value
        try:
            if await self.tasks.cancel_asked(run.task_id):
                raise TaskCancelledError(
                    "La tâche a été annulée.", status=state.status.value, target="cancelled"
                )
            await self.repo.set_task_fields(
                run.task_id, run_started_at=self.clock(), worker=connection_name(SERVICE)
            )
            async with asyncio.timeout(self.settings.task_soft_time_limit_s):
                await self._walk(run)
        except TaskCancelledError:
            await self.tasks.finish_cancelled(run)
            TASK_RUNS.labels(op, "cancelled").inc()
        except PermanentTaskError as e:
            await self.tasks.fail(run, permanent=True, error=e.message)
            TASK_RUNS.labels(op, "failed_permanent").inc()
        except TimeoutError:
            minutes = format_fr(Decimal(self.settings.task_soft_time_limit_s) / 60, 1)
            await self.tasks.fail(
                run, error=f"Délai dépassé ({minutes} min) : étape abandonnée, nouvel essai."
            )
            TASK_RUNS.labels(op, "timeout").inc()
        except Exception as e:
            if is_transient(e):
                message = e.message if isinstance(e, TransientTaskError) else _transient_message(e)
                await self.tasks.fail(run, error=message)
                TASK_RUNS.labels(op, "failed_transient").inc()
                return
            logger.exception("task run failed unexpectedly", extra={"task_id": run.task_id})
            await self.tasks.fail(run, error="Erreur interne : l'incident a été enregistré.")
            TASK_RUNS.labels(op, "error").inc()
        else:
            TASK_RUNS.labels(op, "completed").inc()

    async def accept(self, command: TaskCommand) -> None:
        """The task's first gauge, as soon as its command is in (its own queue, no worker
        slot): stored, then announced as pending at seq 0. colis-svc is the one producer
        of `colis.step_changed`; the gateway's 202 does not wait for this. A task the
        pipeline has already begun is left alone: its own steps say where it is."""
        doc = await self.load_or_create(command)
        state = state_from_doc(doc)
        if state.seq == 0 and state.status is TaskStatus.PENDING:
            await self.tasks.emit(step_event(doc, state))

    async def load_or_create(self, command: TaskCommand) -> Doc:
        doc = await self.repo.get_task(command.task_id)
        if doc is not None:
            return doc
        client = await self.repo.get_client(command.colis_data.client_id)
        is_update = isinstance(command, UpdateColis)
        state = TaskState.new(
            command.task_id,
            ColisOperation.UPDATE if is_update else ColisOperation.CREATE,
            max_retries=self.settings.max_retries,
        )
        now = self.clock()
        doc = {
            "_id": command.task_id,
            "user_id": command.user_id,
            "lot_id": command.lot_id,
            "colis_id": command.colis_id if isinstance(command, UpdateColis) else command.task_id,
            "colis_data": command.colis_data.model_dump(mode="json"),
            "upload_id": command.upload_id,
            "image_pending": command.image_pending,
            "summary": summarize(command.colis_data, client["name"] if client else None),
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
            **state_to_doc(state),
        }
        if not await self.repo.insert_task(doc):  # another delivery got there first
            stored = await self.repo.get_task(command.task_id)
            assert stored is not None
            return stored
        return doc

    async def _walk(self, run: Run) -> None:
        work = {
            TaskStatus.PROCESSING: self._step_processing,
            TaskStatus.VALIDATION: self._step_validation,
            TaskStatus.IMAGE_UPLOADING: self._step_image,
            TaskStatus.CREATION: self._step_creation,
            TaskStatus.PRICE_CALCULATING: self._step_price,
            TaskStatus.NOTIFICATION_SENDING: self._step_notification,
        }
        for status in PIPELINE:
            reached = _ORDER[run.state.status]
            if _ORDER[status] < reached and status is not TaskStatus.VALIDATION:
                continue  # done before a crash (validation is redone: it loads what we need)
            if _ORDER[status] > reached:
                await self._advance(run, status)
            await self.hooks.at_step(run, status)
            await work[status](run)
        await self._advance(run, TaskStatus.COMPLETED, finished_at=self.clock())

    async def _advance(self, run: Run, status: TaskStatus, **fields: Any) -> None:
        if await self.tasks.cancel_asked(run.task_id):
            raise TaskCancelledError(
                "La tâche a été annulée.", status=run.state.status.value, target=status.value
            )
        run.state = run.state.advance(status)
        await self.tasks.store_and_emit(run, step_started_at=self.clock(), **fields)

    async def announce(self, command: AnnounceColisTask) -> None:
        """The reconciler's request: the task's gauge has not moved for a while."""
        doc = await self.repo.get_task(command.job_id)
        if doc is None:
            # its command is still queued (or it was cleaned up long ago): the worker
            # announces it when it arrives
            logger.info("announce asked for an unknown task", extra={"task_id": command.job_id})
            return
        await self.tasks.announce_again(doc, "asked")

    # the steps: each is idempotent
    async def _step_processing(self, run: Run) -> None:
        return None

    async def _step_validation(self, run: Run) -> None:
        try:
            run.data = ColisData.model_validate(run.doc["colis_data"])
        except ValidationError as e:
            raise invalid_data_error(e) from e
        run.client = await self.repo.get_client(run.data.client_id)
        if run.client is None:
            raise PermanentTaskError(f"Client inconnu : {run.data.client_id}.")
        run.lot = await self.repo.get_lot(run.doc["lot_id"])
        if run.lot is None:
            raise PermanentTaskError("Lot introuvable.")
        if run.state.operation is ColisOperation.UPDATE:
            colis = await self.repo.get_colis(run.doc["colis_id"])
            if colis is None:
                raise PermanentTaskError("Colis introuvable.")
        created = run.state.operation is ColisOperation.CREATE and await self.repo.get_colis(
            run.doc["colis_id"]
        )
        if not created:  # a resumed creation whose parcel exists is past this check
            update = run.state.operation is ColisOperation.UPDATE
            ensure_open(run.lot["statut"], run.lot["numero_lot"], update=update)

    async def _step_image(self, run: Run) -> None:
        upload_id = run.doc.get("upload_id")
        if not upload_id or run.doc.get("image"):
            return
        name = run.task_id
        arrived = await self.files.has_upload(upload_id)
        if not arrived and run.doc.get("image_pending"):
            if not await self.files.has_images(name):
                await photos.wait(self.tasks, run, upload_id)  # ends the run, unless it came
        elif run.doc.get("photo_waiting"):  # arrived: resumed by the sweeper, say
            await self.repo.stop_photo_wait(run.task_id, self.clock())
        data = await self.files.read_upload(upload_id)
        if data is None:
            if await self.files.has_images(name):  # processed before a crash
                run.changes["image"] = name
                return
            raise PermanentTaskError("Photo introuvable : l'envoi a expiré, renvoyez-la.")
        async with self.image_slots:
            photo = await asyncio.to_thread(
                process_photo,
                data,
                max_side=self.settings.image_max_side,
                thumb_side=self.settings.thumbnail_side,
            )
        await self.files.write_images(name, photo.jpeg, photo.thumbnail)
        await self.repo.set_task_fields(run.task_id, image=name)
        run.doc["image"] = name
        await self.files.remove_upload(upload_id)

    async def _step_creation(self, run: Run) -> None:
        assert run.data is not None and run.lot is not None
        colis_id = run.doc["colis_id"]
        now = self.clock()
        fields = _colis_fields(run.data)
        if run.doc.get("image"):
            fields["image"] = run.doc["image"]
        if run.state.operation is ColisOperation.CREATE:
            numero = await self.repo.reserve_tracking_number(colis_id, now.date())
            colis = {
                "_id": colis_id,
                "numero_suivi": numero,
                "lot_id": run.lot["_id"],
                "numero_lot": run.lot["numero_lot"],
                **fields,
                "client_name": run.client["name"] if run.client else None,
                "prix": None,
                "devise": None,
                "created_at": now,
                "updated_at": now,
                "task_id": run.task_id,
                "listed": True,
            }
            # chained in its lot first: a parcel stored is always in its lot's list
            await self.repo.lot_index.add_parcel(run.lot["_id"], colis_id)
            if not await self.repo.insert_colis(colis):
                stored = await self.repo.get_colis(colis_id)
                numero = stored["numero_suivi"] if stored else numero
        else:
            current = await self.repo.get_colis(colis_id)
            if current is None:
                raise PermanentTaskError("Colis introuvable.")
            if "previous" not in run.doc:  # kept to undo the update if it is cancelled
                await self.repo.set_task_fields(run.task_id, previous=current)
                run.doc["previous"] = current
            numero = current["numero_suivi"]
            fields["client_name"] = run.client["name"] if run.client else None
            await self.repo.update_colis(colis_id, {**fields, "updated_at": now})
        await self.tasks.audit.parcel_written(run, fields, numero)
        run.changes["numero_suivi"] = numero
        run.doc["numero_suivi"] = numero

    async def _step_price(self, run: Run) -> None:
        assert run.data is not None
        quote = price(run.data, await self.repo.tariff())
        fields = {"prix": str(quote.amount), "devise": quote.devise, "prix_detail": quote.detail}
        await self.repo.update_colis(run.doc["colis_id"], fields)
        run.doc["price"] = fields
        await self.repo.lot_index.refresh_totals(run.doc["lot_id"])

    async def _step_notification(self, run: Run) -> None:
        # the point of no return: from here the parcel is announced, so a cancel can no
        # longer win. The worker and a cancel request race for one `fate` marker per run.
        fate = await self.repo.decide(
            run.task_id, fate_decision(run.state.retry_count), "commit", self.clock()
        )
        if fate != "commit":
            raise TaskCancelledError(
                "La tâche a été annulée.", status=run.state.status.value, target="completed"
            )
        colis = await self.repo.get_colis(run.doc["colis_id"])
        if colis is None:
            raise TransientTaskError("Colis introuvable pendant la notification.")
        public = to_jsonable_python(public_colis(colis))
        created = run.state.operation is ColisOperation.CREATE
        amount = Decimal(colis["prix"]) if colis.get("prix") else None
        devise = colis.get("devise") or ""
        shown = (
            f" – {format_fr(amount, minor_units(devise))} {devise}" if amount is not None else ""
        )
        verb = "enregistré" if created else "modifié"
        attempt = str(run.state.retry_count)
        await self.tasks.emit(
            NotificationRequested(
                producer=SERVICE,
                job_id=run.task_id,
                event_id=stable_event_id(run.task_id, "notification", attempt),
                user_id=run.doc["user_id"],
                message=f"Colis {colis['numero_suivi']} {verb} (lot {colis['numero_lot']}){shown}.",
            )
        )
        event: ColisCreated | ColisUpdated
        if created:
            event = ColisCreated(
                producer=SERVICE,
                job_id=run.task_id,
                event_id=stable_event_id(run.task_id, "colis.created"),
                colis=public,
            )
        else:
            event = ColisUpdated(
                producer=SERVICE,
                job_id=run.task_id,
                event_id=stable_event_id(run.task_id, "colis.updated", attempt),
                colis=public,
            )
        await self.tasks.emit(event)
