"""A photo still on its way (photos.py): the task waits without a worker, runs on when the
photo arrives, fails past its deadline, and can be retried with a new photo."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import TYPE_CHECKING

from PIL import Image

from colis_svc import photos
from colis_svc.photos import DEADLINE_MESSAGE, WAITING_LABEL
from jauge_shared.contracts import (
    CancelColisTask,
    ColisStepChanged,
    CreateColis,
    PhotoReady,
    RetryColisTask,
)


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2400, 1800), "blue").save(buffer, "JPEG")
    return buffer.getvalue()


if TYPE_CHECKING:  # the world of conftest.py
    from conftest import World


def ready(task_id: str, upload_id: str) -> PhotoReady:
    return PhotoReady(
        producer="test", job_id=task_id, task_id=task_id, user_id="alice", upload_id=upload_id
    )


async def waiting_task(world: World, task_id: str, upload_id: str) -> None:
    lot_id = await world.lot()
    command = world.create(task_id, lot_id, upload_id=upload_id, image_pending=True)
    await world.service.pipeline.run_task(command)  # returns: the run ends while the photo is away
    task = await world.repo.get_task(task_id)
    assert task is not None
    assert task["status"] == "image_uploading" and task["photo_waiting"] is True
    last = [e for e in world.events if isinstance(e, ColisStepChanged)][-1]
    assert (last.status.value, last.step, last.percent) == ("image_uploading", WAITING_LABEL, 40)
    assert world.service.pipeline.slots._value == world.settings.task_concurrency  # no slot held


async def test_a_task_waits_for_its_photo_without_a_worker_then_runs_on(world: World) -> None:
    upload_id = "c" * 32
    await waiting_task(world, "t-wait", upload_id)
    # a notice for another upload, or before the photo is there, changes nothing
    await photos.photo_ready(world.service.tasks, ready("t-wait", "d" * 32), world.republish)
    assert world.commands == []

    await world.service.tasks.files.uploads.put(upload_id, jpeg())
    await photos.photo_ready(world.service.tasks, ready("t-wait", upload_id), world.republish)
    await photos.photo_ready(world.service.tasks, ready("t-wait", upload_id), world.republish)
    assert len(world.commands) == 1  # a repeated notice resumes it once
    resumed = world.commands[0]
    assert isinstance(resumed, CreateColis) and resumed.upload_id == upload_id

    await world.service.pipeline.run_task(resumed)
    task = await world.repo.get_task("t-wait")
    assert task is not None and task["status"] == "completed" and task["image"] == "t-wait"
    stored = await world.service.tasks.files.images.read("t-wait.jpg")
    assert stored is not None
    with Image.open(io.BytesIO(stored)) as image:
        assert max(image.size) == 1600
    steps = world.steps("t-wait")
    assert steps.count("image_uploading") == 2  # the wait, announced once, then the work
    assert steps[-1] == "completed"


async def test_past_its_deadline_the_task_fails_and_is_retried_with_a_new_photo(
    world: World,
) -> None:
    world.service.tasks.settings = world.service.tasks.settings.model_copy(
        update={"photo_deadline_s": 0.01}
    )
    await waiting_task(world, "t-late", "e" * 32)
    await asyncio.sleep(0.05)  # past the deadline
    await world.sweeper.sweep()
    task = await world.repo.get_task("t-late")
    assert task is not None and task["status"] == "failed_final"
    assert task["error"] == DEADLINE_MESSAGE and task["photo_waiting"] is False
    await world.sweeper.sweep()  # nothing more: it failed once
    assert world.steps("t-late").count("failed_final") == 1

    new_upload = "f" * 32
    await world.service.tasks.files.uploads.put(new_upload, jpeg())
    retry = RetryColisTask(
        producer="test", job_id="t-late", task_id="t-late", user_id="alice", upload_id=new_upload
    )
    reply = await world.service.control.retry(retry, world.republish)
    assert reply["ok"], reply
    await world.service.pipeline.run_task(world.commands[-1])  # type: ignore[arg-type]
    task = await world.repo.get_task("t-late")
    assert task is not None and task["status"] == "completed"
    assert task["upload_id"] == new_upload and task["image"] == "t-late"


async def test_the_sweeper_resumes_a_task_whose_notice_was_lost(world: World) -> None:
    upload_id = "1" * 32
    await waiting_task(world, "t-lost", upload_id)
    await world.service.tasks.files.uploads.put(upload_id, jpeg())
    await world.sweeper.sweep()
    assert world.commands == []  # the notice may still be on its way
    before = world.service.tasks.clock() - timedelta(minutes=1)
    await world.repo.set_task_fields("t-lost", photo_waiting_since=before)
    await world.sweeper.sweep()
    assert [c.task_id for c in world.commands] == ["t-lost"]  # type: ignore[attr-defined]
    await world.sweeper.sweep()
    assert len(world.commands) == 1


async def test_a_waiting_task_is_cancelled_at_once(world: World) -> None:
    await waiting_task(world, "t-cancel", "2" * 32)
    reply = await world.service.control.cancel(
        CancelColisTask(producer="test", job_id="t-cancel", task_id="t-cancel", user_id="alice")
    )
    assert reply == {"ok": True, "result": {"status": "cancelled"}}
    task = await world.repo.get_task("t-cancel")
    assert task is not None and task["status"] == "cancelled"
