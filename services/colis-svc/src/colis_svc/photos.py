"""A photo still on its way: the `image_uploading` step waits for it without a worker.

Agents on slow mobile links submit the parcel form before the photo has left the phone
(the gateway's resumable uploads, `image_pending` on the command). When the step finds
the upload missing, the task is stored and announced as waiting ("En attente de la
photo…", at the step's percentage) and the run ends: its command is acked, its worker
slot freed. When the last byte arrives the gateway sends `colis.photo_ready`; whoever
turns the task's `photo_waiting` flag off first (that notice, the sweeper, a cancel)
acts on it, so a task is resumed, failed or cancelled once:

- the notice republishes the task's command; the run redoes validation and takes the
  photo over as for the multipart form (checked, decoded, re-encoded);
- the sweeper resumes a waiting task whose upload is there (a notice lost) and fails one
  whose photo has not come by `photo_deadline_s`, with a French message; the agent can
  retry it, with a new photo (a new `upload_id`) or the same one if it is still coming.

Waiting ends the run with `WaitingForPhoto`, a BaseException: the run's failure handling
(which turns every Exception into a failed state) must not see it; `run_task` drops it.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from colis_svc.domain import TaskState, label_of
from jauge_shared.contracts import ColisData, PhotoReady, TaskStatus

if TYPE_CHECKING:
    from colis_svc.runs import Emit, Run, Tasks

logger = logging.getLogger("colis_svc.photos")

WAITING_LABEL = "En attente de la photo…"
DEADLINE_MESSAGE = "La photo n'est pas arrivée à temps : relancez la tâche avec une nouvelle photo."
# a waiting task whose upload is there this long after it began to wait was not told
# (its notice lost): the sweeper resumes it
LOST_NOTICE_AFTER_S = 10.0

PHOTO_WAITS = Counter(
    "jauge_colis_photo_waits_total",
    "Parcel tasks that waited for their photo, by how the wait ended.",
    ["outcome"],
)


class WaitingForPhoto(BaseException):
    """Ends a run whose photo has not arrived; the task is stored as waiting."""


def is_waiting(doc: dict[str, Any]) -> bool:
    return doc.get("status") == TaskStatus.IMAGE_UPLOADING.value and bool(doc.get("photo_waiting"))


def step_label(doc: dict[str, Any], state: TaskState) -> str:
    if state.status is TaskStatus.IMAGE_UPLOADING and doc.get("photo_waiting"):
        return WAITING_LABEL
    return label_of(state.status)


async def wait(tasks: Tasks, run: Run, upload_id: str) -> None:
    """Stores and announces the wait, then ends the run, unless the photo came meanwhile."""
    if not run.doc.get("photo_waiting"):
        now = tasks.clock()
        since: datetime = run.doc.get("photo_waiting_since") or now
        run.state = dataclasses.replace(run.state, seq=run.state.seq + 1)
        run.changes.update(
            photo_waiting=True,
            photo_waiting_since=since,
            photo_deadline_at=since + timedelta(seconds=tasks.settings.photo_deadline_s),
        )
        await tasks.store_and_emit(run)
        PHOTO_WAITS.labels("waiting").inc()
    # looked at again once the wait is stored: a notice sent before that found no task
    # waiting and did nothing, so the photo may be here now
    if await tasks.files.has_upload(upload_id) and await tasks.repo.stop_photo_wait(
        run.task_id, tasks.clock()
    ):
        run.doc["photo_waiting"] = False
        return
    logger.info("waiting for the photo", extra={"task_id": run.task_id, "upload_id": upload_id})
    raise WaitingForPhoto()


async def photo_ready(tasks: Tasks, command: PhotoReady, republish: Emit) -> None:
    doc = await tasks.repo.get_task(command.task_id)
    if doc is None or doc.get("upload_id") != command.upload_id or not is_waiting(doc):
        return  # not waiting (yet): its step finds the photo when it gets there
    await resume(tasks, doc, republish)


async def resume(tasks: Tasks, doc: dict[str, Any], republish: Emit) -> bool:
    if not await tasks.repo.stop_photo_wait(doc["_id"], tasks.clock()):
        return False
    data = ColisData.model_validate(doc["colis_data"])
    try:
        await republish(tasks.command_for(doc, data))
    except BaseException:
        await tasks.repo.set_task_fields(doc["_id"], photo_waiting=True)
        raise
    PHOTO_WAITS.labels("arrived").inc()
    logger.info("photo arrived: task resumed", extra={"task_id": doc["_id"]})
    return True


async def sweep(tasks: Tasks, republish: Emit) -> int:
    """Waiting tasks whose notice was lost are resumed; those past the deadline fail."""
    now = tasks.clock()
    acted = 0
    for doc in await tasks.repo.open_tasks_in([TaskStatus.IMAGE_UPLOADING.value]):
        if not is_waiting(doc):
            continue
        upload_id = doc.get("upload_id")
        arrived = upload_id and await tasks.files.has_upload(upload_id)
        since = doc.get("photo_waiting_since") or now
        if arrived and now - since >= timedelta(seconds=LOST_NOTICE_AFTER_S):
            acted += await resume(tasks, doc, republish)
        elif not arrived and now >= (doc.get("photo_deadline_at") or now):
            acted += await fail_late(tasks, doc)
    return acted


async def fail_late(tasks: Tasks, doc: dict[str, Any]) -> bool:
    from colis_svc.documents import state_from_doc
    from colis_svc.runs import Run

    if not await tasks.repo.stop_photo_wait(doc["_id"], tasks.clock()):
        return False
    doc["photo_waiting"] = False
    run = Run(doc=doc, state=state_from_doc(doc))
    await tasks.fail(run, error=DEADLINE_MESSAGE, permanent=True)
    PHOTO_WAITS.labels("late").inc()
    logger.warning("photo too late: task failed", extra={"task_id": doc["_id"]})
    return True


async def stop_for_cancel(tasks: Tasks, doc: dict[str, Any]) -> bool:
    """A cancel of a waiting task: no worker holds it, so it is cancelled at once."""
    return is_waiting(doc) and await tasks.repo.stop_photo_wait(doc["_id"], tasks.clock())


def new_photo(upload_id: str, pending: bool) -> dict[str, Any]:
    """The fields a retry with a new photo stores: the wait starts again."""
    return {
        "upload_id": upload_id,
        "image_pending": pending,
        "image": None,
        "photo_waiting": False,
        "photo_waiting_since": None,
        "photo_deadline_at": None,
    }
