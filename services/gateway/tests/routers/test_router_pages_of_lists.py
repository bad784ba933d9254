"""Paged lists: `/api/jobs` and `/api/tasks` a page at a time (`cursor` in, `next_cursor`
out), read as ranges of progress-svc's list entries by `_id`, with their filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway import keyset
from gateway.list_pages import EXAMINED_PER_PAGE

if TYPE_CHECKING:
    from conftest import Gateway


async def every_page(gw: Gateway, path: str, user: str, **params: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    async with gw.client() as c:
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            body = (await c.get(path, params=query, headers=gw.auth(user))).json()
            assert len(body["items"]) <= params["limit"]
            pages.append([item["id"] for item in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages


async def test_jobs_come_a_page_at_a_time_each_once_even_with_equal_dates(gw: Gateway) -> None:
    same = gw.now - timedelta(minutes=3)
    made = [
        gw.add_job("alice", created_at=same if n % 2 else gw.now - timedelta(seconds=n))
        for n in range(7)
    ]
    gw.add_job("bob")
    pages = await every_page(gw, "/api/jobs", "alice", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(i for page in pages for i in page) == sorted(job["_id"] for job in made)
    # every page read is a range of `_id`s of alice's entries, the documents by `_id`
    assert all(set(q) == {"_id"} for q in gw.progress.queries)
    [*ranges] = [q["_id"] for q in gw.lists.queries]
    assert all(r["$gte"].startswith("jobs|all|alice|") for r in ranges)


async def test_every_read_of_a_page_is_by_id_or_a_range_of_ids(gw: Gateway) -> None:
    for n in range(4):
        gw.add_task("alice", "failed", updated_at=gw.now - timedelta(minutes=n))
        gw.add_task("alice", "completed", finished_at=gw.now - timedelta(minutes=n))
        gw.add_task("alice", "pending", created_at=gw.now - timedelta(minutes=n))
        gw.add_job("alice", kind="import.edi")
    reads = [
        ("/api/tasks", "alice", {"state": "failed"}),
        ("/api/tasks", "root", {"state": "completed"}),
        ("/api/tasks", "alice", {"state": "active", "lot": "L1"}),
        ("/api/jobs", "alice", {"kind": "import"}),
        ("/api/jobs", "root", {"kind": "import.edi"}),
        ("/api/jobs", "alice", {}),
        ("/api/jobs", "root", {}),
        ("/api/tasks/stats", "alice", {}),
    ]
    for path, user, params in reads:
        gw.progress.queries.clear()
        gw.lists.finds.clear()
        if path.endswith("stats"):
            async with gw.client() as c:
                assert (await c.get(path, headers=gw.auth(user))).status_code == 200
        else:
            pages = await every_page(gw, path, user, limit=2, **params)
            assert len(pages) >= 2 or "lot" in params
        assert all(set(q) == {"_id"} and isinstance(q["_id"], str) for q in gw.progress.queries)
        for query, sort in gw.lists.finds:
            assert set(query) == {"_id"} and set(query["_id"]) == {"$gte", "$lt"}
            assert [name for name, _ in sort] == ["_id"], (path, params, query, sort)


async def test_a_stale_entry_shows_nothing_and_a_moved_task_shows_once(gw: Gateway) -> None:
    task = gw.add_task("alice", "failed", updated_at=gw.now - timedelta(minutes=5))
    stale = next(k for k in list(gw.lists.docs) if k.startswith("tasks|failed|alice|"))
    # updated again, and a crash before its old entry was removed: two entries
    task["updated_at"] = gw.now
    gw.store(task)
    assert stale in gw.lists.docs
    # a completed task whose active entry was left behind
    done = gw.add_task("alice", "completed", finished_at=gw.now)
    gw.lists.add(
        {"_id": f"tasks|active|alice|{done['created_at']:%Y-%m-%dT%H:%M:%S.%fZ}|{done['_id']}"}
    )
    async with gw.client() as c:
        failed = (await c.get("/api/tasks?state=failed", headers=gw.auth())).json()
        active = (await c.get("/api/tasks?state=active", headers=gw.auth())).json()
        stats = (await c.get("/api/tasks/stats", headers=gw.auth())).json()
    assert [t["id"] for t in failed["items"]] == [task["_id"]]
    assert active["items"] == []
    assert stats["active_now"] == 0


async def test_a_rare_filter_ends_a_page_early_with_a_cursor(gw: Gateway) -> None:
    wanted = gw.add_task("alice", "failed", lot_id="RARE", updated_at=gw.now - timedelta(days=9))
    for n in range(EXAMINED_PER_PAGE + 5):
        gw.add_task("alice", "failed", lot_id="L1", updated_at=gw.now - timedelta(seconds=n))
    pages = await every_page(gw, "/api/tasks", "alice", state="failed", lot="RARE", limit=10)
    assert pages[0] == [] and [i for page in pages for i in page] == [wanted["_id"]]


async def test_the_imports_page_filters_by_family_status_day_and_for_an_admin_who(
    gw: Gateway,
) -> None:
    yesterday = gw.now - timedelta(days=1)
    alices = gw.add_job("alice", kind="import.edi", status="failed", created_at=yesterday)
    gw.add_job("alice", kind="import.edi", status="completed", created_at=yesterday)
    gw.add_job("bob", kind="import.bbgr_monthly", status="failed", created_at=yesterday)
    gw.add_task("alice", "failed", created_at=yesterday)  # a parcel task is no import
    params = {"kind": "import", "status": "failed", "day": yesterday.date().isoformat()}
    async with gw.client() as c:
        everyone = await c.get("/api/jobs", params=params, headers=gw.auth("root"))
        one = await c.get("/api/jobs", params={**params, "owner": "alice"}, headers=gw.auth("root"))
        # an agent's `owner` is ignored: they see their own, never someone else's
        sneaky = await c.get(
            "/api/jobs", params={**params, "owner": "bob"}, headers=gw.auth("alice")
        )
    assert len(everyone.json()["items"]) == 2
    assert [j["id"] for j in one.json()["items"]] == [alices["_id"]]
    assert [j["id"] for j in sneaky.json()["items"]] == [alices["_id"]]


async def test_the_dashboard_filters_by_status_lot_client_and_day(gw: Gateway) -> None:
    wanted = gw.add_task(
        "alice", "failed_final", lot_id="L1", summary={"client_id": "cli-1"}, created_at=gw.now
    )
    gw.add_task("alice", "failed", lot_id="L1", summary={"client_id": "cli-1"}, created_at=gw.now)
    gw.add_task("alice", "failed_final", lot_id="L2", summary={"client_id": "cli-1"})
    gw.add_task("alice", "failed_final", lot_id="L1", summary={"client_id": "cli-2"})
    params = {
        "state": "failed",
        "status": "failed_final",
        "lot": "L1",
        "client": "cli-1",
        "day": gw.now.date().isoformat(),
    }
    async with gw.client() as c:
        response = await c.get("/api/tasks", params=params, headers=gw.auth("alice"))
        # a status of another state's finds nothing rather than everything
        other = await c.get(
            "/api/tasks", params={"state": "failed", "status": "pending"}, headers=gw.auth()
        )
    assert [t["id"] for t in response.json()["items"]] == [wanted["_id"]]
    assert other.json() == {"items": [], "next_cursor": None}


async def test_a_cursor_that_is_not_ours_is_a_400_and_limits_are_bounded(gw: Gateway) -> None:
    async with gw.client() as c:
        forged = await c.get("/api/jobs", params={"cursor": "bm9wZQ"}, headers=gw.auth())
        huge = await c.get("/api/tasks", params={"limit": 501}, headers=gw.auth())
    assert forged.status_code == 400 and "Curseur" in forged.json()["detail"]
    assert huge.status_code == 422


def test_a_cursor_keeps_the_date_and_id_of_the_last_shown() -> None:
    doc = {"_id": "job7", "created_at": (when := datetime.now(UTC))}
    assert keyset.decode(keyset.encode(doc, "created_at")) == (when, "job7")


async def test_a_day_is_a_date_not_a_number(gw: Gateway) -> None:
    async with gw.client() as c:
        jobs = await c.get("/api/jobs", params={"day": "0"}, headers=gw.auth())
        tasks = await c.get("/api/tasks", params={"day": "20261207"}, headers=gw.auth())
        fine = await c.get("/api/tasks", params={"day": "2026-12-07"}, headers=gw.auth())
    assert jobs.status_code == tasks.status_code == 422
    assert fine.status_code == 200


async def test_since_without_a_zone_is_utc(gw: Gateway) -> None:
    old = gw.add_job("alice", updated_at=gw.now - timedelta(hours=2))
    new = gw.add_job("alice", updated_at=gw.now)
    hour_ago = (gw.now - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    async with gw.client() as c:
        naive = await c.get("/api/jobs", params={"since": hour_ago}, headers=gw.auth())
    assert naive.status_code == 200, naive.text
    assert [j["id"] for j in naive.json()["items"]] == [new["_id"]] != [old["_id"]]


async def test_a_cursor_of_an_owner_with_a_long_foreign_name_is_taken_back(gw: Gateway) -> None:
    owner = "é" * 32 + "名" * 32  # 64 characters, each quoted to 6 or 9
    for n in range(3):
        gw.add_job(owner, created_at=gw.now - timedelta(minutes=n))
    pages = await every_page(gw, "/api/jobs", "root", owner=owner, limit=1)
    assert [len(p) for p in pages] == [1, 1, 1]
