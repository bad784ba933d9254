"""colis-svc's service and sweeper on the real store, without the broker: what is
published is collected in lists instead."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from PIL import Image

from jauge_shared.contracts import (
    AnnounceColisTask,
    CancelColisTask,
    ColisOperation,
    ColisStepChanged,
    ColisTaskStalled,
    CreateColis,
    RetryColisTask,
    TaskStatus,
)


async def test_lot_numbers_stay_unique_when_many_are_created_at_once(world: World) -> None:
    lots = await asyncio.gather(*(world.ask("create_lot", type_lot="bateau") for _ in range(30)))
    numbers = [lot["numero_lot"] for lot in lots]
    assert len(set(numbers)) == 30
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert sorted(numbers) == [f"BATEAU-{day}{n:03d}" for n in range(1, 31)]


if TYPE_CHECKING:  # the world of conftest.py
    from conftest import World


async def test_a_creation_runs_every_step_and_a_redelivery_makes_no_second_parcel(
    world: World,
) -> None:
    lot_id = await world.lot()
    command = world.create("t1", lot_id)
    await world.service.pipeline.run_task(command)
    assert world.steps("t1") == [
        "processing",
        "validation",
        "image_uploading",
        "creation",
        "price_calculating",
        "notification_sending",
        "completed",
    ]
    seqs = [e.seq for e in world.events if isinstance(e, ColisStepChanged)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    colis = await world.repo.get_colis("t1")
    assert colis is not None and colis["prix"] == "120000"  # 12 kg volumetric × 10 000
    types = [e.type for e in world.events]
    assert "notification.requested" in types and "colis.created" in types

    # the same command again (redelivered), and a crash-resumed run: still one parcel
    await world.service.pipeline.run_task(command)
    await world.repo.tasks.update_one({"_id": "t1"}, {"$set": {"status": "creation"}})
    await world.service.pipeline.run_task(command)
    assert await world.repo.colis.count_documents({"lot_id": lot_id}) == 1
    assert (await world.repo.get_task("t1") or {})["status"] == "completed"
    held = await world.repo.held_numbers.find_one({"_id": "t1"})
    assert held is not None and held["numero"] == (await world.repo.get_colis("t1") or {}).get(
        "numero_suivi"
    )
    assert await world.repo.tracking_numbers.count_documents({"colis_id": "t1"}) == 1


async def test_racing_deliveries_of_a_creation_reserve_one_tracking_number(world: World) -> None:
    repo, day = world.repo, datetime.now(UTC).date()
    numbers = await asyncio.gather(*(repo.reserve_tracking_number("c1", day) for _ in range(5)))
    assert len(set(numbers)) == 1
    assert await repo.reserve_tracking_number("c1", day) == numbers[0]  # a later redelivery
    # the losers gave their numbers back: the parcel's is the only one reserved for it
    reserved = [d["_id"] async for d in repo.tracking_numbers.find({"colis_id": "c1"})]
    assert reserved == [numbers[0]]

    await repo.delete_colis("c1")
    assert await repo.held_numbers.find_one({"_id": "c1"}) is None
    assert await repo.tracking_numbers.find_one({"_id": numbers[0]}) is None


async def test_a_parcel_numbered_before_the_claims_existed_frees_its_number(world: World) -> None:
    repo = world.repo
    await repo.tracking_numbers.insert_one({"_id": "TS-OLD", "colis_id": "c-old"})
    await repo.colis.insert_one({"_id": "c-old", "numero_suivi": "TS-OLD"})
    await repo.delete_colis("c-old")
    assert await repo.get_colis("c-old") is None
    assert await repo.tracking_numbers.find_one({"_id": "TS-OLD"}) is None


async def test_the_sweeper_finds_open_tasks_by_id_and_forgets_closed_ones(world: World) -> None:
    lot_id = await world.lot()
    await world.service.pipeline.run_task(world.create("t-done", lot_id))
    await world.service.pipeline.load_or_create(world.create("t-open", lot_id))
    repo = world.repo
    assert [d["_id"] async for d in repo.open_tasks.find({})] == ["t-open"]  # closed: gone
    assert [d["_id"] for d in await repo.open_tasks_in(["pending"])] == ["t-open"]
    assert await repo.open_tasks_in(["completed"]) == []

    # a task stored before `open_tasks` existed, and an entry left by a crash
    await repo.tasks.insert_one({"_id": "t-old", "status": "creation", "upload_id": "u1"})
    await repo.tasks.insert_one({"_id": "t-old-done", "status": "completed"})
    await repo.open_tasks.insert_one({"_id": "t-done"})
    await repo.list_open_tasks()
    assert [d["_id"] for d in await repo.open_tasks_in(["creation"])] == ["t-old"]
    assert await repo.live_upload_ids(["creation", "pending"]) == {"u1"}
    assert sorted([d["_id"] async for d in repo.open_tasks.find({})]) == ["t-old", "t-open"]


async def test_expired_tasks_are_looked_for_once_an_hour_not_at_every_sweep(
    world: World,
) -> None:
    lot_id = await world.lot()
    for task_id in ("t-a", "t-b"):
        await world.service.pipeline.run_task(world.create(task_id, lot_id))
    long_ago = datetime.now(UTC) - timedelta(days=60)
    await world.repo.tasks.update_one({"_id": "t-a"}, {"$set": {"finished_at": long_ago}})
    assert (await world.sweeper.sweep())["removed_tasks"] == 1
    await world.repo.tasks.update_one({"_id": "t-b"}, {"$set": {"finished_at": long_ago}})
    assert (await world.sweeper.sweep())["removed_tasks"] == 0  # the next hour's sweep
    assert await world.repo.get_task("t-b") is not None


async def test_a_task_is_deleted_with_every_marker_it_can_hold(world: World) -> None:
    repo, now = world.repo, datetime.now(UTC)
    # retried once from seq 3, stalled at 5, then retry 2 marked at seq 9 but never
    # recorded (the replica died): the stored state says retry_count 1, seq 9
    decisions = ["cancel", "fate:0", "fate:1", "retry:1:3", "stalled:5", "retry:2:9"]
    for decision in decisions:
        assert await repo.mark("t-gone", decision, now)
    assert await repo.mark("t-kept", "fate:0", now)
    await repo.tasks.insert_one({"_id": "t-gone", "retry_count": 1, "seq": 9})

    await repo.delete_task({"_id": "t-gone", "retry_count": 1, "seq": 9})

    assert await repo.get_task("t-gone") is None
    assert [d["_id"] async for d in repo.markers.find({})] == ["t-kept:fate:0"]


async def test_the_photo_is_processed_and_its_upload_deleted(world: World) -> None:
    lot_id = await world.lot()
    buffer = io.BytesIO()
    Image.new("RGB", (3200, 2000), "red").save(buffer, "JPEG")
    upload_id = "a" * 32
    await world.service.tasks.files.uploads.put(upload_id, buffer.getvalue())
    await world.service.pipeline.run_task(world.create("t-photo", lot_id, upload_id=upload_id))
    images = world.service.tasks.files.images
    stored = await images.read("t-photo.jpg")
    assert stored is not None
    with Image.open(io.BytesIO(stored)) as image:
        assert max(image.size) == 1600 and image.format == "JPEG"
    assert await images.exists("t-photo.thumb.jpg")
    assert not await world.service.tasks.files.uploads.exists(upload_id)


async def test_an_unreadable_photo_fails_for_good_at_once(world: World) -> None:
    lot_id = await world.lot()
    upload_id = "b" * 32
    await world.service.tasks.files.uploads.put(upload_id, b"\xff\xd8\xffnot really a jpeg")
    await world.service.pipeline.run_task(world.create("t-bad", lot_id, upload_id=upload_id))
    task = await world.repo.get_task("t-bad")
    assert task is not None and task["status"] == "failed_final"
    assert task["error"].startswith("Photo illisible") and task["retry_count"] == 0


async def test_a_pending_task_is_cancelled_at_once_and_never_runs(world: World) -> None:
    lot_id = await world.lot()
    command = world.create("t-pending", lot_id)
    await world.service.pipeline.load_or_create(command)  # stored, its worker not there yet
    cancel = CancelColisTask(producer="test", job_id="t-pending", task_id="t-pending", user_id="a")
    reply = await world.service.control.cancel(cancel)
    assert reply == {"ok": True, "result": {"status": "cancelled"}}
    await world.service.pipeline.run_task(command)
    # the command arriving after the cancel runs nothing: it only says `cancelled` again
    steps = [e for e in world.events if isinstance(e, ColisStepChanged)]
    assert [(e.status.value, e.reannounced) for e in steps] == [
        ("cancelled", False),
        ("cancelled", True),
    ]
    assert steps[0].event_id == steps[1].event_id
    assert await world.repo.get_colis("t-pending") is None
    again = await world.service.control.cancel(cancel)
    assert again["ok"] is False and again["status"] == 409


async def test_a_task_cancelled_before_colis_svc_saw_it_is_cancelled_on_arrival(
    world: World,
) -> None:
    lot_id = await world.lot()
    cancel = CancelColisTask(
        producer="test",
        job_id="t-early",
        task_id="t-early",
        user_id="alice",
        lot_id=lot_id,
        operation=ColisOperation.CREATE,
    )
    assert (await world.service.control.cancel(cancel))["result"]["status"] == "cancelled"
    await world.service.pipeline.run_task(world.create("t-early", lot_id))
    assert set(world.steps("t-early")) == {"cancelled"}
    assert await world.repo.get_colis("t-early") is None


async def test_a_permanent_failure_is_final_then_retried_by_hand_with_a_corrected_client(
    world: World,
) -> None:
    lot_id = await world.lot()
    bad = world.data.model_copy(update={"client_id": "cli-nobody"})
    await world.service.pipeline.run_task(world.create("t-perm", lot_id, bad))
    task = await world.repo.get_task("t-perm")
    assert task is not None and task["status"] == "failed_final"
    assert task["error"] == "Client inconnu : cli-nobody." and task["retry_count"] == 0

    def retry(**edits: Any) -> RetryColisTask:
        return RetryColisTask(
            producer="test", job_id="t-perm", task_id="t-perm", user_id="alice", edits=edits
        )

    refused = await world.service.control.retry(retry(poids="-1"), world.republish)
    assert refused["status"] == 422 and "poids" in refused["detail"]
    accepted = await world.service.control.retry(retry(client_id="cli-demo-3"), world.republish)
    assert accepted["ok"] and accepted["result"]["retry_count"] == 1
    (command,) = world.commands
    assert isinstance(command, CreateColis) and command.colis_data.client_id == "cli-demo-3"
    await world.service.pipeline.run_task(command)
    colis = await world.repo.get_colis("t-perm")
    assert colis is not None and colis["client_id"] == "cli-demo-3"
    done = await world.service.control.retry(retry(), world.republish)
    assert done["status"] == 409


async def test_the_sweeper_retries_due_tasks_requeues_stalled_ones_and_cleans_up(
    world: World,
) -> None:
    lot_id = await world.lot()
    await world.service.pipeline.load_or_create(world.create("t-stuck", lot_id))
    long_ago = datetime.now(UTC) - timedelta(minutes=11)
    await world.repo.tasks.update_one(
        {"_id": "t-stuck"},
        {"$set": {"status": "creation", "seq": 4, "run_started_at": long_ago}},
    )
    assert await world.sweeper.stalled() == 1
    assert await world.sweeper.stalled() == 0  # reported once
    (stalled,) = [e for e in world.events if isinstance(e, ColisTaskStalled)]
    assert stalled.action == "requeued" and stalled.status.value == "creation"
    assert (await world.repo.get_task("t-stuck") or {})["status"] == "failed_retry"
    assert await world.sweeper.retry_due() == 1
    (command,) = world.commands
    await world.service.pipeline.run_task(command)  # type: ignore[arg-type]
    assert (await world.repo.get_task("t-stuck") or {})["status"] == "completed"

    # finished long ago: removed; an upload nobody refers to: removed
    await world.repo.tasks.update_one(
        {"_id": "t-stuck"}, {"$set": {"finished_at": long_ago - timedelta(days=60)}}
    )
    uploads = world.service.tasks.files.uploads
    orphan = "c" * 32
    await uploads.put(orphan, b"x")
    await uploads.files.update_one(
        {"_id": orphan}, {"$set": {"uploadDate": datetime.now(UTC) - timedelta(days=2)}}
    )
    assert await world.sweeper.remove_old_tasks() == 1
    assert await world.repo.markers.count_documents({"task_id": "t-stuck"}) == 0
    assert await world.sweeper.remove_orphan_uploads() == 1
    assert not await uploads.exists(orphan)
    assert await world.repo.get_colis("t-stuck") is not None  # a completed parcel stays


async def test_a_redelivered_command_of_an_ended_task_announces_its_end_again(
    world: World,
) -> None:
    """The run stored `completed` and died before its colis.step_changed was confirmed:
    the command comes back, and the end is published with the same event id."""
    lot_id = await world.lot()
    command = world.create("t-end", lot_id)
    await world.service.pipeline.run_task(command)
    first = [e for e in world.events if isinstance(e, ColisStepChanged)][-1]
    assert first.status.value == "completed" and not first.reannounced
    world.events.clear()

    await world.service.pipeline.run_task(command)
    (again,) = world.events
    assert isinstance(again, ColisStepChanged)
    assert again.reannounced
    assert (again.event_id, again.seq, again.status) == (first.event_id, first.seq, first.status)


async def test_the_reconcilers_request_announces_the_stored_state(world: World) -> None:
    lot_id = await world.lot()
    await world.service.pipeline.run_task(world.create("t-ask", lot_id))
    last = [e for e in world.events if isinstance(e, ColisStepChanged)][-1]
    world.events.clear()
    await world.service.pipeline.announce(AnnounceColisTask(producer="test", job_id="t-ask"))
    (again,) = world.events
    assert isinstance(again, ColisStepChanged) and again.reannounced
    assert again.event_id == last.event_id
    # a task colis-svc has not seen yet (its command still queued): nothing to say
    world.events.clear()
    await world.service.pipeline.announce(AnnounceColisTask(producer="test", job_id="t-unknown"))
    assert world.events == []


async def test_cancelling_a_completed_task_is_refused_and_announces_the_end_again(
    world: World,
) -> None:
    lot_id = await world.lot()
    await world.service.pipeline.run_task(world.create("t-done", lot_id))
    world.events.clear()
    reply = await world.service.control.cancel(
        CancelColisTask(producer="test", job_id="t-done", task_id="t-done", user_id="alice")
    )
    assert reply["ok"] is False and reply["status"] == 409
    (again,) = world.events
    assert isinstance(again, ColisStepChanged) and again.status.value == "completed"


async def test_a_task_left_pending_without_its_command_is_found_stalled(world: World) -> None:
    """A relaunch that stored `pending` and died before publishing its command."""
    lot_id = await world.lot()
    await world.service.pipeline.run_task(world.create("t-lost", lot_id, data=world.data))
    await world.repo.tasks.update_one(
        {"_id": "t-lost"},
        {
            "$set": {
                "status": "pending",
                "run_started_at": None,
                "updated_at": datetime.now(UTC) - timedelta(seconds=120),
            }
        },
    )
    await world.repo.open_tasks.insert_one({"_id": "t-lost"})
    assert await world.sweeper.stalled() == 1
    assert (await world.repo.get_task("t-lost") or {})["status"] == "failed_retry"


async def test_a_failure_after_a_cancel_request_ends_cancelled_not_retried(world: World) -> None:
    from colis_svc.documents import state_from_doc
    from colis_svc.repository import CANCEL
    from colis_svc.runs import Run

    lot_id = await world.lot()
    doc = await world.service.pipeline.load_or_create(world.create("t-fc", lot_id))
    run = Run(doc=doc, state=state_from_doc(doc).advance(TaskStatus.PROCESSING))
    await world.repo.mark("t-fc", CANCEL, world.service.tasks.clock())  # what cancel records
    await world.service.tasks.fail(run, error="Panne")
    assert (await world.repo.get_task("t-fc") or {})["status"] == "cancelled"
    assert world.steps("t-fc")[-1] == "cancelled"
