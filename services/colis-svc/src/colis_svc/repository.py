"""colis-svc's own database: clients, the tariff, lots, parcels and parcel tasks.

FerretDB applies updates without isolation (docs/decisions.md), so everything that must be
unique or exclusive here comes from inserting a unique `_id`:

- a lot number is reserved by inserting it into `lot_numbers` (candidates are tried in
  order until one insert succeeds), never by `$inc` or by counting lots;
- a tracking number is reserved the same way in `tracking_numbers`, and which number a
  parcel holds is claimed by inserting the parcel's id into `held_tracking_numbers`;
- a creation task's parcel has the task id as `_id`, so a redelivered or resumed
  creation can never make a second parcel;
- every task that may still need the sweeper is listed by id in `open_tasks` (see
  `open_tasks_in`);
- one-off decisions about a task (the n-th retry, a stall report, a cancel request) are
  markers inserted into `task_markers`: whoever inserts first acts, the others do nothing.

Over 300 lines on purpose: every write that relies on those unique inserts stays in this
one module, so the rule above is checked in one place (document shapes: documents.py).
"""

from __future__ import annotations

import contextlib
import sys
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from colis_svc.client_names import ClientNames
from colis_svc.documents import Doc as Doc
from colis_svc.documents import state_to_doc
from colis_svc.domain import (
    DEFAULT_TARIFF,
    LotStatut,
    LotType,
    Tariff,
    TaskState,
    format_lot_number,
    make_tracking_number,
)
from colis_svc.lot_index import LotIndex
from jauge_shared.contracts.colis import CLOSED_STATUSES
from jauge_shared.mongo import gather_in_chunks

DEMO_CLIENTS: tuple[Doc, ...] = (
    {"_id": "cli-demo-1", "name": "Awa Diallo", "phone": "+221 77 123 45 67"},
    {"_id": "cli-demo-2", "name": "Moussa Traoré", "phone": "+223 76 54 32 10"},
    {"_id": "cli-demo-3", "name": "Li Wei", "phone": "+86 138 0013 8000"},
)
TARIFF_ID = "active"
CANCEL = "cancel"
# what a task never leaves: the sweeper has nothing more to do with it until it expires
CLOSED = frozenset(status.value for status in CLOSED_STATUSES)


def fate_decision(retry_count: int) -> str:
    """One `fate` decision (commit or cancel) per run of a task."""
    return f"fate:{retry_count}"


def retry_decision(retry_count: int, seq: int) -> str:
    """Retry number `retry_count`, started from the state numbered `seq`."""
    return f"retry:{retry_count}:{seq}"


def stalled_decision(seq: int) -> str:
    """The stall of the state numbered `seq`."""
    return f"stalled:{seq}"


def task_decisions(retry_count: int, seq: int) -> list[str]:
    """Every decision a task whose stored state has this `retry_count` and `seq` may hold.

    `seq` only grows and each retry adds one to `retry_count`, so the decisions taken so
    far are among these; a retry marked but never recorded (the replica died) is retry
    `retry_count + 1`. Any new kind of decision must be listed here, or its markers
    outlive their task.
    """
    seqs = range(seq + 1)
    runs = range(retry_count + 1)
    return [
        CANCEL,
        *(fate_decision(r) for r in runs),
        *(stalled_decision(s) for s in seqs),
        *(retry_decision(r + 1, s) for r in runs for s in seqs),
    ]


