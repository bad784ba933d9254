"""Anti-entropy: gauges that stopped moving are checked against their owner's state.

progress-svc cannot read import-svc's or colis-svc's data (each service owns its
own), so it does not judge who is right: every `interval_s` it looks at the documents
that are still open (`progress_open`), and for each that has not moved for `after_s`
it asks the owner to announce the job's state again (`import.announce`,
`colis.announce`). The owner publishes its stored state with the event ids it had the
first time; an event that was lost applies now, one that was not changes nothing.
What changed a document this way is a repair: counted, logged and kept (`repairs`,
listed by `jauge repairs`), see `record_if_repair`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from prometheus_client import Counter, Gauge

from jauge_shared.contracts import AnnounceColisTask, AnnounceImport, AnnounceState, Event
from jauge_shared.contracts.envelope import utc_now
from jauge_shared.metrics import RECONCILER_REPAIRS
from progress_svc.aggregate import TERMINAL, Document
from progress_svc.repository import ProgressRepository

logger = logging.getLogger("progress_svc.reconciler")

OWNERS = ("import", "colis")
ASKED = Counter(
    "jauge_reconciler_asked_total",
    "Owners asked to announce a job again, its gauge having stopped moving, by owner.",
    ["owner"],
)
PASSES = Counter("jauge_reconciler_passes_total", "Reconciler passes, by outcome.", ["outcome"])
# the replay design's backlog (docs/decisions.md, "Truth under faults"): what the
# reconciler has to ask about. It stays above zero while an owner does not answer
STALE = Gauge(
    "jauge_reconciler_stale_documents",
    "Open progress documents that have not moved for longer than JAUGE_RECONCILE_AFTER_S "
    "at the reconciler's last pass, by owner: the backlog of states to announce again.",
    ["owner"],
)

Ask = Callable[[AnnounceState], Awaitable[None]]


def owner_of(kind: str) -> str:
    """`import.edi` → import, `colis.create` → colis."""
    return kind.partition(".")[0]


def start_at_zero() -> None:
    for owner in OWNERS:
        ASKED.labels(owner)
    for outcome in ("ok", "failed"):
        PASSES.labels(outcome)
    for owner in OWNERS:
        STALE.labels(owner).set(0)


class Reconciler:
    def __init__(
        self,
        repository: ProgressRepository,
        ask: Ask,
        *,
        after_s: float,
        producer: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repository = repository
        self.ask = ask
        self.after_s = after_s
        self.producer = producer
        self.clock = clock
        self._asked_at: dict[str, float] = {}

    async def run_once(self) -> int:
        """One pass; returns how many owners were asked."""
        now = self.clock()
        asked = 0
        stale = dict.fromkeys(OWNERS, 0)
        still_open: set[str] = set()
        for entry in await self.repository.open_ids():
            job_id = entry["_id"]
            doc = self.repository.cached(job_id) or await self.repository.get(job_id)
            if doc is None or doc.get("status") in TERMINAL:
                await self.repository.close_open(job_id)
                continue
            still_open.add(job_id)
            stale_s = (now - doc["updated_at"]).total_seconds()
            if stale_s < self.after_s:
                continue
            stale[owner_of(doc["kind"])] = stale.get(owner_of(doc["kind"]), 0) + 1
            if self._asked_recently(job_id):
                continue
            await self.ask(self._command(doc, stale_s))
            self._asked_at[job_id] = time.monotonic()
            ASKED.labels(owner_of(doc["kind"])).inc()
            asked += 1
            logger.info(
                "gauge not moving: owner asked to announce it again",
                extra={"job_id": job_id, "kind": doc["kind"], "stale_s": round(stale_s, 1)},
            )
        for job_id in set(self._asked_at) - still_open:
            del self._asked_at[job_id]
        for owner, count in stale.items():
            STALE.labels(owner).set(count)
        return asked

    def _asked_recently(self, job_id: str) -> bool:
        at = self._asked_at.get(job_id)
        return at is not None and time.monotonic() - at < self.after_s

    def _command(self, doc: Document, stale_s: float) -> AnnounceState:
        model = AnnounceImport if owner_of(doc["kind"]) == "import" else AnnounceColisTask
        return model(producer=self.producer, job_id=doc["_id"], stale_s=round(stale_s, 1))


async def record_if_repair(repository: ProgressRepository, event: Event, changed: bool) -> None:
    """An event announced again that still changed its document had been lost."""
    if not (event.reannounced and changed):
        return
    # file.imported belongs to an import like import.*
    RECONCILER_REPAIRS.labels("colis" if event.type.startswith("colis.") else "import").inc()
    logger.warning(
        "gauge repaired by an event announced again",
        extra={"job_id": event.job_id, "event": event.type, "event_id": str(event.event_id)},
    )
    await repository.record_repair(
        {
            "_id": str(event.event_id),
            "job_id": event.job_id,
            "event": event.type,
            "producer": event.producer,
            "at": utc_now(),
        }
    )
