"""The newest progress documents, kept in memory from the progress.updated stream.

A `jobs` subscription starts with the caller's 100 newest jobs. Read from the store,
that is a sort of the whole progress collection on every subscribe: MongoDB answers it
from an index, but FerretDB's SQLite backend pushes no filter but `_id` down and sorts
in Go, so each read costs in proportion to every job ever run. The soak (bench/soak.py:
500 dashboards reconnecting) saturated FerretDB with these reads within ten minutes.

Every gateway replica receives every progress.updated already, for its sockets, so it
keeps the newest `capacity` documents and answers a `jobs` snapshot from memory, with
no await between subscribing and the snapshot. The store is read once, at the first
snapshot, and again only for a caller with fewer than `limit` of his jobs among the
newest `capacity` of everyone's once older ones have been dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from gateway.users import User

Job = dict[str, Any]  # a public progress document, as pushed to sockets


class RecentJobs:
    def __init__(
        self, load: Callable[[int], Coroutine[Any, Any, list[Job]]], capacity: int = 2000
    ) -> None:
        self._load = load  # the `n` newest documents from the store
        self.capacity = capacity
        self._jobs: dict[str, tuple[datetime, Job]] = {}
        self._loaded = False
        self._loading = asyncio.Lock()
        # True while nothing was ever dropped: then what is here is every job there is
        self._complete = False

    def update(self, job: Job) -> None:
        """A newer state of one job (an older one, redelivered or late, is ignored)."""
        known, updated_at = self._jobs.get(job["id"]), _updated_at(job)
        if known is None or known[0] <= updated_at:
            self._jobs[job["id"]] = (updated_at, job)
        if len(self._jobs) > 2 * self.capacity:  # trimmed in bulk, not on every update
            self._trim()

    async def newest(self, user: User, limit: int) -> list[Job] | None:
        """The caller's `limit` newest jobs, or None when memory cannot tell them."""
        if not self._loaded:
            await self._load_once()
        visible = [entry for entry in self._jobs.values() if user.may_see(entry[1].get("owner"))]
        if len(visible) < limit and not self._complete:
            return None
        visible.sort(key=_first, reverse=True)
        return [job for _, job in visible[:limit]]

    async def _load_once(self) -> None:
        async with self._loading:
            if self._loaded:
                return
            stored = await self._load(self.capacity)
            for job in stored:
                # an update received while the store was read is newer: keep it
                if job["id"] not in self._jobs:
                    self._jobs[job["id"]] = (_updated_at(job), job)
            self._complete = len(stored) < self.capacity
            self._loaded = True
            if len(self._jobs) > self.capacity:
                self._trim()

    def _trim(self) -> None:
        newest = sorted(self._jobs.values(), key=_first, reverse=True)[: self.capacity]
        self._jobs = {job["id"]: (at, job) for at, job in newest}
        self._complete = False


_NEVER = datetime.min.replace(tzinfo=UTC)


def _updated_at(job: Job) -> datetime:
    # parsed, not compared as text: pydantic writes "…:05Z" and "…:05.5Z" alike
    value = job.get("updated_at")
    return datetime.fromisoformat(value) if isinstance(value, str) else _NEVER


def _first(entry: tuple[datetime, Job]) -> datetime:
    return entry[0]
