"""Productivity figures (issue 16, point 10): parcels per hour per agent and the
average time of each step, from the gateway's daily counters (gateway/productivity.py).
An agent sees his own figures, an admin everyone's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from gateway.deps import CurrentUser, ProductivityDep
from gateway.errors import AUTHENTICATED

router = APIRouter(prefix="/api/stats", tags=["stats"], responses=AUTHENTICATED)


@router.get("/productivity")
async def productivity(
    user: CurrentUser,
    counters: ProductivityDep,
    period: Annotated[Literal["today", "7d", "30d"], Query()] = "today",
) -> dict[str, Any]:
    """Parcels created, hours worked (hours with a parcel completed), parcels per hour
    and per step its count and average duration in seconds, per agent and in total,
    with `chart` (parcels per hour today, per day otherwise). UTC days."""
    who = None if user.is_admin else user.username
    return await counters.figures(period, who, datetime.now(UTC))
