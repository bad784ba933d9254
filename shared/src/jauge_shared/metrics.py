"""Prometheus series that more than one service writes or that a dashboard and an alert
rely on, named once here so that every writer uses the same object and name.

A labelled series shows on /metrics only once one of its label values exists, so each
service creates its own at start-up (`expose_*`): a dashboard or an alert then reads 0
rather than "no data" before the first event, and `increase()` sees the first one.
"""

from __future__ import annotations

from prometheus_client import Counter

# the owners whose gauges the reconciler repairs: import-svc's imports and colis-svc's
# parcel tasks (the first part of a progress document's kind)
REPAIR_KINDS: tuple[str, ...] = ("import", "colis")
REANNOUNCING_SERVICES: tuple[str, ...] = ("import-svc", "colis-svc")
# why a worker announced a state again: its command came back, or the reconciler asked
REANNOUNCE_REASONS: tuple[str, ...] = ("redelivered", "asked")

RECONCILER_REPAIRS = Counter(
    "jauge_reconciler_repairs_total",
    "Progress documents that an event announced again still changed: an event lost "
    "between its owner's write and its publish, repaired; by owner kind.",
    ["kind"],
)
STATE_REANNOUNCED = Counter(
    "jauge_state_reannounced_total",
    "States a worker announced again (events replayed with their first ids), after a "
    "redelivery of work already done or a reconciler request; by service and reason.",
    ["service", "reason"],
)


def repair_kind(progress_kind: str) -> str:
    """`import.edi` -> `import`, `colis.create` -> `colis`: the label of a repair."""
    return progress_kind.split(".", 1)[0]


def expose_reconciler_metrics() -> None:
    """progress-svc, at start-up: every repair kind at zero."""
    for kind in REPAIR_KINDS:
        RECONCILER_REPAIRS.labels(kind)


def expose_reannounce_metrics(service: str) -> None:
    """A worker (import-svc, colis-svc), at start-up: its re-announcements at zero."""
    for reason in REANNOUNCE_REASONS:
        STATE_REANNOUNCED.labels(service, reason)
