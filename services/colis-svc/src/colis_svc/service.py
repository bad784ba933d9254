"""colis-svc's use cases: lots and clients (RPC), the parcel pipeline, retry and cancel.

The pipeline of one task (docs/colis.md):

    pending → processing → validation → image_uploading → creation
            → price_calculating → notification_sending → completed

Every transition is stored in the task document, then published as `colis.step_changed`
with the task's next `seq`. Each step's work is idempotent, so a run interrupted by a
crash (the message is redelivered) or stalled (the sweeper requeues it) resumes at the
step it had reached and redoes it without making anything twice: the parcel's `_id` is
the creating task's id, tracking numbers are reserved by a unique insert, photos are
written under the task's id, and events carry stable ids.

A cancel request is a marker inserted once; a worker looks for it at each step
boundary, undoes what this task made (parcel, tracking number, photo, upload; for an
update, the parcel's previous version comes back) and ends in `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

from prometheus_client import Counter
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from colis_svc import audit, photos
from colis_svc.domain import (
    ACTIVE_STATUSES,
    RUNNING_STATUSES,
    LotStatut,
    LotType,
    PermanentTaskError,
    TaskCancelledError,
    TaskState,
    TransientTaskError,
    apply_edits,
    can_change_lot_statut,
    ensure_open,
    format_fr,
    invalid_data_error,
    minor_units,
    next_retry_delay,
    price,
    process_photo,
    summarize,
)
from colis_svc.repository import (
    CANCEL,
    ColisRepository,
    Doc,
    fate_decision,
    public_client,
    public_colis,
    public_lot,
    retry_decision,
    state_from_doc,
    state_to_doc,
)
from colis_svc.settings import SERVICE, ColisSettings
from jauge_shared import messaging
from jauge_shared.contracts import (
    AnnounceColisTask,
    CancelColisTask,
    ColisCreated,
    ColisData,
    ColisOperation,
    ColisStepChanged,
    ColisUpdated,
    CreateColis,
    LotCreated,
    Message,
    NotificationRequested,
    RetryColisTask,
    TaskStatus,
    UpdateColis,
    stable_event_id,
)
from jauge_shared.errors import TransientError
from jauge_shared.faults import fault_points
from jauge_shared.identity import connection_name
from jauge_shared.messaging import TRANSIENT_ERRORS
from jauge_shared.metrics import STATE_REANNOUNCED

logger = logging.getLogger("colis_svc")

Emit = Callable[[Message], Awaitable[None]]
TaskCommand = CreateColis | UpdateColis

PIPELINE: tuple[TaskStatus, ...] = (
    TaskStatus.PROCESSING,
    TaskStatus.VALIDATION,
    TaskStatus.IMAGE_UPLOADING,
    TaskStatus.CREATION,
    TaskStatus.PRICE_CALCULATING,
    TaskStatus.NOTIFICATION_SENDING,
)
_ORDER = {status: i for i, status in enumerate((TaskStatus.PENDING, *PIPELINE))}
FINISHED = [TaskStatus.COMPLETED.value, TaskStatus.CANCELLED.value, TaskStatus.FAILED_FINAL.value]
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


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
    )


class RpcError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


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


_DIRECTIVES = re.compile(r"\[test:([^\]]*)\]")


class TestHooks:
    """Test-only (`JAUGE_TEST_HOOKS=true`): directives in a parcel's description, so one
    running stack can hold a task at each step or make one step fail, per task.

    `[test:delay=0.5]` pauses 0.5 s at each step; `[test:fail=creation:transient*2]` makes
    that step fail transiently while the task has been retried fewer than 2 times
    (`permanent` also exists)."""

    __test__ = False  # not a pytest class

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def directives(self, run: Run) -> dict[str, str]:
        if not self.enabled:
            return {}
        description = str(run.doc.get("colis_data", {}).get("description", ""))
        found: dict[str, str] = {}
        for block in _DIRECTIVES.findall(description):
            for part in block.split(";"):
                key, _, value = part.partition("=")
                found[key.strip()] = value.strip()
        return found

    async def at_step(self, run: Run, step: TaskStatus) -> None:
        directives = self.directives(run)
        if not directives:
            return
        if "delay" in directives:
            await asyncio.sleep(float(directives["delay"]))
        target, _, rest = directives.get("fail", "").partition(":")
        if target != step.value:
            return
        kind, _, count = rest.partition("*")
        # counted by the task's own retries, so every replica agrees
        if run.state.retry_count >= int(count or 1):
            return
        if kind == "transient":
            raise TransientTaskError("Panne simulée : service momentanément indisponible.")
        raise PermanentTaskError("Panne simulée : données refusées.")


class FileStore:
    """Uploads waiting for their task, and the processed photos, under JAUGE_DATA_DIR."""

    def __init__(self, data_dir: Path) -> None:
        self.uploads = data_dir / "uploads" / "colis"
        self.images = data_dir / "images" / "colis"

    def ensure_layout(self) -> None:
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.images.mkdir(parents=True, exist_ok=True)

    def upload_path(self, upload_id: str) -> Path:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise PermanentTaskError("Photo introuvable : identifiant d'envoi invalide.")
        return self.uploads / upload_id

    def image_paths(self, name: str) -> tuple[Path, Path]:
        return self.images / f"{name}.jpg", self.images / f"{name}.thumb.jpg"

    @staticmethod
    def write_atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def remove_upload(self, upload_id: str | None) -> None:
        if upload_id and UPLOAD_ID.fullmatch(upload_id):
            (self.uploads / upload_id).unlink(missing_ok=True)

    def remove_images(self, name: str) -> None:
        for path in self.image_paths(name):
            path.unlink(missing_ok=True)


class ColisService:
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
        self.hooks = TestHooks(settings.test_hooks)
        self.faults = fault_points(settings.fault_points, settings.data_dir)
        self.slots = asyncio.Semaphore(settings.task_concurrency)
        self.image_slots = asyncio.Semaphore(settings.image_workers)
        self.audit = audit.AuditLog(repository.db, clock)

    # ------------------------------------------------------------------ RPC (reads, lots)
    async def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Request/reply from the gateway: `{ok, result}` or `{ok: false, status, detail}`."""
        handler = getattr(self, f"rpc_{method}", None)
        if handler is None:
            return {"ok": False, "status": 400, "detail": f"Méthode inconnue : {method}."}
        try:
            result = await handler(**params)
        except RpcError as e:
            return {"ok": False, "status": e.status, "detail": e.detail}
        except TypeError as e:
            return {"ok": False, "status": 400, "detail": f"Paramètres invalides : {e}."}
        except Exception as e:
            # the caller waits for an answer: a store hiccup is a 503, never silence
            if not is_transient(e):
                logger.exception("rpc failed", extra={"method": method})
            return {
                "ok": False,
                "status": 503,
                "detail": "Service des colis momentanément indisponible : réessayez.",
            }
        return {"ok": True, "result": to_jsonable_python(result)}

    async def rpc_list_clients(self) -> list[Doc]:
        return [public_client(d) for d in await self.repo.list_clients()]

    async def rpc_create_client(self, name: str, phone: str = "") -> Doc:
        name, phone = name.strip(), phone.strip()
        if not name or len(name) > 200 or len(phone) > 40:
            raise RpcError(422, "Client invalide : nom obligatoire (200 caractères au plus).")
        client = {"_id": "cli-" + uuid4().hex[:12], "name": name, "phone": phone}
        await self.repo.add_client({**client, "created_at": self.clock()})
        return public_client(client)

    async def rpc_get_tariff(self) -> Doc:
        return (await self.repo.tariff()).to_document()

    async def rpc_create_lot(self, type_lot: str, user_id: str = "") -> Doc:
        try:
            kind = LotType(type_lot)
        except ValueError as e:
            raise RpcError(422, "Type de lot invalide : cargo, express ou bateau.") from e
        now = self.clock()
        lot = await self.repo.create_lot(uuid4().hex, kind, now.date(), now)
        await self.audit.lot_created(lot, user_id)
        public = public_lot(lot)
        await self.emit(
            LotCreated(
                producer=SERVICE,
                job_id=lot["_id"],
                event_id=stable_event_id("lot.created", lot["_id"]),
                lot=to_jsonable_python(public),
            )
        )
        return public

    async def rpc_list_lots(self, statut: str | None = None, limit: int = 200) -> list[Doc]:
        return [public_lot(d) for d in await self.repo.list_lots(statut, min(limit, 1000))]

    async def rpc_get_lot(self, lot_id: str) -> Doc:
        return public_lot(await self._lot(lot_id))

    async def rpc_close_lot(self, lot_id: str, user_id: str = "") -> Doc:
        lot = await self._lot(lot_id)
        if lot["statut"] == LotStatut.FERME.value:
            return public_lot(lot)
        if not can_change_lot_statut(lot["statut"], LotStatut.FERME):
            raise RpcError(409, f"Le lot {lot['numero_lot']} ne peut pas être fermé.")
        await self.repo.set_lot_statut(lot_id, LotStatut.FERME, self.clock())
        await self.audit.lot_closed(lot, LotStatut.FERME.value, user_id)
        return public_lot(await self._lot(lot_id))

    async def rpc_get_colis(self, colis_id: str) -> Doc:
        doc = await self.repo.get_colis(colis_id)
        if doc is None:
            raise RpcError(404, "Colis introuvable.")
        return public_colis(doc)

    async def rpc_colis_image(self, colis_id: str, thumbnail: bool = False) -> Doc:
        doc = await self.repo.get_colis(colis_id)
        if doc is None or not doc.get("image"):
            raise RpcError(404, "Photo introuvable.")
        jpeg, thumb = self.files.image_paths(doc["image"])
        return {"file": (thumb if thumbnail else jpeg).name}

    async def rpc_list_lot_colis(self, lot_id: str, limit: int = 1000) -> list[Doc]:
        await self._lot(lot_id)
        return [public_colis(d) for d in await self.repo.list_colis(lot_id, min(limit, 5000))]

    async def rpc_precheck(self, lot_id: str, client_id: str | None = None) -> Doc:
        """What the gateway checks before queueing a task: the lot exists and is open
        (and, for an update, the parcel exists). The client's name is for the title."""
        lot = await self._lot(lot_id)
        if lot["statut"] != LotStatut.OUVERT.value:
            raise RpcError(
                409,
                f"Le lot {lot['numero_lot']} n'est pas ouvert : impossible d'y ajouter un colis.",
            )
        client = await self.repo.get_client(client_id) if client_id else None
        return {"lot": public_lot(lot), "client_name": client["name"] if client else None}

    async def rpc_precheck_update(self, colis_id: str) -> Doc:
        colis = await self.repo.get_colis(colis_id)
        if colis is None:
            raise RpcError(404, "Colis introuvable.")
        lot = await self._lot(colis["lot_id"])
        if lot["statut"] != LotStatut.OUVERT.value:
            raise RpcError(
                409, f"Le lot {lot['numero_lot']} n'est pas ouvert : le colis ne peut plus changer."
            )
        return {"colis": public_colis(colis), "lot": public_lot(lot)}

    async def rpc_colis_history(
        self, colis_id: str, limit: int = 100, before: int | None = None
    ) -> Doc:
        """Who changed the parcel and when, newest first (docs/colis.md, "Audit trail");
        a cancelled creation's parcel is gone, its history stays."""
        page = await self.audit.page(audit.colis_chain(colis_id), limit, before)
        if not page["entries"] and before is None and await self.repo.get_colis(colis_id) is None:
            raise RpcError(404, "Colis introuvable.")
        return page

    async def rpc_lot_history(
        self, lot_id: str, limit: int = 100, before: int | None = None
    ) -> Doc:
        """The lot's own changes and those of its parcels, newest first."""
        await self._lot(lot_id)
        return await self.audit.page(audit.lot_chain(lot_id), limit, before)

    async def rpc_audit(self, limit: int = 100, before: int | None = None) -> Doc:
        """Every change to lots and parcels, newest first (the gateway lets admins only)."""
        return await self.audit.page(audit.ALL, limit, before)

    async def _lot(self, lot_id: str) -> Doc:
        lot = await self.repo.get_lot(lot_id)
        if lot is None:
            raise RpcError(404, "Lot introuvable.")
        return lot

    # ------------------------------------------------------------------ the pipeline
    async def run_task(self, command: TaskCommand) -> None:
        async with self.slots, store_errors_are_transient():
            with contextlib.suppress(photos.WaitingForPhoto):  # stored as waiting
                await self._run_task(command)

    async def _run_task(self, command: TaskCommand) -> None:
        doc = await self._load_or_create(command)
        state = state_from_doc(doc)
        if state.status not in ACTIVE_STATUSES:
            # a command for a task already ended: the run that ended it may have died
            # between storing the end and announcing it, so the end is announced again
            logger.info(
                "task command for an ended task: its state announced again",
                extra={"task_id": state.task_id, "status": state.status.value},
            )
            await self._announce_again(doc, "redelivered")
            return
        run = Run(doc=doc, state=state)
        op = state.operation.value
        try:
            if await self._cancel_asked(run):
                raise TaskCancelledError(
                    "La tâche a été annulée.", status=state.status.value, target="cancelled"
                )
            await self.repo.set_task_fields(
                run.task_id, run_started_at=self.clock(), worker=connection_name(SERVICE)
            )
            async with asyncio.timeout(self.settings.task_soft_time_limit_s):
                await self._walk(run)
        except TaskCancelledError:
            await self._finish_cancelled(run)
            TASK_RUNS.labels(op, "cancelled").inc()
        except PermanentTaskError as e:
            await self._fail(run, permanent=True, error=e.message)
            TASK_RUNS.labels(op, "failed_permanent").inc()
        except TimeoutError:
            minutes = format_fr(Decimal(self.settings.task_soft_time_limit_s) / 60, 1)
            await self._fail(
                run, error=f"Délai dépassé ({minutes} min) : étape abandonnée, nouvel essai."
            )
            TASK_RUNS.labels(op, "timeout").inc()
        except Exception as e:
            if is_transient(e):
                message = e.message if isinstance(e, TransientTaskError) else _transient_message(e)
                await self._fail(run, error=message)
                TASK_RUNS.labels(op, "failed_transient").inc()
                return
            logger.exception("task run failed unexpectedly", extra={"task_id": run.task_id})
            await self._fail(run, error="Erreur interne : l'incident a été enregistré.")
            TASK_RUNS.labels(op, "error").inc()
        else:
            TASK_RUNS.labels(op, "completed").inc()

    async def _load_or_create(self, command: TaskCommand) -> Doc:
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

    async def _cancel_asked(self, run: Run) -> bool:
        return await self.repo.has_marker(run.task_id, CANCEL)

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
        if await self._cancel_asked(run):
            raise TaskCancelledError(
                "La tâche a été annulée.", status=run.state.status.value, target=status.value
            )
        run.state = run.state.advance(status)
        await self._store_and_emit(run, step_started_at=self.clock(), **fields)

    async def _store_and_emit(self, run: Run, **fields: Any) -> None:
        fields["updated_at"] = self.clock()
        await self.repo.save_state(run.state, **run.changes, **fields)
        # a crash or an outage from here until the publish is confirmed leaves a state
        # stored and not announced: the command's redelivery, or the reconciler's
        # request, announces it again (_announce_again)
        self.faults.hit("colis.stored", run.state.status.value)
        run.doc.update(state_to_doc(run.state), **run.changes, **fields)
        run.changes = {}
        await self.emit(step_event(run.doc, run.state))

    async def _announce_again(self, doc: Doc, reason: str) -> None:
        """Publish the task's stored state with the event id it had the first time."""
        await self.emit(step_event(doc, state_from_doc(doc)).again())
        STATE_REANNOUNCED.labels(SERVICE, reason).inc()

    async def announce(self, command: AnnounceColisTask) -> None:
        """The reconciler's request: the task's gauge has not moved for a while."""
        doc = await self.repo.get_task(command.job_id)
        if doc is None:
            # its command is still queued (or it was cleaned up long ago): the worker
            # announces it when it arrives
            logger.info("announce asked for an unknown task", extra={"task_id": command.job_id})
            return
        await self._announce_again(doc, "asked")

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
            ensure_open(run.lot["statut"], run.lot["numero_lot"])

    async def _step_image(self, run: Run) -> None:
        upload_id = run.doc.get("upload_id")
        if not upload_id or run.doc.get("image"):
            return
        name = run.task_id
        jpeg_path, thumb_path = self.files.image_paths(name)
        upload = self.files.upload_path(upload_id)
        if not upload.exists() and run.doc.get("image_pending"):
            if not (jpeg_path.exists() and thumb_path.exists()):
                await photos.wait(self, run, upload_id)  # ends the run, unless it came
        elif run.doc.get("photo_waiting"):  # arrived: resumed by the sweeper, say
            await self.repo.stop_photo_wait(run.task_id, self.clock())
        if not upload.exists():
            if jpeg_path.exists() and thumb_path.exists():  # processed before a crash
                run.changes["image"] = name
                return
            raise PermanentTaskError("Photo introuvable : l'envoi a expiré, renvoyez-la.")
        data = await asyncio.to_thread(upload.read_bytes)
        async with self.image_slots:
            photo = await asyncio.to_thread(
                process_photo,
                data,
                max_side=self.settings.image_max_side,
                thumb_side=self.settings.thumbnail_side,
            )
        self.files.images.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.files.write_atomic, jpeg_path, photo.jpeg)
        await asyncio.to_thread(self.files.write_atomic, thumb_path, photo.thumbnail)
        await self.repo.set_task_fields(run.task_id, image=name)
        run.doc["image"] = name
        self.files.remove_upload(upload_id)

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
            }
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
        await self.audit.parcel_written(run, fields, numero)
        run.changes["numero_suivi"] = numero
        run.doc["numero_suivi"] = numero

    async def _step_price(self, run: Run) -> None:
        assert run.data is not None
        quote = price(run.data, await self.repo.tariff())
        fields = {"prix": str(quote.amount), "devise": quote.devise, "prix_detail": quote.detail}
        await self.repo.update_colis(run.doc["colis_id"], fields)
        run.doc["price"] = fields

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
        await self.emit(
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
        await self.emit(event)

    # endings
    async def _fail(self, run: Run, *, error: str, permanent: bool = False) -> None:
        state = run.state
        if state.status not in ACTIVE_STATUSES:
            return
        if await self._cancel_asked(run):
            await self._finish_cancelled(run)
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
        await self._store_and_emit(run, finished_at=self.clock() if finished else None)

    async def _finish_cancelled(self, run: Run) -> None:
        await self._undo(run.doc)
        if run.state.status is TaskStatus.CANCELLED:
            return
        run.state = run.state.cancel()
        await self._store_and_emit(run, finished_at=self.clock())

    async def _undo(self, doc: Doc) -> None:
        """No half-made parcel and no stored photo survive a cancelled task."""
        if doc["operation"] == ColisOperation.CREATE.value:
            await self.repo.delete_colis(doc["colis_id"])
        elif doc.get("previous"):
            await self.repo.replace_colis(doc["previous"])
        self.files.remove_images(doc["_id"])
        self.files.remove_upload(doc.get("upload_id"))

    # ------------------------------------------------------------------ control
    async def cancel(self, command: CancelColisTask) -> dict[str, Any]:
        doc = await self.repo.get_task(command.task_id)
        if doc is None:
            # its command is still queued: the worker will cancel it on arrival
            await self.repo.mark(command.task_id, CANCEL, self.clock())
            await self.audit.task_cancelled(command, None)
            if command.lot_id and command.operation:
                state = TaskState.new(command.task_id, command.operation).cancel()
                stub = {"user_id": command.user_id, "lot_id": command.lot_id}
                await self.emit(step_event(stub, state))
            return _reply({"status": TaskStatus.CANCELLED.value})
        state = state_from_doc(doc)
        if state.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            # the caller may be acting on a gauge that missed this end: say it again
            await self._announce_again(doc, "redelivered")
        if state.status is TaskStatus.COMPLETED:
            return _refuse(409, "Impossible d'annuler une tâche terminée.")
        if state.status is TaskStatus.CANCELLED:
            return _refuse(409, "La tâche est déjà annulée.")
        fate = await self.repo.decide(
            command.task_id, fate_decision(state.retry_count), "cancel", self.clock()
        )
        if fate != "cancel":
            return _refuse(409, "Trop tard : le colis est déjà annoncé, la tâche se termine.")
        await self.repo.mark(command.task_id, CANCEL, self.clock())
        await self.audit.task_cancelled(command, doc)
        if state.status in RUNNING_STATUSES and not await photos.stop_for_cancel(self, doc):
            # a worker holds it: it stops at its next step boundary
            return _reply({"status": "cancel_requested"})
        run = Run(doc=doc, state=state)
        await self._finish_cancelled(run)
        return _reply({"status": TaskStatus.CANCELLED.value})

    async def retry(self, command: RetryColisTask, republish: Emit) -> dict[str, Any]:
        doc = await self.repo.get_task(command.task_id)
        if doc is None:
            return _refuse(404, "Tâche introuvable.")
        state = state_from_doc(doc)
        if not state.can_retry(force=command.force):
            if state.status in (
                TaskStatus.FAILED_RETRY,
                TaskStatus.FAILED,
                TaskStatus.FAILED_FINAL,
            ):
                detail = "Plus de nouvel essai possible : seul un administrateur peut la relancer."
            else:
                detail = f"Une tâche « {state.label} » ne peut pas être relancée."
            return _refuse(409, detail)
        data = ColisData.model_validate(doc["colis_data"])
        if command.edits:
            try:
                data = apply_edits(data, command.edits)
            except PermanentTaskError as e:
                return _refuse(422, e.message)
        if command.upload_id and command.upload_id != doc.get("upload_id"):
            photo = photos.new_photo(command.upload_id, command.image_pending)
            await self.repo.set_task_fields(command.task_id, **photo)
            self.files.remove_upload(doc.get("upload_id"))
            self.files.remove_images(command.task_id)
            doc = {**doc, **photo}
        relaunch = self._relaunch(doc, state, data, republish, force=command.force)
        return await self.audit.task_retried(command, doc, data, relaunch)

    async def _relaunch(
        self, doc: Doc, state: TaskState, data: ColisData, republish: Emit, *, force: bool = False
    ) -> dict[str, Any]:
        decision = retry_decision(state.retry_count + 1, state.seq)
        if not await self.repo.mark(state.task_id, decision, self.clock()):
            return _refuse(409, "Cette tâche est déjà relancée.")
        client = await self.repo.get_client(data.client_id)
        run = Run(doc=doc, state=state.retry(force=force))
        run.changes = {
            "colis_data": data.model_dump(mode="json"),
            "summary": summarize(data, client["name"] if client else None),
        }
        await self._store_and_emit(run, finished_at=None, run_started_at=None)
        await republish(self._command_for(run.doc, data))
        return _reply({"status": TaskStatus.PENDING.value, "retry_count": run.state.retry_count})

    def _command_for(self, doc: Doc, data: ColisData) -> TaskCommand:
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

    async def retry_due(self, doc: Doc, republish: Emit) -> bool:
        """The sweeper's automatic retry of a `failed_retry` task whose time has come."""
        state = state_from_doc(doc)
        if not state.retry_due(self.clock()):
            return False
        if await self.repo.has_marker(state.task_id, CANCEL):
            await self._finish_cancelled(Run(doc=doc, state=state))
            return False
        data = ColisData.model_validate(doc["colis_data"])
        reply = await self._relaunch(doc, state, data, republish)
        return bool(reply["ok"])

    async def handle_stalled(self, doc: Doc) -> str:
        """A task active past the time limit: its worker died or hangs. Requeued while
        retries remain (as a transient failure due now), else failed for good."""
        run = Run(doc=doc, state=state_from_doc(doc))
        if await self._cancel_asked(run):
            await self._finish_cancelled(run)
            return "failed"
        minutes = format_fr(Decimal(self.settings.task_time_limit_s) / 60, 1)
        error = f"Tâche bloquée depuis plus de {minutes} min (service interrompu ?)."
        run.state = run.state.fail_transient(error, self.clock(), 0.0)
        finished = run.state.status is TaskStatus.FAILED_FINAL
        await self._store_and_emit(run, finished_at=self.clock() if finished else None)
        return "failed" if finished else "requeued"

    async def undo_finished(self, doc: Doc) -> None:
        """Cleaning an old failed_final creation: its partial parcel and files go too
        (an update is not undone: a later update may have changed the parcel since)."""
        failed = doc["status"] == TaskStatus.FAILED_FINAL.value
        if failed and doc["operation"] == ColisOperation.CREATE.value:
            await self._undo(doc)
        else:
            self.files.remove_upload(doc.get("upload_id"))


def _colis_fields(data: ColisData) -> Doc:
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


def _transient_message(error: BaseException) -> str:
    return f"Service momentanément indisponible ({type(error).__name__}) : nouvel essai programmé."


def _reply(result: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": result}


def _refuse(status: int, detail: str) -> dict[str, Any]:
    return {"ok": False, "status": status, "detail": detail}
