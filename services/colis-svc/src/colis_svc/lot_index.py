"""The lots list, each lot's parcels and its totals, read by `_id` only.

FerretDB scans a collection for any filter but `{_id: value}` (docs/decisions.md), so a
list sorted on another field, or a lot's parcels found by `lot_id`, would cost a read of
everything ever stored. Instead, as the audit trail does, chains of links in
`lot_links`, each link `<chain>:<n>` inserted once (a unique insert: two writers never
get the same number, and no update needs isolation):

- `days`: the n-th day that got a lot (`YYYYMMDD`), so in the order days come (replicas'
  clocks agree, and the start-up listing of older lots adds their days oldest first). A
  day's lots are then found by their numbers in `lot_numbers` (`TYPE-YYYYMMDDNNN`,
  reserved 1, 2, 3... without gaps per type and day), so the list comes out by day,
  newest first, and by number within a day;
- `parcels:<lot_id>`: every parcel created in the lot, in order.

A marker (`day:<YYYYMMDD>`, `parcel:<colis_id>`) says an item is chained already. A
writer that dies between the link and its marker leaves the item chained twice, which
readers drop. A lot's `colis_count` and `total_prix` are summed from its chain whenever
one of its parcels is priced, removed or restored, and when the lot is closed or
shipped: a page of the list reads them from the lot, never from its parcels.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from datetime import date
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure

from colis_svc.chains import append_link
from colis_svc.domain import LOT_TYPES, format_lot_number, parse_lot_number
from jauge_shared.mongo import gather_in_chunks

logger = logging.getLogger("colis_svc")
Doc = dict[str, Any]
DAYS = "days"
NAMESPACE_EXISTS = 48
MAX_PAGE = 500
# lots looked at for one page at most: a rare status filtered ends the page early (with
# a cursor) rather than reading back through all history
EXAMINED_PER_PAGE = 1000
# the types in the order of their numbers' prefixes (BATEAU-, CARGO-, EXPRESS-)
_TYPES_IN_ORDER = sorted(LOT_TYPES, key=lambda t: t.value)


class InvalidCursor(ValueError):
    pass


def parcels_chain(lot_id: str) -> str:
    return f"parcels:{lot_id}"


def number_order(numero_lot: str) -> tuple[str, int]:
    kind, _, counter = parse_lot_number(numero_lot)
    return kind.value, counter


def encode_cursor(link: int, numero_lot: str) -> str:
    return base64.urlsafe_b64encode(f"{link}|{numero_lot}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """(the day's link, the last lot number shown); InvalidCursor if not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        link, numero = raw.split("|", 1)
        number_order(numero)
        return int(link), numero
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidCursor(cursor) from e


class LotIndex:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.links = db["lot_links"]
        self.heads = db["lot_heads"]
        self.lots = db["lots"]
        self.lot_numbers = db["lot_numbers"]
        self.colis = db["colis"]

    async def ensure_collections(self) -> None:
        """Made at start-up: creating a collection is slow on FerretDB under load
        (seconds), which the first lot created must not pay within its reply's time."""
        present = set(await self.links.database.list_collection_names())
        for collection in (self.links, self.heads):
            if collection.name not in present:
                try:
                    await self.links.database.create_collection(collection.name)
                except CollectionInvalid:
                    pass  # made meanwhile (another replica)
                except OperationFailure as e:
                    if e.code != NAMESPACE_EXISTS:
                        raise

    # ------------------------------------------------------------------ chains
    async def _append(self, chain: str, value: str) -> None:
        await append_link(self.links, self.heads, chain, {"value": value})

    async def _add_once(self, marker: str, chain: str, value: str) -> None:
        if await self.links.find_one({"_id": marker}, {"_id": True}) is not None:
            return
        await self._append(chain, value)
        with contextlib.suppress(DuplicateKeyError):
            await self.links.insert_one({"_id": marker, "value": value})

    async def _end(self, chain: str) -> int:
        head = await self.heads.find_one({"_id": chain})
        n = int(head["next"]) if head else 1
        while await self.links.find_one({"_id": f"{chain}:{n}"}, {"_id": True}) is not None:
            n += 1
        return n - 1

    async def _values(self, chain: str) -> list[str]:
        numbers = list(range(1, await self._end(chain) + 1))
        links = await gather_in_chunks(
            numbers, lambda n: self.links.find_one({"_id": f"{chain}:{n}"})
        )
        return list(dict.fromkeys(str(link["value"]) for link in links if link is not None))

    # ------------------------------------------------------------------ writing
    async def add_day(self, day: date) -> None:
        await self._add_once(f"day:{day:%Y%m%d}", DAYS, f"{day:%Y%m%d}")

    async def add_parcel(self, lot_id: str, colis_id: str) -> None:
        await self._add_once(f"parcel:{colis_id}", parcels_chain(lot_id), colis_id)

    async def lot_parcels(self, lot_id: str, limit: int) -> list[Doc]:
        """The lot's parcels in the order they were created (a removed one is skipped)."""
        ids = (await self._values(parcels_chain(lot_id)))[:limit]
        docs = await gather_in_chunks(ids, lambda i: self.colis.find_one({"_id": i}))
        return [d for d in docs if d is not None]

    async def refresh_totals(self, lot_id: str) -> None:
        """The lot's parcel count and total price, summed from its chain (the parcels not
        priced yet count, for nothing). Two writers at once may store a sum one parcel
        behind; the next change of the lot, or its closing, stores it right."""
        parcels = await self.lot_parcels(lot_id, 10**6)
        prices = [Decimal(str(p["prix"])) for p in parcels if p.get("prix") not in (None, "")]
        devise = next((p["devise"] for p in parcels if p.get("devise")), None)
        fields = {"colis_count": len(parcels), "total_prix": str(sum(prices, Decimal(0)))}
        await self.lots.update_one({"_id": lot_id}, {"$set": {**fields, "devise": devise}})

    # ------------------------------------------------------------------ reading
    async def day_lots(self, day: str) -> list[Doc]:
        """The lots of one day (`YYYYMMDD`), by number."""
        found: list[str] = []
        when = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        for kind in _TYPES_IN_ORDER:
            counter = 1
            while True:
                numero = format_lot_number(kind, when, counter)
                reserved = await self.lot_numbers.find_one({"_id": numero})
                if reserved is None:
                    break
                found.append(str(reserved["lot_id"]))
                counter += 1
        docs = await gather_in_chunks(found, lambda i: self.lots.find_one({"_id": i}))
        return [d for d in docs if d is not None]  # a number whose lot was never stored

    async def page(self, statut: str | None, limit: int, cursor: str | None) -> Doc:
        """`{items, next_cursor}`: up to `limit` lots, newest day first, by number within
        a day, after the lot the cursor names. Each page reads its own lots and days by
        `_id`, whatever the length of history."""
        limit = max(1, min(limit, MAX_PAGE))
        link, after = decode_cursor(cursor) if cursor else (await self._end(DAYS), None)
        items: list[Doc] = []
        examined = 0
        done: set[str] = set()  # a day chained twice (see above) is listed once
        while link >= 1:
            stored = await self.links.find_one({"_id": f"{DAYS}:{link}"})
            day = str(stored["value"]) if stored else None
            if day is None or day in done:
                link -= 1
                continue
            for lot in await self.day_lots(day):
                if after is not None and number_order(lot["numero_lot"]) <= number_order(after):
                    continue
                examined += 1
                if statut is None or lot["statut"] == statut:
                    items.append(lot)
                if len(items) == limit or examined == EXAMINED_PER_PAGE:
                    return {"items": items, "next_cursor": encode_cursor(link, lot["numero_lot"])}
            after = None
            done.add(day)
            link -= 1
        return {"items": items, "next_cursor": None}

    # ------------------------------------------------------------------ start-up
    async def list_unlisted(self) -> None:
        """Chain the lots and parcels stored before the chains existed: one scan of each
        at start-up (as `ColisRepository.list_open_tasks`), then flags make it a no-op."""
        unlisted = []
        async for lot in self.lots.find({"listed": {"$ne": True}}, {"numero_lot": 1}):
            try:
                unlisted.append((parse_lot_number(lot["numero_lot"])[1], lot))
            except (KeyError, TypeError, ValueError):
                # one lot not of ours must not stop the service from starting (it did:
                # a seeded lot numbered ...000); it stays out of the list, said once
                logger.warning(
                    "lot left out of the list: not a lot number",
                    extra={"lot_id": lot["_id"], "numero_lot": str(lot.get("numero_lot"))[:64]},
                )
        for day in sorted({day for day, _ in unlisted}):
            await self.add_day(day)  # oldest first: the chain's order is the list's
        for _, lot in unlisted:
            await self.lots.update_one({"_id": lot["_id"]}, {"$set": {"listed": True}})
        touched: set[str] = set()
        async for parcel in self.colis.find({"listed": {"$ne": True}}, {"lot_id": True}):
            await self.add_parcel(parcel["lot_id"], parcel["_id"])
            await self.colis.update_one({"_id": parcel["_id"]}, {"$set": {"listed": True}})
            touched.add(parcel["lot_id"])
        for lot_id in touched:
            await self.refresh_totals(lot_id)
