"""Productivity: parcels per hour per agent and the time each step takes, kept as daily
counters updated by deltas from `colis.step_changed` (docs/notifications.md,
"Productivity").

Two collections of the gateway's own database, both read and written by `_id` only
(FerretDB uses no other index):
- `productivity_days`: one document per UTC day, `_id` "YYYY-MM-DD", holding per agent
  the parcels created, the parcels per hour of the day and, per step, how many ended and
  their total duration. A 30-day read is 30 lookups, whatever the history.
- `productivity_clocks`: per task, the last step seen (`seq`, status, when). A step's
  duration is the time from its own `colis.step_changed` to the next one's.
- `productivity_closed`: `<day>/<task>` for each task that finished on that day, so that
  its clock can be forgotten `KEEP_CLOCKS_DAYS` later (`forget_closed`), read by `_id`
  range. A clock is only needed while its task's events may still arrive, redelivered
  or late; without this, one document per task ever created stayed for good.

Idempotent: a redelivered or late event has a `seq` not above the clock's and changes
nothing. The clock moves first (compare-and-set on `seq`), the counters after: a crash
between the two loses that one delta, it never counts one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from jauge_shared.contracts import ColisStepChanged, TaskStatus
from jauge_shared.contracts.colis import FINISHED_STATUSES, PIPELINE_STATUSES, ColisOperation
from jauge_shared.mongo import upsert_one

PERIOD_DAYS = {"today": 1, "7d": 7, "30d": 30}
STEP_ORDER = [status.value for status in PIPELINE_STATUSES]
# where a task stops by itself: its events come again within minutes (a redelivery) or
# not at all; a week also leaves an admin's forced retry of a failure its clock
FINISHED = sorted(status.value for status in FINISHED_STATUSES)
KEEP_CLOCKS_DAYS = 7
FORGET_EVERY_S = 3600.0
FORGET_AT_ONCE = 500


def agent_key(username: str) -> str:
    """A username as a field name (no '.' or '$', which MongoDB reads as paths)."""
    return username.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def agent_name(key: str) -> str:
    return key.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def day_id(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def deltas(clock: dict[str, Any] | None, event: ColisStepChanged) -> dict[str, float]:
    """The counters `event` adds (pure): the step it ends, and a parcel if it completes
    a creation. Paths are relative to the agent's entry of the event's day."""
    inc: dict[str, float] = {}
    if clock is not None and clock["status"] in STEP_ORDER:
        started = datetime.fromisoformat(clock["at"])
        seconds = max(0.0, (event.occurred_at - started).total_seconds())
        inc[f"steps.{clock['status']}.count"] = 1
        inc[f"steps.{clock['status']}.total_s"] = round(seconds, 3)
    if event.status is TaskStatus.COMPLETED and event.operation is ColisOperation.CREATE:
        inc["parcels"] = 1
        inc[f"by_hour.{event.occurred_at.astimezone(UTC).hour:02d}"] = 1
    return inc


class Productivity:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self.days = database["productivity_days"]
        self.clocks = database["productivity_clocks"]
        self.closed = database["productivity_closed"]
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def apply(self, event: ColisStepChanged) -> bool:
        """One step change counted; False if it was already (or is older than what was).

        A task's events are applied one at a time, in the order they arrive (the
        subscriber handles several messages at once; asyncio's lock is first come,
        first served): its next step read before this one's clock is written would
        be taken for a late one and lost."""
        async with self._lock(f"task:{event.task_id}"):
            return await self._apply(event)

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _apply(self, event: ColisStepChanged) -> bool:
        clock = await self.clocks.find_one({"_id": event.task_id})
        if clock is not None and clock["seq"] >= event.seq:
            return False
        fields = {"seq": event.seq, "status": event.status.value, "at": _iso(event.occurred_at)}
        if clock is None:
            try:
                await self.clocks.insert_one({"_id": event.task_id, **fields})
            except DuplicateKeyError:
                return False
        else:
            moved = await self.clocks.update_one(
                {"_id": event.task_id, "seq": clock["seq"]}, {"$set": fields}
            )
            if moved.modified_count != 1:
                return False
        inc = deltas(clock, event)
        if inc:
            prefix = f"agents.{agent_key(event.user_id)}."
            day = day_id(event.occurred_at)
            # FerretDB 1.24's `$inc` read, added and wrote back, not isolated: two at once
            # on one day lost one (5 parcels of 12 in the test). The project's build makes
            # it atomic (deploy/local/ferretdb-atomic-writes.patch); this lock keeps the
            # counts exact on a FerretDB without it (the queue's single active consumer
            # makes this process the only writer).
            async with self._lock(f"day:{day}"):
                await upsert_one(
                    self.days,
                    {"_id": day},
                    {"$inc": {prefix + path: value for path, value in inc.items()}},
                )
        if event.status.value in FINISHED:
            with contextlib.suppress(DuplicateKeyError):  # a forced retry finished again
                key = f"{day_id(event.occurred_at)}/{event.task_id}"
                await self.closed.insert_one({"_id": key})
        return True

    async def forget_closed(self, now: datetime) -> int:
        """Forgets the clocks of tasks finished more than `KEEP_CLOCKS_DAYS` days before
        `now` (at most `FORGET_AT_ONCE` per call); how many. A clock whose task runs
        again (a forced retry) is kept; its next finish lists it again."""
        before = day_id(now - timedelta(days=KEEP_CLOCKS_DAYS))
        cursor = self.closed.find({"_id": {"$lt": before}}, {"_id": True})
        keys = [doc["_id"] async for doc in cursor.sort("_id", 1).limit(FORGET_AT_ONCE)]
        for key in keys:
            task_id = key.split("/", 1)[1]
            await self.clocks.delete_one({"_id": task_id, "status": {"$in": FINISHED}})
            await self.closed.delete_one({"_id": key})
        return len(keys)

    async def forget_all_closed(self) -> None:
        """`forget_closed` until no batch is left (run by every replica, `FORGET_EVERY_S`
        apart: the deletes are the same)."""
        while await self.forget_closed(datetime.now(UTC)) == FORGET_AT_ONCE:
            pass  # a backlog: the next batch at once

    async def figures(self, period: str, who: str | None, now: datetime) -> dict[str, Any]:
        """The period's figures for one agent (`who`), or for every agent (None)."""
        days = [day_id(now - timedelta(days=n)) for n in range(PERIOD_DAYS[period])][::-1]
        docs = await asyncio.gather(*(self.days.find_one({"_id": day}) for day in days))
        agents: dict[str, dict[str, Any]] = {}
        series = {day: 0 for day in days}
        hours = {f"{h:02d}": 0 for h in range(24)}
        for day, doc in zip(days, docs, strict=True):
            for key, entry in ((doc or {}).get("agents") or {}).items():
                name = agent_name(key)
                if who is not None and name != who:
                    continue
                _add(agents.setdefault(name, _empty()), entry)
                series[day] += int(entry.get("parcels", 0))
                if period == "today":
                    for hour, count in (entry.get("by_hour") or {}).items():
                        hours[hour] = hours.get(hour, 0) + int(count)
        rows = [_row(name, acc) for name, acc in sorted(agents.items())]
        total = _empty()
        for acc in agents.values():
            _add(total, acc, summed=True)
        chart = (
            [{"label": f"{h}h", "parcels": n} for h, n in sorted(hours.items())]
            if period == "today"
            else [{"label": day, "parcels": n} for day, n in series.items()]
        )
        return {
            "period": period,
            "from": days[0],
            "to": days[-1],
            "agents": rows,
            "total": _row(None, total),
            "chart": chart,
        }


