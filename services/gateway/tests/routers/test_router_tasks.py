"""routers/tasks.py: the parcel task dashboard (progress view) and retry/cancel (colis-svc)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Gateway


async def test_active_tasks_are_the_callers_running_ones_oldest_first(gw: Gateway) -> None:
    late = gw.add_task("alice", "processing", created_at=gw.now - timedelta(minutes=1))
    early = gw.add_task("alice", "pending", created_at=gw.now - timedelta(minutes=9))
    gw.add_task("alice", "completed", finished_at=gw.now)
    gw.add_task("bob", "processing")
    gw.add_job("alice")  # an import is no parcel task
    async with gw.client() as c:
        response = await c.get("/api/tasks", headers=gw.auth("alice"))
    assert response.status_code == 200
    assert [t["id"] for t in response.json()["items"]] == [early["_id"], late["_id"]]


async def test_failed_tasks_list_the_retryable_first(gw: Gateway) -> None:
    spent = gw.add_task("alice", "failed_final", retry_count=3, max_retries=3, updated_at=gw.now)
    retryable = gw.add_task(
        "alice",
        "failed",
        retry_count=0,
        max_retries=3,
        updated_at=gw.now - timedelta(minutes=5),
    )
    async with gw.client() as c:
        response = await c.get("/api/tasks", params={"state": "failed"}, headers=gw.auth())
    tasks = response.json()["items"]
    assert [t["id"] for t in tasks] == [retryable["_id"], spent["_id"]]
    assert [t["can_retry"] for t in tasks] == [True, False]


async def test_an_admin_may_retry_a_task_whose_retries_are_spent(gw: Gateway) -> None:
    spent = gw.add_task("alice", "failed_final", retry_count=3, max_retries=3)
    async with gw.client() as c:
        agent = await c.get(f"/api/tasks/{spent['_id']}", headers=gw.auth("alice"))
        admin = await c.get(f"/api/tasks/{spent['_id']}", headers=gw.auth("root"))
    assert agent.json()["can_retry"] is False
    assert admin.json()["can_retry"] is True


async def test_completed_tasks_are_those_of_the_last_day(gw: Gateway) -> None:
    gw.add_task("alice", "completed", finished_at=gw.now - timedelta(hours=30))
    today = gw.add_task("alice", "completed", finished_at=gw.now - timedelta(hours=1))
    async with gw.client() as c:
        response = await c.get("/api/tasks", params={"state": "completed"}, headers=gw.auth())
    assert [t["id"] for t in response.json()["items"]] == [today["_id"]]
    assert response.json()["items"][0]["can_cancel"] is False


async def test_a_running_task_gets_an_eta_from_the_latest_completions(gw: Gateway) -> None:
    for duration in (30.0, 50.0):
        gw.add_task("bob", "completed", duration_s=duration, finished_at=gw.now)
    running = gw.add_task("alice", "processing", started_at=gw.now - timedelta(seconds=10))
    async with gw.client() as c:
        response = await c.get(f"/api/tasks/{running['_id']}", headers=gw.auth())
    body: dict[str, Any] = response.json()
    assert 25 <= body["eta_s"] <= 30  # a 40 s average, 10 s of it spent
    assert body["estimated_completion_at"] is not None


async def test_stats_count_the_callers_tasks_of_today(gw: Gateway) -> None:
    gw.add_task("alice", "completed", created_at=gw.now)
    gw.add_task("alice", "failed_final", created_at=gw.now)
    gw.add_task("alice", "processing", created_at=gw.now)
    gw.add_task("bob", "completed", created_at=gw.now)
    async with gw.client() as c:
        mine = await c.get("/api/tasks/stats", headers=gw.auth("alice"))
        everyone = await c.get("/api/tasks/stats", headers=gw.auth("root"))
    assert mine.json() | {"success_rate": None} == {
        "total_today": 3,
        "completed_today": 1,
        "failed_today": 1,
        "active_now": 1,
        "success_rate": None,
        "scope": "alice",
    }
    assert mine.json()["success_rate"] == 33.3
    assert everyone.json()["total_today"] == 4 and everyone.json()["scope"] == "all"


async def test_an_import_or_another_agents_task_is_no_task_of_theirs(gw: Gateway) -> None:
    job = gw.add_job("alice")
    theirs = gw.add_task("bob")
    async with gw.client() as c:
        for task_id in (job["_id"], theirs["_id"]):
            response = await c.get(f"/api/tasks/{task_id}", headers=gw.auth("alice"))
            assert response.status_code == 404
            retry = await c.post(f"/api/tasks/{task_id}/retry", headers=gw.auth("alice"))
            assert retry.status_code == 404
    assert not gw.rpc.asked


async def test_a_failed_task_is_retried_through_colis_svc(gw: Gateway) -> None:
    failed = gw.add_task("alice", "failed", retry_count=0, max_retries=3)
    gw.rpc.answer = lambda key, body: {
        "ok": True,
        "result": {"status": "pending", "retry_count": 1},
    }
    async with gw.client() as c:
        response = await c.post(
            f"/api/tasks/{failed['_id']}/retry",
            json={"colis_data": {"poids": "9.5"}},
            headers=gw.auth(),
        )
    assert response.status_code == 202, response.text
    assert response.json() == {"task_id": failed["_id"], "status": "pending", "retry_count": 1}
    [(routing_key, command)] = gw.rpc.asked
    assert routing_key == "colis.retry"
    assert command["edits"] == {"poids": "9.5"} and command["user_id"] == "alice"


async def test_only_a_failed_task_is_retried_and_only_an_admin_forces(gw: Gateway) -> None:
    running = gw.add_task("alice", "processing")
    failed = gw.add_task("alice", "failed", retry_count=0, max_retries=3)
    async with gw.client() as c:
        not_failed = await c.post(f"/api/tasks/{running['_id']}/retry", headers=gw.auth())
        forced = await c.post(
            f"/api/tasks/{failed['_id']}/retry", json={"force": True}, headers=gw.auth()
        )
    assert not_failed.status_code == 409
    assert forced.status_code == 403
    assert not gw.rpc.asked


async def test_a_completed_task_cannot_be_cancelled(gw: Gateway) -> None:
    done = gw.add_task("alice", "completed")
    running = gw.add_task("alice", "processing", lot_id="L1")
    gw.rpc.answer = lambda key, body: {"ok": True, "result": {"status": "cancel_requested"}}
    async with gw.client() as c:
        refused = await c.post(f"/api/tasks/{done['_id']}/cancel", headers=gw.auth())
        accepted = await c.post(f"/api/tasks/{running['_id']}/cancel", headers=gw.auth())
    assert refused.status_code == 409
    assert refused.json()["detail"] == "Impossible d'annuler une tâche terminée."
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "cancel_requested"
    [(routing_key, command)] = gw.rpc.asked
    assert routing_key == "colis.cancel" and command["operation"] == "create"


async def test_colis_svc_refusing_a_retry_is_its_status_and_message(gw: Gateway) -> None:
    failed = gw.add_task("alice", "failed", retry_count=0, max_retries=3)
    gw.rpc.answer = lambda key, body: {"ok": False, "status": 409, "detail": "Déjà relancée."}
    async with gw.client() as c:
        response = await c.post(f"/api/tasks/{failed['_id']}/retry", headers=gw.auth())
    assert response.status_code == 409
    assert response.json() == {"detail": "Déjà relancée."}
