"""Series that more than one service exports, defined once.

Each service calls `start_at_zero` at start-up so that its series exist, at zero, from
the first scrape: a rate or an alert on a series that appears only with its first
event sees nothing until then.
"""

from __future__ import annotations

from prometheus_client import Counter

STATE_REANNOUNCED = Counter(
    "jauge_state_reannounced_total",
    "States a service announced again with their first event ids, by why.",
    ["service", "reason"],
)
REANNOUNCE_REASONS = ("redelivered", "asked")


def start_at_zero(service: str) -> None:
    for reason in REANNOUNCE_REASONS:
        STATE_REANNOUNCED.labels(service, reason)