def _empty() -> dict[str, Any]:
    return {"parcels": 0, "hours": 0, "steps": {}}


def _add(acc: dict[str, Any], entry: dict[str, Any], *, summed: bool = False) -> None:
    acc["parcels"] += int(entry.get("parcels", 0))
    # hours worked: the hours of the day with at least one parcel completed
    acc["hours"] += (
        int(entry["hours"])
        if summed
        else sum(1 for n in (entry.get("by_hour") or {}).values() if n)
    )
    for step, figures in (entry.get("steps") or {}).items():
        mine = acc["steps"].setdefault(step, {"count": 0, "total_s": 0.0})
        mine["count"] += int(figures.get("count", 0))
        mine["total_s"] += float(figures.get("total_s", 0.0))


def _row(name: str | None, acc: dict[str, Any]) -> dict[str, Any]:
    steps = [
        {
            "step": step,
            "count": acc["steps"][step]["count"],
            "avg_s": round(acc["steps"][step]["total_s"] / acc["steps"][step]["count"], 2),
        }
        for step in STEP_ORDER
        if acc["steps"].get(step, {}).get("count")
    ]
    per_hour = round(acc["parcels"] / acc["hours"], 1) if acc["hours"] else 0.0
    row: dict[str, Any] = {
        "parcels": acc["parcels"],
        "hours": acc["hours"],
        "parcels_per_hour": per_hour,
        "steps": steps,
    }
    return row if name is None else {"agent": name, **row}


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
