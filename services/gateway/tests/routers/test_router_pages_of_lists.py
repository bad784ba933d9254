"""Paged lists: `/api/jobs` and `/api/tasks` a page at a time (`cursor` in, `next_cursor`
out), read by keyset on the list's sort key and `_id`, with their filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway import keyset
from jauge_shared.contracts.progress import PROGRESS_LIST_INDEXES

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
    # every page read is a range after the cursor, sorted on an index's key, limit + 1
    last = gw.progress.queries[-1]
    assert "$or" in last and last["owner"] == "alice"


def follows_an_index(query: dict[str, Any], sort: list[tuple[str, int]]) -> bool:
    """Some list index is the query's fields, then its sort (either way round)."""
    for keys in PROGRESS_LIST_INDEXES:
        names = [name for name, _ in keys]
        prefix, ordered = names[: -len(sort)], keys[-len(sort) :]
        reverse = [(name, -way) for name, way in ordered]
        if set(prefix) <= set(query) and sort in (list(ordered), reverse):
            return True
    return False


async def test_every_page_read_is_a_range_of_an_index_never_an_offset(gw: Gateway) -> None:
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
    ]
    for path, user, params in reads:
        before = len(gw.progress.finds)
        pages = await every_page(gw, path, user, limit=2, **params)
        assert len(pages) >= 2 or "lot" in params
        found = [f for f in gw.progress.finds[before:] if "duration_s" not in f[0]]  # ETAs
        assert len(found) == len(pages)
        for query, sort in found:
            assert follows_an_index(query, sort), (path, params, query, sort)


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
