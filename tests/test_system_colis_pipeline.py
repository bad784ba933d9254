"""Parcel tasks on the real broker and store (issue 4, point 8), on one shared stack:
progress-svc, two colis-svc replicas and the gateway, with fast retries and the test
hooks on (`[test:...]` directives in a parcel's description hold or break one task).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
from stack import Stack, add_user
from system_colis_support import (
    FAST,
    FORM,
    TERMINAL,
    Api,
    SharedStack,
    expected_price,
    photo_bytes,
    shared_environment,
    stored_images,
    uploads,
)

pytestmark = pytest.mark.system

STAGES = [
    "processing",
    "validation",
    "image_uploading",
    "creation",
    "price_calculating",
    "notification_sending",
]


@pytest.fixture(scope="module")
def colis(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    tmp = tmp_path_factory.mktemp("colis")
    env, remove = shared_environment(servers, tmp)
    env.update(FAST, JAUGE_TEST_HOOKS="true")
    stack = Stack(env=env, log_dir=tmp / "logs", free_ports=True)
    try:
        for name in ("progress-svc", "colis-svc", "colis-svc", "gateway"):
            stack.start(name)
        stack.wait_ready(timeout_s=120)
        for user, role in (("alice", "agent"), ("bob", "agent"), ("root", "admin")):
            add_user(env, user, role, f"{user}-password")
        yield SharedStack(stack, env)
    finally:
        stack.stop_all()
        remove()


def random_form(rng: random.Random) -> dict[str, str]:
    return {
        **FORM,
        "client_id": rng.choice(["cli-demo-1", "cli-demo-2", "cli-demo-3"]),
        "type_transport": rng.choice(["cargo", "express", "bateau"]),
        "longueur": str(rng.randint(5, 150)),
        "largeur": str(rng.randint(5, 120)),
        "hauteur": f"{rng.randint(5, 100)}.{rng.randint(0, 9)}",
        "poids": f"{rng.randint(0, 80)}.{rng.randint(1, 999):03d}",
    }


@pytest.mark.parametrize(
    "count",
    [30, pytest.param(100, marks=pytest.mark.slow, id="100")],
)
async def test_parcels_created_at_once_all_complete_with_unique_numbers_and_exact_prices(
    colis: SharedStack, count: int
) -> None:
    """The issue asks for 100; the default run sends 30 (this 2-core machine is shared),
    `-m slow` sends the 100."""
    alice = await Api.as_user(colis.gateway, "alice")
    try:
        lot = await alice.lot("cargo")
        rng = random.Random(count)
        forms = [random_form(rng) for _ in range(count)]
        small_photo = photo_bytes(640, 480, 80)
        responses = await asyncio.gather(
            *(
                alice.create_colis(lot["id"], form, small_photo if i % 10 == 0 else None)
                for i, form in enumerate(forms)
            )
        )
        assert [r.status_code for r in responses] == [202] * count, responses[0].text
        by_task = {r.json()["task_id"]: form for r, form in zip(responses, forms, strict=True)}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            done = (
                await alice.http.get("/api/tasks", params={"state": "completed", "limit": 500})
            ).json()["items"]
            if len({t["id"] for t in done} & set(by_task)) == count:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"only {len(done)} of {count} tasks completed")
        parcels = (await alice.http.get(f"/api/lots/{lot['id']}/colis")).json()
        assert len(parcels) == count
        assert len({p["numero_suivi"] for p in parcels}) == count
        for parcel in parcels:
            assert re.fullmatch(r"TS\d{8}-[0-9A-HJKMNP-TV-Z]{8}", parcel["numero_suivi"])
            assert parcel["prix"] == expected_price(by_task[parcel["id"]]), parcel
        assert sum(1 for p in parcels if p["image_url"]) == count // 10
        stats = (await alice.http.get("/api/tasks/stats")).json()
        assert stats["completed_today"] >= count
    finally:
        await alice.close()


async def test_50_lots_created_at_once_by_two_replicas_have_unique_numbers(
    colis: SharedStack,
) -> None:
    alice = await Api.as_user(colis.gateway, "alice")
    try:
        lots = await asyncio.gather(*(alice.lot("express") for _ in range(50)))
        numbers = [lot["numero_lot"] for lot in lots]
        assert len(set(numbers)) == 50, sorted(numbers)
        assert all(re.fullmatch(r"EXPRESS-\d{8}\d{3}", n) for n in numbers)
        listed = (await alice.http.get("/api/lots", params={"limit": 500})).json()
        assert {lot["id"] for lot in lots} <= {lot["id"] for lot in listed["items"]}
    finally:
        await alice.close()


async def test_a_transient_failure_is_retried_with_backoff_and_succeeds(colis: SharedStack) -> None:
    alice = await Api.as_user(colis.gateway, "alice")
    try:
        lot = await alice.lot("bateau")
        form = {**FORM, "description": "[test:fail=price_calculating:transient*1]"}
        task_id = (await alice.create_colis(lot["id"], form)).json()["task_id"]
        task = await alice.wait(task_id)
        assert task["step_status"] == "completed", task
        assert task["retry_count"] == 1
        assert any("Panne simulée" in (e["error"] or "") for e in task["errors"]), task
        parcel = (await alice.http.get(f"/api/colis/{task['colis_id']}")).json()
        assert parcel["prix"] == expected_price(form)

        # retries spent: failed_final, the agent can no longer retry, an admin can
        form = {**FORM, "description": "[test:fail=creation:transient*9]"}
        task_id = (await alice.create_colis(lot["id"], form)).json()["task_id"]
        task = await alice.wait(task_id)
        assert (task["step_status"], task["retry_count"]) == ("failed_final", 3), task
        assert task["can_retry"] is False
        refused = await alice.http.post(f"/api/tasks/{task_id}/retry", json={})
        assert refused.status_code == 409, refused.text
        forced = await alice.http.post(f"/api/tasks/{task_id}/retry", json={"force": True})
        assert forced.status_code == 403
        root = await Api.as_user(colis.gateway, "root")
        try:
            forced = await root.http.post(f"/api/tasks/{task_id}/retry", json={"force": True})
            assert forced.status_code == 202, forced.text
            assert forced.json()["retry_count"] == 4
        finally:
            await root.close()
    finally:
        await alice.close()


async def test_a_permanent_failure_stops_at_once_and_a_corrected_retry_completes(
    colis: SharedStack,
) -> None:
    alice = await Api.as_user(colis.gateway, "alice")
    bob = await Api.as_user(colis.gateway, "bob")
    try:
        lot = await alice.lot("cargo")
        form = {**FORM, "client_id": "cli-inconnu"}
        task_id = (await alice.create_colis(lot["id"], form)).json()["task_id"]
        task = await alice.wait(task_id)
        assert task["step_status"] == "failed_final", task
        assert task["retry_count"] == 0 and task["next_retry_at"] is None
        assert task["message"] == "Client inconnu : cli-inconnu."
        assert len(task["errors"]) == 1 and task["can_retry"] is True
        failed = (await alice.http.get("/api/tasks", params={"state": "failed"})).json()["items"]
        assert task_id in [t["id"] for t in failed]
        missing = await alice.http.get(f"/api/colis/{task_id}")
        assert missing.status_code == 404  # no parcel

        assert (await bob.http.post(f"/api/tasks/{task_id}/retry")).status_code == 404
        bad = await alice.http.post(
            f"/api/tasks/{task_id}/retry", json={"colis_data": {"poids": "-3"}}
        )
        assert bad.status_code == 422
        retried = await alice.http.post(
            f"/api/tasks/{task_id}/retry", json={"colis_data": {"client_id": "cli-demo-2"}}
        )
        assert retried.status_code == 202, retried.text
        task = await alice.wait(
            task_id, lambda t: t["retry_count"] == 1 and t["step_status"] in TERMINAL
        )
        assert task["step_status"] == "completed", task
        parcel = (await alice.http.get(f"/api/colis/{task_id}")).json()
        assert parcel["client_id"] == "cli-demo-2"
        assert (await alice.http.post(f"/api/tasks/{task_id}/cancel")).status_code == 409
        assert (await alice.http.post(f"/api/tasks/{task_id}/retry")).status_code == 409

        # a closed lot refuses new parcels at once
        closed = await alice.http.post(f"/api/lots/{lot['id']}/close")
        assert closed.status_code == 200 and closed.json()["statut"] == "ferme"
        refused = await alice.create_colis(lot["id"], FORM)
        assert refused.status_code == 409 and "fermé" in refused.json()["detail"]
        invalid = await alice.create_colis(lot["id"], {**FORM, "poids": "lourd"})
        assert invalid.status_code == 422
    finally:
        await alice.close()
        await bob.close()


async def test_cancel_at_each_stage_leaves_no_parcel_and_no_image(colis: SharedStack) -> None:
    alice = await Api.as_user(colis.gateway, "alice")
    try:
        lot = await alice.lot("cargo")
        photo = photo_bytes(800, 600, 80)

        async def cancel_at(stage: str) -> dict[str, Any]:
            form = {**FORM, "description": "[test:delay=2.0]"}
            task_id = (await alice.create_colis(lot["id"], form, photo)).json()["task_id"]
            await alice.wait(task_id, lambda t: t["step_status"] == stage, timeout_s=120)
            answer = await alice.http.post(f"/api/tasks/{task_id}/cancel")
            if answer.status_code == 409 and stage == "notification_sending":
                # the worker announced the parcel first (the point of no return): the
                # answer says so, and the task completes (docs/colis.md, "Cancel")
                assert "Trop tard" in answer.json()["detail"]
                task = await alice.wait(task_id, timeout_s=120)
                assert task["step_status"] == "completed"
                return {**task, "step_status": "cancelled", "late": True}
            assert answer.status_code == 202, (stage, answer.text)
            assert answer.json()["status"] == "cancel_requested"
            return await alice.wait(task_id, timeout_s=120)

        finals = await asyncio.gather(*(cancel_at(stage) for stage in STAGES))
        assert [t["step_status"] for t in finals] == ["cancelled"] * len(STAGES), finals
        late = {t["id"] for t in finals if t.get("late")}
        parcels = (await alice.http.get(f"/api/lots/{lot['id']}/colis")).json()
        assert {p["id"] for p in parcels} == late
        finals = [t for t in finals if not t.get("late")]
        images = stored_images(colis.env)
        for task in finals:
            assert not [name for name in images if name.startswith(task["id"])]
        assert uploads(colis.env) == []
    finally:
        await alice.close()


async def test_an_unparsable_command_goes_to_the_dead_letter_queue_with_its_reason(
    colis: SharedStack,
) -> None:
    connection = await aio_pika.connect(colis.env["JAUGE_AMQP_URL"])
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        commands = await channel.get_exchange("jauge.commands")
        body = json.dumps({"type": "colis.create", "task_id": "t-bad", "producer": "test"})
        await commands.publish(
            aio_pika.Message(body.encode(), content_type="application/json"),
            routing_key="colis.create",
        )
        dlq = await channel.declare_queue("colis-svc.tasks.dlq", passive=True)
        deadline = time.monotonic() + 20
        message = None
        while message is None and time.monotonic() < deadline:
            message = await dlq.get(fail=False)
            if message is None:
                await asyncio.sleep(0.2)
        assert message is not None
        await message.ack()
        reason = str(message.headers["x-jauge-dead-letter-reason"])
        assert "schema validation" in reason and "colis_data" in reason, reason


async def test_one_parcel_with_a_photo_end_to_end_and_only_for_its_owner(
    colis: SharedStack,
) -> None:
    alice = await Api.as_user(colis.gateway, "alice")
    bob = await Api.as_user(colis.gateway, "bob")
    try:
        lot = await alice.lot("cargo")
        assert lot["numero_lot"].startswith("CARGO-") and lot["statut"] == "ouvert"
        response = await alice.create_colis(lot["id"], photo=photo_bytes())
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        task = await alice.wait(task_id)
        assert task["step_status"] == "completed", task
        assert task["percent"] == 100 and task["numero_suivi"]
        assert await bob.task(task_id) is None  # another agent's task: 404
        assert (await bob.http.post(f"/api/tasks/{task_id}/cancel")).status_code == 404

        parcel = (await alice.http.get(f"/api/colis/{task['colis_id']}")).json()
        assert parcel["prix"] == expected_price(FORM) and parcel["devise"] == "XOF"
        assert parcel["numero_suivi"] == task["numero_suivi"]
        image = await alice.http.get(parcel["image_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        thumb = await alice.http.get(parcel["thumbnail_url"])
        assert thumb.status_code == 200 and len(thumb.content) < len(image.content)
        assert set(stored_images(colis.env)) >= {
            f"{task_id}.jpg",
            f"{task_id}.thumb.jpg",
        }
        assert uploads(colis.env) == []  # taken over by colis-svc, then removed
        tariff = (await alice.http.get("/api/tariffs")).json()
        assert tariff["devise"] == "XOF" and tariff["tarifs"]["cargo"]["par_kg"] == "10000"
        clients = (await alice.http.get("/api/clients")).json()
        assert {"cli-demo-1", "cli-demo-2", "cli-demo-3"} <= {c["id"] for c in clients}
        new = await alice.http.post("/api/clients", json={"name": "Fatou Sow", "phone": "77"})
        assert new.status_code == 201 and new.json()["name"] == "Fatou Sow"

        # an update: new weight, the price follows
        changed = await alice.http.patch(f"/api/colis/{task_id}", data={"poids": "40"})
        assert changed.status_code == 202, changed.text
        update = await alice.wait(changed.json()["task_id"])
        assert update["step_status"] == "completed" and update["kind"] == "colis.update"
        parcel = (await alice.http.get(f"/api/colis/{task_id}")).json()
        assert parcel["poids"] == "40" and parcel["prix"] == expected_price({**FORM, "poids": "40"})
    finally:
        await alice.close()
        await bob.close()
