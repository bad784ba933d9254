"""Paged lists on the real store: progress-svc writes each document's list entries, and
the gateway's pages of `/api/jobs` and `/api/tasks` cover every document once, in order,
read as ranges of those entries' `_id`s, which FerretDB answers from its `_id` index
(the project's build; the router tests' fake store only mimics it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from gateway.list_filters import JobFilters, TaskFilters
from gateway.progress_view import ProgressView
from gateway.users import Role, User
from jauge_shared.contracts.progress_lists import LISTS_COLLECTION
from progress_svc.repository import ProgressRepository

ALICE = User("alice", Role.AGENT)
ROOT = User("root", Role.ADMIN)


async def all_pages(read: Any, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        items, cursor = await read(cursor, limit)
        assert len(items) <= limit
        pages.append([item["id"] for item in items])
        if cursor is None:
            return pages


async def test_pages_cover_each_document_once_read_from_the_id_index(test_env) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    database = f"{test_env.db_prefix}_progress"
    try:
        repository = ProgressRepository(client, database)
        progress, lists = client[database]["progress"], client[database][LISTS_COLLECTION]
        now = datetime.now(UTC).replace(microsecond=0)
        same = now - timedelta(minutes=5)  # equal dates: `_id` decides
        docs = [
            {
                "_id": f"imp{n:02d}",
                "kind": "import.edi",
                "owner": "alice" if n % 3 else "bob",
                "status": "completed",
                "created_at": same if n % 2 else now - timedelta(seconds=n),
                "updated_at": now,
                "seq": 1,
            }
            for n in range(13)
        ] + [
            {
                "_id": f"task{n:02d}",
                "kind": "colis.create",
                "owner": "alice",
                "status": "failed",
                "step_status": "failed_final" if n % 2 else "failed",
                "lot_id": "L1" if n < 4 else "L2",
                "created_at": now,
                "updated_at": same if n % 2 else now - timedelta(seconds=n),
                "seq": 1,
            }
            for n in range(9)
        ]
        for doc in docs:  # as progress-svc writes them: with their list entries
            await repository.change(doc["_id"], lambda current, doc=doc: doc)
        view = ProgressView(progress, lists)

        mine = JobFilters(kind="import")
        pages = await all_pages(lambda c, n: view.jobs(ALICE, mine, c, n), 3)
        alices = sorted(d["_id"] for d in docs if d["owner"] == "alice" and "step_status" not in d)
        assert sorted(i for p in pages for i in p) == alices and len(pages) == 3
        flat = [i for p in pages for i in p]
        dated = {d["_id"]: (d["created_at"], d["_id"]) for d in docs}
        assert flat == sorted(flat, key=lambda i: dated[i], reverse=True)

        everyone = await all_pages(lambda c, n: view.jobs(ROOT, JobFilters(), c, n), 4)
        assert sorted(i for p in everyone for i in p) == sorted(d["_id"] for d in docs)

        failed = TaskFilters(state="failed")
        tasks = await all_pages(lambda c, n: view.tasks(ALICE, failed, c, n), 2)
        assert sorted(i for p in tasks for i in p) == sorted(f"task{n:02d}" for n in range(9))
        in_lot = TaskFilters(state="failed", status="failed_final", lot_id="L1")
        [[*one]] = await all_pages(lambda c, n: view.tasks(ALICE, in_lot, c, n), 5)
        assert sorted(one) == ["task01", "task03"]

        # what a page reads: a range of entries by `_id` (an index on FerretDB too)
        plan = await client[database].command(
            "explain",
            {
                "find": LISTS_COLLECTION,
                "filter": {"_id": {"$gte": "tasks|failed|alice|", "$lt": "tasks|failed|alice|~"}},
                "sort": {"_id": -1},
                "limit": 3,
            },
        )
        if "Plan" in str(plan.get("queryPlanner")):  # FerretDB's SQLite backend
            assert "USING INDEX" in str(plan["queryPlanner"]) and plan["limitPushdown"], plan
    finally:
        await client.drop_database(database)
        await client.close()


async def test_an_oldest_first_page_goes_on_after_an_id_that_prefixes_another(test_env) -> None:
    """`t1` then `t10`, started at the same instant: the next page starts after `…|t1`,
    which on FerretDB is compared as JSON text (a NUL after it would be escaped and
    sort after `…|t10`, losing it)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    database = f"{test_env.db_prefix}_progress"
    try:
        repository = ProgressRepository(client, database)
        same = datetime.now(UTC).replace(microsecond=0)
        for task_id in ("t1", "t10", "t2"):
            doc = {
                "_id": task_id,
                "kind": "colis.create",
                "owner": "alice",
                "status": "running",
                "step_status": "pending",
                "created_at": same,
                "updated_at": same,
                "seq": 1,
            }
            await repository.change(task_id, lambda current, doc=doc: doc)
        view = ProgressView(client[database]["progress"], client[database][LISTS_COLLECTION])
        active = TaskFilters(state="active")
        pages = await all_pages(lambda c, n: view.tasks(ALICE, active, c, n), 1)
        assert [i for p in pages for i in p] == ["t1", "t10", "t2"]
    finally:
        await client.drop_database(database)
        await client.close()
