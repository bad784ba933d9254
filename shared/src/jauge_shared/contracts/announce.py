"""Commands of the reconciler (progress-svc) to a state's owner: announce it again.

A progress document that stays open while nothing moves may have missed an event (a
crash or an outage between the owner's write and its publish). The reconciler cannot
read the owner's data, so it asks the owner to publish its current state again, with
the event ids it had the first time (DESIGN.md, "Truth under faults").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from jauge_shared.contracts.envelope import Command


class AnnounceState(Command):
    """Publish the current state of one job or task again (`job_id`)."""

    stale_s: float = Field(
        default=0, ge=0, description="How long the progress document had not moved."
    )


class AnnounceImport(AnnounceState):
    """To import-svc: announce the import `job_id` as it stands."""

    type: Literal["import.announce"] = "import.announce"


class AnnounceColisTask(AnnounceState):
    """To colis-svc: announce the parcel task `job_id` as it stands."""

    type: Literal["colis.announce"] = "colis.announce"