class ColisRepository:
    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.db: AsyncDatabase[Doc] = client[database]
        self.clients = self.db["clients"]
        self.tariffs = self.db["tariffs"]
        self.lots = self.db["lots"]
        self.lot_numbers = self.db["lot_numbers"]
        self.colis = self.db["colis"]
        self.tracking_numbers = self.db["tracking_numbers"]
        self.held_numbers = self.db["held_tracking_numbers"]
        self.tasks = self.db["tasks"]
        self.open_tasks = self.db["open_tasks"]
        self.markers = self.db["task_markers"]
        self.lot_index = LotIndex(self.db)
        self.client_names = ClientNames(self.db)

    async def ensure_indexes(self) -> None:
        await self.lots.create_index([("created_at", DESCENDING)])
        await self.lot_numbers.create_index([("prefix", ASCENDING)])
        await self.colis.create_index([("lot_id", ASCENDING)])
        await self.tasks.create_index([("status", ASCENDING)])
        await self.markers.create_index([("task_id", ASCENDING)])
        await self.lot_index.ensure_collections()

    async def seed_demo_data(self, now: datetime) -> None:
        """A default tariff and a few demo clients on a fresh install (never overwritten)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.tariffs.insert_one(
                {"_id": TARIFF_ID, **DEFAULT_TARIFF.to_document(), "updated_at": now}
            )
        if await self.clients.count_documents({}, limit=1) == 0:
            for client in DEMO_CLIENTS:
                with contextlib.suppress(DuplicateKeyError):
                    await self.add_client({**client, "created_at": now})

    # clients and tariff
    async def add_client(self, client: Doc) -> None:
        await self.client_names.add(client["_id"], client["name"])  # listed first
        await self.clients.insert_one(client)

    async def get_client(self, client_id: str) -> Doc | None:
        return await self.clients.find_one({"_id": client_id})

    async def list_clients(self, limit: int = 500) -> list[Doc]:
        return await self.client_names.first(limit)

    async def tariff(self) -> Tariff:
        doc = await self.tariffs.find_one({"_id": TARIFF_ID})
        return Tariff.from_document(doc) if doc is not None else DEFAULT_TARIFF

    # lots
    async def create_lot(self, lot_id: str, type_lot: LotType, day: date, now: datetime) -> Doc:
        """Reserves the first free number of (type, day) by a unique insert, then stores
        the lot. Two replicas racing for a number: one insert wins, the other tries the
        next candidate. A number reserved by a process that died before storing its lot
        is simply skipped (numbers are unique, not gap-free)."""
        prefix = format_lot_number(type_lot, day, 1)[:-3]
        # the numbers taken that day, as a range of `_id`s (FerretDB scans for `prefix`)
        taken = self.lot_numbers.find({"_id": {"$gte": prefix, "$lt": prefix + "~"}}, {"_id": 1})
        counter = len([n async for n in taken]) + 1
        while True:
            numero = format_lot_number(type_lot, day, counter)
            try:
                await self.lot_numbers.insert_one(
                    {"_id": numero, "prefix": prefix, "lot_id": lot_id, "at": now}
                )
                break
            except DuplicateKeyError:
                counter += 1
        await self.lot_index.add_day(day)  # before the lot: a stored lot is listed
        lot = {
            "_id": lot_id,
            "numero_lot": numero,
            "type_lot": LotType(type_lot).value,
            "statut": LotStatut.OUVERT.value,
            "created_at": now,
            "colis_count": 0,
            "total_prix": "0",
            "listed": True,
        }
        await self.lots.insert_one(lot)
        return lot

    async def get_lot(self, lot_id: str) -> Doc | None:
        return await self.lots.find_one({"_id": lot_id})

    async def lot_by_number(self, numero: str) -> Doc | None:
        """The lot numbered `numero`, found by `_id` twice (its reservation, then the lot):
        the only lookup FerretDB answers from an index. A number reserved by a process
        that died before storing its lot finds nothing."""
        reserved = await self.lot_numbers.find_one({"_id": numero})
        if reserved is None:
            return None
        lot = await self.lots.find_one({"_id": reserved["lot_id"]})
        return lot if lot is not None and lot.get("numero_lot") == numero else None

    async def set_lot_statut(self, lot_id: str, statut: LotStatut, now: datetime) -> None:
        when = "shipped_at" if statut is LotStatut.EXPEDIE else "closed_at"
        await self.lots.update_one({"_id": lot_id}, {"$set": {"statut": statut.value, when: now}})

    async def update_client(self, client_id: str, old_name: str, fields: Doc) -> None:
        """`fields` with the client's `name`: listed under the new name before the change,
        no longer under the old one after it."""
        await self.client_names.add(client_id, fields["name"])
        await self.clients.update_one({"_id": client_id}, {"$set": fields})
        if fields["name"] != old_name:
            await self.client_names.remove(client_id, old_name)

    # parcels
    async def reserve_tracking_number(self, colis_id: str, day: date) -> str:
        """A fresh tracking number for `colis_id`, or the one it already holds.

        Two unique inserts, both by `_id` (FerretDB scans for a filter on `colis_id`,
        once per parcel): the number into `tracking_numbers`, which keeps numbers unique,
        then the parcel's claim on it into `held_tracking_numbers`, which keeps one
        number per parcel. In that order, a claim always names a reserved number.

        - the number is taken (DuplicateKeyError on the first insert): draw another;
        - the parcel already holds one (DuplicateKeyError on the claim: a redelivery or
          resumed creation racing this one claimed first): that number wins, ours is
          given back;
        - a crash between the two inserts leaves a reserved number nobody holds: it is
          never handed out again (numbers are unique, not gap-free).

        A number reserved before the claims existed is not looked up (that would scan
        again): only a creation in flight across the upgrade can have one, and if its
        parcel was stored, `insert_colis` fails and the parcel keeps its number.
        """
        while True:
            held = await self.held_numbers.find_one({"_id": colis_id})
            if held is not None:
                return str(held["numero"])
            numero = await self._reserve_new_number(colis_id, day)
            try:
                await self.held_numbers.insert_one({"_id": colis_id, "numero": numero})
                return numero
            except DuplicateKeyError:
                await self.tracking_numbers.delete_one({"_id": numero})

    async def _reserve_new_number(self, colis_id: str, day: date) -> str:
        while True:
            numero = make_tracking_number(day)
            try:
                await self.tracking_numbers.insert_one({"_id": numero, "colis_id": colis_id})
                return numero
            except DuplicateKeyError:
                continue

    async def colis_by_number(self, numero: str) -> Doc | None:
        """The parcel holding tracking number `numero`, by `_id` twice as `lot_by_number`;
        a number reserved but never held (a crash, a lost race) finds nothing."""
        reserved = await self.tracking_numbers.find_one({"_id": numero})
        if reserved is None:
            return None
        parcel = await self.colis.find_one({"_id": reserved["colis_id"]})
        return parcel if parcel is not None and parcel.get("numero_suivi") == numero else None

    async def insert_colis(self, colis: Doc) -> bool:
        """False when this parcel already exists (a resumed or redelivered creation)."""
        try:
            await self.colis.insert_one(colis)
        except DuplicateKeyError:
            return False
        return True

    async def get_colis(self, colis_id: str) -> Doc | None:
        return await self.colis.find_one({"_id": colis_id})

    async def update_colis(self, colis_id: str, fields: Doc) -> None:
        await self.colis.update_one({"_id": colis_id}, {"$set": fields})

    async def replace_colis(self, colis: Doc) -> None:
        await self.colis.replace_one({"_id": colis["_id"]}, colis)

    async def delete_colis(self, colis_id: str) -> None:
        """The parcel, its claim on a tracking number and that number, all by `_id`.

        The claim goes before the number, so a claim never names a number another
        parcel could have reserved since. The stored parcel's own number is freed too:
        it differs from the claim's only for a parcel numbered before the claims existed.
        """
        held = await self.held_numbers.find_one({"_id": colis_id})
        parcel = await self.colis.find_one({"_id": colis_id}, {"numero_suivi": True})
        numbers = {doc[field] for doc, field in ((held, "numero"), (parcel, "numero_suivi")) if doc}
        await self.colis.delete_one({"_id": colis_id})
        await self.held_numbers.delete_one({"_id": colis_id})
        for numero in numbers:
            await self.tracking_numbers.delete_one({"_id": numero})

    # tasks
    async def insert_task(self, task: Doc) -> bool:
        """False when the task already exists. Listed as open first, so that the list
        never misses an open task (a delivery that dies in between lists it again)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.open_tasks.insert_one({"_id": task["_id"]})
        try:
            await self.tasks.insert_one(task)
        except DuplicateKeyError:
            return False
        return True

    async def list_open_tasks(self) -> None:
        """List the open tasks stored before `open_tasks` existed: one scan at start-up.

        An entry this adds for a task closed meanwhile is pruned by `open_tasks_in`.
        """
        query = {"status": {"$nin": sorted(CLOSED)}}
        async for doc in self.tasks.find(query, {"_id": True}):
            with contextlib.suppress(DuplicateKeyError):
                await self.open_tasks.insert_one({"_id": doc["_id"]})

    async def get_task(self, task_id: str) -> Doc | None:
        return await self.tasks.find_one({"_id": task_id})

    async def save_state(self, state: TaskState, **fields: Any) -> None:
        await self.tasks.update_one(
            {"_id": state.task_id}, {"$set": {**state_to_doc(state), **fields}}
        )
        if state.status.value in CLOSED:
            await self.open_tasks.delete_one({"_id": state.task_id})

    async def set_task_fields(self, task_id: str, **fields: Any) -> None:
        await self.tasks.update_one({"_id": task_id}, {"$set": fields})

    async def stop_photo_wait(self, task_id: str, now: datetime) -> bool:
        """Turns a task's wait for its photo off; True for the one caller that did (the
        photo's notice, the sweeper or a cancel). The run it starts counts from `now`."""
        result = await self.tasks.update_one(
            {"_id": task_id, "photo_waiting": True},
            {"$set": {"photo_waiting": False, "run_started_at": now}},
        )
        return result.modified_count == 1

    async def open_tasks_in(self, statuses: list[str], limit: int = 500) -> list[Doc]:
        """The open tasks in one of `statuses`, read by `_id` from `open_tasks`.

        Every sweep of every replica asks, and FerretDB scans `tasks` for a filter on
        `status`: 0.6 s a query with 10,000 tasks kept for their 30 days. `open_tasks`
        holds only the tasks not closed (in flight, waiting for a retry, or
        `failed_final` until removed). A closed task never reopens, so an entry found
        closed (a crash before `save_state` removed it) is removed here.
        """
        ids = [doc["_id"] async for doc in self.open_tasks.find({})]
        found = []
        for doc in await gather_in_chunks(ids, self.get_task):
            if doc is not None and doc["status"] in CLOSED:
                await self.open_tasks.delete_one({"_id": doc["_id"]})
            elif doc is not None and doc["status"] in statuses:
                found.append(doc)
        return found[:limit]

    async def finished_before(self, statuses: list[str], before: datetime) -> list[Doc]:
        query = {"status": {"$in": statuses}, "finished_at": {"$lt": before}}
        return [d async for d in self.tasks.find(query).limit(500)]

    async def live_upload_ids(self, statuses: list[str]) -> set[str]:
        docs = await self.open_tasks_in(statuses, limit=sys.maxsize)
        return {str(d["upload_id"]) for d in docs if d.get("upload_id") is not None}

    async def delete_task(self, task: Doc) -> None:
        """The task and its markers, deleted by `_id` (see `task_decisions`): FerretDB
        scans the markers for a filter on `task_id`, once per task removed."""
        await self.tasks.delete_one({"_id": task["_id"]})
        await self.open_tasks.delete_one({"_id": task["_id"]})
        keys = [
            f"{task['_id']}:{decision}"
            for decision in task_decisions(task.get("retry_count", 0), task.get("seq", 0))
        ]
        await gather_in_chunks(keys, lambda key: self.markers.delete_one({"_id": key}))

    # markers: one winner per decision
    async def mark(self, task_id: str, decision: str, now: datetime) -> bool:
        try:
            await self.markers.insert_one(
                {"_id": f"{task_id}:{decision}", "task_id": task_id, "at": now}
            )
        except DuplicateKeyError:
            return False
        return True

    async def decide(self, task_id: str, decision: str, choice: str, now: datetime) -> str:
        """The first choice stored for `decision` wins; returns the winning choice."""
        key = f"{task_id}:{decision}"
        try:
            await self.markers.insert_one(
                {"_id": key, "task_id": task_id, "choice": choice, "at": now}
            )
        except DuplicateKeyError:
            stored = await self.markers.find_one({"_id": key})
            return str(stored["choice"]) if stored else choice
        return choice

    async def has_marker(self, task_id: str, decision: str) -> bool:
        return await self.markers.find_one({"_id": f"{task_id}:{decision}"}) is not None
