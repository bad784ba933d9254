"""Each caller's newest progress documents, kept in memory from progress.updated.

A `jobs` subscription starts with the caller's 100 newest jobs. Read from the store,
that is a sort of the progress collection on every subscribe: MongoDB answers it from
the (owner, updated_at) index, but FerretDB's SQLite backend pushes no filter but `_id`
down and sorts in Go, so each read costs in proportion to every job ever run. The soak
(bench/soak.py: 500 dashboards reconnecting) saturated FerretDB with these reads.

Every gateway replica receives every progress.updated already, for its sockets. So it
keeps one view per caller seen recently (an agent's own jobs, or everyone's for the
admins): the store is read once when a view is first needed, and from then on the
updates keep it exactly the newest `limit`, since a job can only enter them by being
updated. A snapshot is then answered from memory, with no await between subscribing
and the snapshot. Views of callers not seen for a while are dropped (`max_views`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from gateway.users import User

Job = dict[str, Any]  # a public progress document, as pushed to sockets
Query = dict[str, Any]
EVERYONE = "*"  # the admins' view; usernames never contain it


class _Newest:
    """The newest `limit` jobs of one view, by id."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.jobs: dict[str, tuple[datetime, Job]] = {}
        self.loaded = asyncio.Event()

    def add(self, job: Job) -> None:
        """A newer state of a job (an older one, redelivered or late, is ignored)."""
        known, updated_at = self.jobs.get(job["id"]), _updated_at(job)
        if known is None or known[0] <= updated_at:
            self.jobs[job["id"]] = (updated_at, job)
        if len(self.jobs) > 2 * self.limit:  # trimmed in bulk, not on every update
            self.jobs = dict(self._sorted()[: self.limit])

    def newest(self) -> list[Job]:
        return [job for _, (_, job) in self._sorted()[: self.limit]]

    def _sorted(self) -> list[tuple[str, tuple[datetime, Job]]]:
        return sorted(self.jobs.items(), key=lambda item: item[1][0], reverse=True)


class RecentJobs:
    def __init__(
        self,
        load: Callable[[Query, int], Coroutine[Any, Any, list[Job]]],
        *,
        limit: int = 100,
        max_views: int = 500,
    ) -> None:
        self._load = load  # the `n` newest stored documents matching a query
        self.limit = limit
        self.max_views = max_views
        self._views: OrderedDict[str, _Newest] = OrderedDict()

    def forget(self) -> None:
        """Drop every view: the next caller of each reads the store again. After the
        broker connection came back, updates published meanwhile were lost (this
        replica's queue lives only while it is connected)."""
        self._views.clear()

    def update(self, job: Job) -> None:
        for key in (EVERYONE, job.get("owner")):
            view = self._views.get(key) if isinstance(key, str) else None
            if view is not None:
                view.add(job)

    async def newest(self, user: User) -> list[Job]:
        """The caller's `limit` newest jobs, newest first."""
        key = EVERYONE if user.is_admin else user.username
        view = self._views.get(key)
        if view is not None:
            self._views.move_to_end(key)
            await view.loaded.wait()
        if view is None or self._views.get(key) is not view:  # new, or its read failed
            view = await self._open(key, {} if user.is_admin else {"owner": user.username})
        return view.newest()

    async def _open(self, key: str, query: Query) -> _Newest:
        # registered before the read, so updates that arrive meanwhile are kept (and win
        # over the stored state they are newer than)
        view = self._views[key] = _Newest(self.limit)
        while len(self._views) > self.max_views:
            self._views.popitem(last=False)
        try:
            for job in await self._load(query, self.limit):
                view.add(job)
        except BaseException:
            self._views.pop(key, None)  # the next caller reads again
            view.loaded.set()
            raise
        view.loaded.set()
        return view


_NEVER = datetime.min.replace(tzinfo=UTC)


def _updated_at(job: Job) -> datetime:
    # parsed, not compared as text: pydantic writes "…:05Z" and "…:05.5Z" alike
    value = job.get("updated_at")
    return datetime.fromisoformat(value) if isinstance(value, str) else _NEVER
