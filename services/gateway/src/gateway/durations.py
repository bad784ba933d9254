"""How long the latest completed parcel tasks took, per operation: the tasks' ETA.

Every task read (`GET /api/tasks/{id}`, the dashboard's lists) shows an estimated time
to completion, learned from the latest completed tasks of the same operation. Read
from the store, that is a sort of the progress collection on every request: MongoDB
answers it from an index, FerretDB decodes every progress document ever written (the
30-minute soak: 80% of FerretDB's time, imports and parcels slowing by half as the
history grew). The gateway receives every progress.updated already, so it keeps the
latest durations itself; the store is read once, for the first request.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

Job = dict[str, Any]  # a public progress document, as pushed to sockets
Sample = tuple[str, datetime, float]  # job id, finished at, duration in seconds


class RecentDurations:
    def __init__(
        self,
        kinds: list[str],
        load: Callable[[str, int], Coroutine[Any, Any, list[Sample]]],
        *,
        sample: int = 20,
    ) -> None:
        self._load = load  # the `n` latest stored completions of one kind
        self.sample = sample
        self._latest: dict[str, dict[str, tuple[datetime, float]]] = {k: {} for k in kinds}
        self._loaded = False
        self._loading = asyncio.Lock()

    def forget(self) -> None:
        """Read the store again on the next request (kept samples stay, those stored
        meanwhile are added): completions announced while this replica was
        disconnected from the broker never reached it."""
        self._loaded = False

    def update(self, job: Job) -> None:
        latest = self._latest.get(job.get("kind") or "")
        if latest is None or job.get("step_status") != "completed":
            return
        duration, finished_at = job.get("duration_s"), job.get("finished_at")
        if not duration or not isinstance(finished_at, str):
            return
        self._add(latest, (job["id"], datetime.fromisoformat(finished_at), float(duration)))

    def _add(self, latest: dict[str, tuple[datetime, float]], sample: Sample) -> None:
        job_id, finished_at, duration = sample
        latest[job_id] = (finished_at, duration)  # by id: a redelivery counts once
        if len(latest) > 2 * self.sample:  # trimmed in bulk, not on every completion
            kept = sorted(latest.items(), key=lambda item: item[1][0], reverse=True)
            latest.clear()
            latest.update(kept[: self.sample])

    async def averages(self) -> dict[str, float]:
        """Mean duration of the latest `sample` completed tasks of each operation."""
        if not self._loaded:
            async with self._loading:
                if not self._loaded:
                    for kind, latest in self._latest.items():
                        for sample in await self._load(kind, self.sample):
                            if sample[0] not in latest:  # an update seen meanwhile wins
                                self._add(latest, sample)
                    self._loaded = True
        averages = {}
        for kind, latest in self._latest.items():
            newest = sorted(latest.values(), reverse=True)[: self.sample]
            if newest:
                averages[kind] = statistics.fmean(duration for _, duration in newest)
        return averages
