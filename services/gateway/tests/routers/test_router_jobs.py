"""routers/jobs.py: the jobs the caller may see, from the progress view."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Gateway


async def test_an_agent_lists_only_their_own_jobs_newest_first(gw: Gateway) -> None:
    older = gw.add_job("alice", created_at=gw.now - timedelta(minutes=5))
    newer = gw.add_job("alice", created_at=gw.now - timedelta(minutes=1))
    gw.add_job("bob")
    async with gw.client() as c:
        response = await c.get("/api/jobs", headers=gw.auth("alice"))
    assert response.status_code == 200
    assert [j["id"] for j in response.json()["items"]] == [newer["_id"], older["_id"]]
    assert response.json()["next_cursor"] is None


async def test_an_admin_lists_everyones_jobs_filtered_by_kind_and_status(gw: Gateway) -> None:
    gw.add_job("alice", kind="import.edi", status="completed")
    wanted = gw.add_job("bob", kind="import.edi", status="completed")
    gw.add_job("bob", kind="import.bbgr_monthly", status="completed")
    gw.add_job("bob", kind="import.edi", status="running")
    async with gw.client() as c:
        response = await c.get(
            "/api/jobs",
            params={"kind": "import.edi", "status": "completed", "limit": 10},
            headers=gw.auth("root"),
        )
    ids = [j["id"] for j in response.json()["items"]]
    assert len(ids) == 2 and wanted["_id"] in ids


async def test_since_keeps_the_jobs_updated_after_it(gw: Gateway) -> None:
    gw.add_job("alice", updated_at=gw.now - timedelta(hours=2))
    recent = gw.add_job("alice", updated_at=gw.now - timedelta(minutes=1))
    since = (gw.now - timedelta(hours=1)).isoformat()
    async with gw.client() as c:
        response = await c.get("/api/jobs", params={"since": since}, headers=gw.auth())
    assert [j["id"] for j in response.json()["items"]] == [recent["_id"]]


async def test_one_job_is_shown_by_its_public_id(gw: Gateway) -> None:
    job = gw.add_job("alice", processed=3, total=10)
    async with gw.client() as c:
        response = await c.get(f"/api/jobs/{job['_id']}", headers=gw.auth())
    body: dict[str, Any] = response.json()
    assert response.status_code == 200
    assert body["id"] == job["_id"] and "_id" not in body
    assert (body["processed"], body["total"]) == (3, 10)


async def test_another_agents_job_is_a_404_like_a_missing_one(gw: Gateway) -> None:
    theirs = gw.add_job("bob")
    async with gw.client() as c:
        hidden = await c.get(f"/api/jobs/{theirs['_id']}", headers=gw.auth("alice"))
        missing = await c.get("/api/jobs/nothing-here", headers=gw.auth("alice"))
        seen_by_admin = await c.get(f"/api/jobs/{theirs['_id']}", headers=gw.auth("root"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json() == {"detail": "Tâche introuvable."}
    assert seen_by_admin.status_code == 200


async def test_another_agents_job_cannot_be_streamed(gw: Gateway) -> None:
    theirs = gw.add_job("bob")
    async with gw.client() as c:
        response = await c.get(f"/api/jobs/{theirs['_id']}/stream", headers=gw.auth("alice"))
    assert response.status_code == 404
    assert not gw.hub.connections  # nothing was subscribed for it


async def test_jobs_need_a_session(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.get("/api/jobs")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("Authentification requise")
