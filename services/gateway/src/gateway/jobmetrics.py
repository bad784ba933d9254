"""Jobs and tasks reaching their final state, with their durations, as this gateway saw
them on progress.updated (every replica receives every update).

The read model is where a job's start and end meet: import-svc's files and colis-svc's
steps are counted by their services, the whole job only here. Each replica counts each
job once (by id); with several replicas, aggregate with `max without (instance)`.
Every kind is exposed at zero from start-up (issue 14, item 6).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from prometheus_client import Counter, Histogram

from jauge_shared.contracts import ProgressStatus
from jauge_shared.contracts.imports import ImportKind

KINDS = [f"import.{kind.value}" for kind in ImportKind] + ["colis.create", "colis.update"]
FINAL = [s.value for s in ProgressStatus if s.is_terminal]

JOBS_FINISHED = Counter(
    "jauge_jobs_finished_total",
    "Jobs and parcel tasks seen reaching their final state, by kind and status.",
    ["kind", "status"],
)
JOB_SECONDS = Histogram(
    "jauge_job_duration_seconds",
    "From start to final state, of the jobs and parcel tasks that completed, by kind.",
    ["kind"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
_REMEMBERED = 20_000


class FinishedJobs:
    def __init__(self) -> None:
        self._counted: OrderedDict[str, None] = OrderedDict()
        for kind in KINDS:
            JOB_SECONDS.labels(kind)
            for status in FINAL:
                JOBS_FINISHED.labels(kind, status)

    def update(self, job: dict[str, Any]) -> None:
        status = job.get("status")
        if status not in FINAL or job["id"] in self._counted:
            return
        self._counted[job["id"]] = None
        if len(self._counted) > _REMEMBERED:
            self._counted.popitem(last=False)
        kind = str(job.get("kind") or "unknown")
        JOBS_FINISHED.labels(kind, status).inc()
        duration = job.get("duration_s")
        if status == ProgressStatus.COMPLETED.value and isinstance(duration, int | float):
            JOB_SECONDS.labels(kind).observe(duration)
