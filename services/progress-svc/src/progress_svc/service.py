"""Application service: apply one event, then tell everyone what the job looks like."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from jauge_shared.contracts import Event, ProgressDocument, ProgressUpdated
from progress_svc.aggregate import Limits, apply_event, public_view
from progress_svc.repository import ProgressRepository

logger = logging.getLogger("progress_svc")


class KeyedLocks:
    """One asyncio lock per job, dropped when nobody holds or waits for it.

    Messages are handled concurrently, but the changes to one document are applied one
    at a time: the store's update filters are not a safe compare-and-set on FerretDB.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


Announce = Callable[[ProgressUpdated], Awaitable[None]]


class ProgressService:
    def __init__(self, repository: ProgressRepository, announce: Announce, limits: Limits) -> None:
        self.repository = repository
        self.announce = announce
        self.limits = limits
        self._locks = KeyedLocks()

    async def handle(self, event: Event) -> bool:
        async with self._locks.hold(event.job_id):
            return await self._apply(event)

    async def _apply(self, event: Event) -> bool:
        """Returns whether the event changed the document.

        The current snapshot is announced even when nothing changed: a redelivered
        event may be the one whose announcement was lost in a crash.
        """
        doc, changed = await self.repository.change(
            event.job_id, lambda current: apply_event(current, event, self.limits)
        )
        if doc is None:
            return False
        await self.announce(
            ProgressUpdated(
                producer="progress-svc",
                job_id=event.job_id,
                job=ProgressDocument.model_validate(public_view(doc)),
            )
        )
        return changed
