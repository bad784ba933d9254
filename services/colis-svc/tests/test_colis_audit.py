"""The audit trail of lots and parcels (issue 15), on the real store: every change
recorded once with who, when and what, and each history read by `_id` only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from colis_svc import audit
from jauge_shared.contracts import (
    CancelColisTask,
    ColisData,
    ColisOperation,
    RetryColisTask,
    UpdateColis,
)

if TYPE_CHECKING:  # the world of conftest.py
    from conftest import World


def whats(page: dict[str, Any]) -> list[str]:
    return [e["what"] for e in page["entries"]]


async def test_lot_and_parcel_changes_are_recorded_once_with_who_when_and_what(
    world: World,
) -> None:
    started = datetime.now(UTC)
    lot = await world.ask("create_lot", type_lot="cargo", user_id="alice")
    lot_id = lot["id"]
    create = world.create("t-a1", lot_id)  # by alice
    await world.service.pipeline.run_task(create)
    await world.service.pipeline.run_task(create)  # redelivered: no second entry
    edited = ColisData.model_validate(
        {**world.data.model_dump(), "poids": "9", "description": "Fragile"}
    )
    update = UpdateColis(
        producer="test",
        task_id="t-a2",
        user_id="bob",
        lot_id=lot_id,
        colis_id="t-a1",
        colis_data=edited,
    )
    await world.service.pipeline.run_task(update)
    await world.ask("close_lot", lot_id=lot_id, user_id="root")
    await world.ask("close_lot", lot_id=lot_id, user_id="root")  # closed already: nothing

    history = await world.ask("colis_history", colis_id="t-a1")
    assert whats(history) == ["colis.updated", "colis.created"]
    updated, created = history["entries"]
    assert (created["who"], created["task_id"], created["lot_id"]) == ("alice", "t-a1", lot_id)
    numero = (await world.repo.get_colis("t-a1"))["numero_suivi"]  # type: ignore[index]
    assert created["changes"]["numero_suivi"] == [None, numero]
    assert created["changes"]["poids"] == [None, "7.5"]
    assert created["changes"]["client_name"] == [None, "Awa Diallo"]
    assert updated["who"] == "bob" and updated["task_id"] == "t-a2"
    assert updated["changes"] == {"poids": ["7.5", "9"], "description": ["", "Fragile"]}
    assert all(started <= e["at"] <= datetime.now(UTC) for e in history["entries"])
    assert history["next"] is None

    lot_history = await world.ask("lot_history", lot_id=lot_id)
    assert whats(lot_history) == ["lot.closed", "colis.updated", "colis.created", "lot.created"]
    closed, *_, opened = lot_history["entries"]
    assert closed["who"] == "root" and closed["changes"] == {"statut": ["ouvert", "ferme"]}
    assert opened["who"] == "alice" and opened["changes"]["type_lot"] == [None, "cargo"]
    everything = await world.ask("audit")
    assert whats(everything) == whats(lot_history)


async def test_cancel_and_retry_are_recorded_with_the_caller_and_the_corrections(
    world: World,
) -> None:
    lot_id = await world.lot()
    # a creation cancelled while its command is still queued: its parcel is its id
    queued = CancelColisTask(
        producer="test",
        task_id="t-q",
        user_id="alice",
        lot_id=lot_id,
        operation=ColisOperation.CREATE,
    )
    assert (await world.service.control.cancel(queued))["ok"]
    assert (await world.service.control.cancel(queued))["ok"]  # the same again: one entry
    (cancelled,) = (await world.ask("colis_history", colis_id="t-q"))["entries"]
    assert (cancelled["what"], cancelled["who"]) == ("task.cancelled", "alice")
    assert cancelled["changes"] == {"status": ["pending", "cancelled"]}

    # a task that failed for good, retried with a correction, then forced by an admin
    bad = ColisData.model_validate({**world.data.model_dump(), "client_id": "cli-inconnu"})
    await world.service.pipeline.run_task(world.create("t-r", lot_id, bad))
    refused = RetryColisTask(producer="test", task_id="t-r", user_id="alice", edits={"poids": "-1"})
    assert (await world.service.control.retry(refused, world.republish))["status"] == 422
    fixed = RetryColisTask(
        producer="test", task_id="t-r", user_id="alice", edits={"client_id": "cli-inconnu2"}
    )
    assert (await world.service.control.retry(fixed, world.republish))["ok"]
    await world.service.pipeline.run_task(world.commands[-1])  # type: ignore[arg-type]
    await world.repo.set_task_fields("t-r", retry_count=3)  # its retries spent
    forced = RetryColisTask(
        producer="test",
        task_id="t-r",
        user_id="root",
        force=True,
        edits={"client_id": "cli-demo-2"},
    )
    assert (await world.service.control.retry(forced, world.republish))["ok"]
    again = await world.service.control.retry(forced, world.republish)  # pending now: refused
    assert again["ok"] is False
    history = await world.ask("colis_history", colis_id="t-r")
    assert whats(history) == ["task.retry_forced", "task.retried"]
    forced_entry, retried = history["entries"]
    assert retried["who"] == "alice" and retried["changes"] == {
        "client_id": ["cli-inconnu", "cli-inconnu2"],
        "retry_count": [0, 1],
    }
    assert forced_entry["who"] == "root" and forced_entry["changes"] == {
        "client_id": ["cli-inconnu2", "cli-demo-2"],
        "retry_count": [3, 4],
    }
    # the relaunched task is cancelled by its agent: the parcel's history says so
    cancel = CancelColisTask(producer="test", task_id="t-r", user_id="alice")
    assert (await world.service.control.cancel(cancel))["ok"]
    latest = (await world.ask("colis_history", colis_id="t-r"))["entries"][0]
    assert latest["what"] == "task.cancelled" and latest["changes"]["status"][1] == "cancelled"


async def test_unknown_parcel_or_lot_is_a_404_and_bad_params_a_400(world: World) -> None:
    assert (await world.rpc("colis_history", {"colis_id": "nope"}))["status"] == 404
    assert (await world.rpc("lot_history", {"lot_id": "nope"}))["status"] == 404
    assert (await world.rpc("audit", {"colour": "red"}))["status"] == 400
    reply = await world.rpc("audit", {"limit": 5})
    assert reply == {"ok": True, "result": {"entries": [], "next": None}}


async def test_pages_go_back_in_time_and_concurrent_writers_lose_no_entry(world: World) -> None:
    log = world.service.tasks.audit
    ids = [f"e{i}" for i in range(40)]
    await asyncio.gather(*(log.record(i, "colis.updated", "alice", lot_id="L1") for i in ids))
    chain = audit.lot_chain("L1")
    # every link taken once, none skipped: 1..40
    links = await audit.gather_in_chunks(
        list(range(1, 42)), lambda n: log.links.find_one({"_id": f"{chain}:{n}"})
    )
    assert [link is not None for link in links] == [True] * 40 + [False]
    seen: list[str] = []
    before = None
    while True:
        page = await log.page(chain, limit=15, before=before)
        seen += [e["id"] for e in page["entries"]]
        before = page["next"]
        if before is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 40


async def test_an_entry_stored_but_not_listed_is_listed_by_the_redelivery(world: World) -> None:
    log = world.service.tasks.audit
    # a run that died between storing its entry and listing it in the chains
    await log.entries.insert_one(
        {"_id": "t-x:colis.created", "at": datetime.now(UTC), "what": "colis.created"}
    )
    assert await log.record("t-x:colis.created", "colis.created", "alice", colis_id="t-x")
    assert not await log.record("t-x:colis.created", "colis.created", "alice", colis_id="t-x")
    page = await log.page(audit.colis_chain("t-x"))
    assert [e["id"] for e in page["entries"]] == ["t-x:colis.created"]


async def test_a_retry_done_stays_done_when_its_entry_cannot_be_written(
    world: World, monkeypatch: Any
) -> None:
    """A redelivery would be refused as already retried: the answer must say it worked."""
    lot_id = await world.lot()
    bad = ColisData.model_validate({**world.data.model_dump(), "client_id": "cli-inconnu"})
    await world.service.pipeline.run_task(world.create("t-s", lot_id, bad))

    async def store_away(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("store away")

    monkeypatch.setattr(world.service.tasks.audit, "record", store_away)
    retry = RetryColisTask(producer="test", task_id="t-s", user_id="alice")
    reply = await world.service.control.retry(retry, world.republish)
    assert reply["ok"] and reply["result"]["retry_count"] == 1
    assert len(world.commands) == 1
