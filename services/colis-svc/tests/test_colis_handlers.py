"""colis-svc's subscribers with FastStream's TestRabbitBroker: messages in through the
broker's queues and bindings (in memory), events out. The store is the test store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.rabbit import RabbitBroker, TestRabbitBroker

from colis_svc import handlers
from jauge_shared.contracts import (
    CancelColisTask,
    ColisOperation,
    ColisRpcRequest,
    ColisStepChanged,
)
from jauge_shared.topology import (
    COLIS_ACCEPTED,
    COLIS_CONTROL,
    COLIS_RPC,
    COLIS_TASKS,
    QUEUES_BY_SERVICE,
    RK,
)

if TYPE_CHECKING:  # the world of conftest.py
    from conftest import World


def broker_for(world: World) -> RabbitBroker:
    broker = RabbitBroker()
    handlers.register(broker, world.settings, world.service, world.republish)
    return broker


async def ask(client: RabbitBroker, body: dict[str, Any], routing_key: str) -> Any:
    if routing_key == RK.COLIS_RPC:
        answer = await client.request(body, exchange=COLIS_RPC.exchange, routing_key=routing_key)
    else:
        # the in-memory broker binds a queue by its first routing key only (the real one
        # by all of them, declare_topology); the handler reads the body's `type`
        answer = await client.request(
            body, exchange=COLIS_CONTROL.exchange, routing_key=COLIS_CONTROL.routing_keys[0]
        )
    return await answer.decode()


async def test_a_creation_command_on_the_tasks_queue_runs_the_pipeline(world: World) -> None:
    lot_id = await world.lot()
    command = world.create("t-h1", lot_id)
    async with TestRabbitBroker(broker_for(world)) as client:
        await client.publish(
            command.model_dump(mode="json"),
            exchange=COLIS_TASKS.exchange,
            routing_key=RK.COLIS_CREATE,
        )
    assert world.steps("t-h1")[-1] == "completed"
    first = next(e for e in world.events if isinstance(e, ColisStepChanged))
    # what may be done is said by colis-svc, with the summary it writes for every frame
    assert (first.can_cancel, first.can_retry) == (True, False)
    assert first.summary["poids"] == "7,5 kg"
    assert "colis.created" in [e.type for e in world.events]


async def test_the_task_is_announced_on_receipt_by_colis_svc_alone(world: World) -> None:
    """colis-svc alone produces colis.step_changed: the first frame (seq 0, pending) is
    published as the command arrives on `colis-svc.accepted`, before a worker runs it,
    with the summary and actions of every later frame (the gateway published it before,
    as a second producer of the event)."""
    assert COLIS_ACCEPTED in QUEUES_BY_SERVICE["colis-svc"]
    assert set(COLIS_ACCEPTED.routing_keys) == set(COLIS_TASKS.routing_keys)
    lot_id = await world.lot()
    command = world.create("t-h0", lot_id)
    await world.service.pipeline.accept(command)
    await world.service.pipeline.accept(command)  # delivered again: the same frame
    first, again = [e for e in world.events if isinstance(e, ColisStepChanged)]
    assert (first.seq, first.status, first.percent, first.producer) == (
        0,
        "pending",
        0,
        "colis-svc",
    )
    assert first.summary["poids"] == "7,5 kg"
    assert (first.can_cancel, first.can_retry) == (True, False)
    assert again.event_id == first.event_id  # progress-svc sees a duplicate

    await world.service.pipeline.run_task(command)  # the worker: seq 1 onwards
    assert [e.seq for e in world.events if isinstance(e, ColisStepChanged)][2] == 1
    before = len(world.events)
    await world.service.pipeline.accept(command)  # late: the task has moved on
    assert len(world.events) == before


async def test_rpc_requests_are_answered_by_their_typed_model(world: World) -> None:
    lot_id = await world.lot()
    async with TestRabbitBroker(broker_for(world)) as client:
        clients = await ask(client, {"method": "list_clients"}, RK.COLIS_RPC)
        lot = await ask(
            client,
            ColisRpcRequest(method="get_lot", params={"lot_id": lot_id}).model_dump(),
            RK.COLIS_RPC,
        )
        unknown = await ask(client, {"method": "drop_everything"}, RK.COLIS_RPC)
        extra = await ask(
            client, {"method": "get_lot", "params": {"lot_id": lot_id, "x": 1}}, RK.COLIS_RPC
        )
        missing = await ask(client, {"method": "get_lot"}, RK.COLIS_RPC)
        absent = await ask(
            client, {"method": "get_lot", "params": {"lot_id": "nope"}}, RK.COLIS_RPC
        )
    assert clients["ok"] and {"cli-demo-1"} <= {c["id"] for c in clients["result"]}
    assert lot["ok"] and lot["result"]["id"] == lot_id
    assert unknown == {"ok": False, "status": 400, "detail": "Méthode inconnue : drop_everything."}
    assert (extra["status"], missing["status"]) == (400, 400)
    assert "Paramètres invalides" in extra["detail"]
    assert absent == {"ok": False, "status": 404, "detail": "Lot introuvable."}


async def test_a_cancel_on_the_control_queue_answers_and_announces(world: World) -> None:
    lot_id = await world.lot()
    cancel = CancelColisTask(
        producer="test",
        task_id="t-h2",
        user_id="alice",
        lot_id=lot_id,
        operation=ColisOperation.CREATE,
    )
    async with TestRabbitBroker(broker_for(world)) as client:
        answer = await ask(client, cancel.model_dump(mode="json"), RK.COLIS_CANCEL)
        # its command arrives after the cancel: the worker cancels it on arrival
        await client.publish(
            world.create("t-h2", lot_id).model_dump(mode="json"),
            exchange=COLIS_TASKS.exchange,
            routing_key=RK.COLIS_CREATE,
        )
    assert answer == {"ok": True, "result": {"status": "cancelled"}}
    assert world.steps("t-h2")[0] == "cancelled"
    assert await world.repo.get_colis("t-h2") is None
