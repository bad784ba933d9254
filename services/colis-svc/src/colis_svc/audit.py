"""Who changed which lot or parcel, when, and what changed (issue 15's audit trail).

One entry per change in `audit`, keyed by a stable `_id` made of what changed and the
work that changed it (`<task>:colis.created`, `lot.closed:<lot>`...): a redelivered
command or a resumed run writes the same entry again, and the insert refuses it.

Reading one parcel's history must not cost a scan of everybody's (FerretDB scans for any
filter but `_id`, docs/decisions.md). So every entry is also listed, by `_id` only, in
*chains*: one per parcel (`colis:<id>`), one per lot (`lot:<id>`) and one for all
(`all`). A chain's n-th link is the document `<chain>:<n>` of `audit_links`, naming
the entry; a writer takes the next number by inserting it (a unique insert: two writers
never get the same link, and no update has to be isolated, which FerretDB's are not).
`audit_heads` keeps, per chain, a hint of its next free number, so appending does not
walk the whole chain; a hint that lags (two writers at once) only costs a failed
insert or two. Reading walks a chain backwards from its end: a history of k entries
costs about 2k lookups by `_id`, whatever the size of all history.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from colis_svc.chains import append_link
from jauge_shared.contracts import CancelColisTask, ColisData, ColisOperation, RetryColisTask
from jauge_shared.mongo import gather_in_chunks

if TYPE_CHECKING:  # runs.py imports this module
    from colis_svc.runs import Run

Doc = dict[str, Any]
logger = logging.getLogger("colis_svc")

ALL = "all"
MAX_PAGE = 500
# what a parcel's entry shows of it: the form's fields, the client, the photo, the number
PARCEL_FIELDS = (
    "numero_suivi",
    "client_id",
    "client_name",
    "type_transport",
    "longueur",
    "largeur",
    "hauteur",
    "poids",
    "mode_paiement",
    "statut",
    "description",
    "image",
)


def colis_chain(colis_id: str) -> str:
    return f"colis:{colis_id}"


def lot_chain(lot_id: str) -> str:
    return f"lot:{lot_id}"


def diff(before: Doc | None, after: Doc, fields: Iterable[str]) -> dict[str, list[Any]]:
    """`{field: [before, after]}` for each of `fields` that differs (absent is None)."""
    old = before or {}
    return {
        f: [old.get(f), after.get(f)] for f in fields if f in after and old.get(f) != after.get(f)
    }


def public_entry(doc: Doc) -> Doc:
    return {
        "id": doc["_id"],
        "at": doc["at"],
        "who": doc.get("who"),
        "what": doc["what"],
        "lot_id": doc.get("lot_id"),
        "colis_id": doc.get("colis_id"),
        "task_id": doc.get("task_id"),
        "changes": doc.get("changes") or {},
    }


class AuditLog:
    def __init__(self, db: AsyncDatabase[Doc], clock: Callable[[], datetime]) -> None:
        self.entries = db["audit"]
        self.links = db["audit_links"]
        self.heads = db["audit_heads"]
        self.clock = clock

    # ------------------------------------------------------------------ writing
    async def record(
        self,
        entry_id: str,
        what: str,
        who: str | None,
        *,
        lot_id: str | None = None,
        colis_id: str | None = None,
        task_id: str | None = None,
        changes: dict[str, list[Any]] | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Stores the entry once and lists it in its chains; False if it was already
        there. An entry stored by a run that died before listing it (no `listed`) is
        listed now: a link may then be doubled, never missing (readers drop doubles)."""
        doc = {
            "_id": entry_id,
            "at": at or self.clock(),
            "who": who or None,
            "what": what,
            "lot_id": lot_id,
            "colis_id": colis_id,
            "task_id": task_id,
            "changes": changes or {},
        }
        try:
            await self.entries.insert_one(doc)
        except DuplicateKeyError:
            stored = await self.entries.find_one({"_id": entry_id}, {"listed": True})
            if stored is None or stored.get("listed"):
                return False
        chains = [ALL]
        if lot_id:
            chains.append(lot_chain(lot_id))
        if colis_id:
            chains.append(colis_chain(colis_id))
        for chain in chains:
            await self._append(chain, entry_id)
        await self.entries.update_one({"_id": entry_id}, {"$set": {"listed": True}})
        return True

    async def _append(self, chain: str, entry_id: str) -> int:
        return await append_link(self.links, self.heads, chain, {"entry": entry_id})

    # ------------------------------------------------------------------ the changes
    async def lot_created(self, lot: Doc, who: str | None) -> None:
        changes = diff(None, lot, ("numero_lot", "type_lot", "statut"))
        await self.record(
            f"lot.created:{lot['_id']}",
            "lot.created",
            who,
            lot_id=lot["_id"],
            changes=changes,
            at=lot["created_at"],
        )

    async def lot_closed(self, lot: Doc, statut: str, who: str | None) -> None:
        """`lot` as it was before; a lot is closed once and shipped once (`lot.closed`,
        `lot.shipped`: doing it again changes nothing)."""
        changes = {"statut": [lot["statut"], statut]}
        what = "lot.shipped" if statut == "expedie" else "lot.closed"
        await self.record(f"{what}:{lot['_id']}", what, who, lot_id=lot["_id"], changes=changes)

    async def client_changed(
        self, client_id: str, before: Doc | None, after: Doc, who: str | None
    ) -> None:
        """A client created or edited (listed in the `all` chain only)."""
        what = "client.created" if before is None else "client.updated"
        changes = diff(before, after, ("name", "phone"))
        entry_id = f"{what}:{client_id}:{uuid4().hex[:8]}"
        await self.record(entry_id, what, who, changes={"client_id": [None, client_id], **changes})

    async def parcel_written(self, run: Run, fields: Doc, numero: str) -> None:
        """The creation step stored the parcel (created, or the update applied): by the
        task's agent. An update's changes are against the parcel before this task (kept
        in the task as `previous`); each run of the task is one entry (a retry with
        corrections applies them again), a resumed run is the same entry."""
        doc = run.doc
        after = {
            **fields,
            "client_name": run.client["name"] if run.client else None,
            "numero_suivi": numero,
        }
        if run.state.operation is ColisOperation.CREATE:
            entry_id, what, before = f"{run.task_id}:colis.created", "colis.created", None
        else:
            entry_id = f"{run.task_id}:colis.updated:{run.state.retry_count}"
            what, before = "colis.updated", doc.get("previous")
        await self.record(
            entry_id,
            what,
            doc["user_id"],
            lot_id=doc["lot_id"],
            colis_id=doc["colis_id"],
            task_id=run.task_id,
            changes=diff(before, after, PARCEL_FIELDS),
        )

    async def task_cancelled(self, command: CancelColisTask, doc: Doc | None) -> None:
        """A cancel accepted (the task's cancel marker is down). `doc` is None while the
        task's command is still queued: its lot comes from the command, and its parcel is
        known only for a creation (the task's id); an update's is not named then."""
        if doc is not None:
            lot_id, colis_id, status = doc["lot_id"], doc["colis_id"], doc["status"]
        else:
            lot_id, status = command.lot_id, "pending"
            created = command.operation is ColisOperation.CREATE
            colis_id = command.task_id if created else None
        await self.record(
            f"{command.task_id}:task.cancelled",
            "task.cancelled",
            command.user_id,
            lot_id=lot_id,
            colis_id=colis_id,
            task_id=command.task_id,
            changes={"status": [status, "cancelled"]},
        )

    async def task_retried(
        self, command: RetryColisTask, doc: Doc, data: ColisData, relaunch: Awaitable[Doc]
    ) -> Doc:
        """Awaits `relaunch` (the retry itself, which updates `doc` as it goes) and, if
        it happened, records it with the caller's corrections: `task.retry_forced` when
        the task's automatic retries were spent (an admin's), else `task.retried`."""
        before = dict(doc)
        reply = await relaunch
        if not reply.get("ok"):
            return reply
        count = int(reply["result"]["retry_count"])
        spent = before["retry_count"] >= before["max_retries"]
        changes = diff(before["colis_data"], data.model_dump(mode="json"), ColisData.model_fields)
        if command.upload_id:
            changes["photo"] = [None, command.upload_id]  # a new photo (its upload id)
        changes["retry_count"] = [before["retry_count"], count]
        try:
            await self.record(
                f"{command.task_id}:task.retried:{count}",
                "task.retry_forced" if command.force and spent else "task.retried",
                command.user_id,
                lot_id=before["lot_id"],
                colis_id=before["colis_id"],
                task_id=command.task_id,
                changes=changes,
            )
        except Exception:
            # the retry is done: raising would have the command redelivered and refused
            # ("already retried"), a wrong answer, and the entry lost all the same
            logger.exception(
                "retry not recorded in the audit trail", extra={"task_id": command.task_id}
            )
        return reply

    # ------------------------------------------------------------------ reading
    async def _end(self, chain: str) -> int:
        """The number of the chain's last link (0 when empty), from the hint onwards."""
        head = await self.heads.find_one({"_id": chain})
        n = int(head["next"]) if head else 1
        while await self.links.find_one({"_id": f"{chain}:{n}"}, {"_id": True}) is not None:
            n += 1
        return n - 1

    async def page(self, chain: str, limit: int = 100, before: int | None = None) -> Doc:
        """Newest first: up to `limit` entries of the links numbered below `before` (the
        `next` of the previous page; none: from the end). `next` is None at the start."""
        limit = max(1, min(limit, MAX_PAGE))
        end = await self._end(chain)
        top = end if before is None else min(before - 1, end)
        numbers = list(range(top, max(top - limit, 0), -1))
        links = await gather_in_chunks(
            numbers, lambda n: self.links.find_one({"_id": f"{chain}:{n}"})
        )
        ids = list(dict.fromkeys(link["entry"] for link in links if link is not None))
        docs = await gather_in_chunks(ids, lambda i: self.entries.find_one({"_id": i}))
        lowest = numbers[-1] if numbers else 1
        return {
            "entries": [public_entry(d) for d in docs if d is not None],
            "next": lowest if lowest > 1 else None,
        }
