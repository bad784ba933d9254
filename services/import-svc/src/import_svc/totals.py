"""Supplier totals by deltas: what one import changed, per supplier, from what it stored.

The totals (counts and signed sums of each supplier's invoices and credit notes) used to
be recomputed from every invoice of the suppliers an import touched, a scan that grew
with the history. Now each file's result records, for every invoice it wrote, the
invoice as it was before this import (`before`, none for a new one) and as the file
wrote it (`after`); the end of the import adds up `after - before` per supplier and
adds that to the totals once (repository.apply_supplier_deltas). Pure functions here.

Why it is exact under redelivery and crashes (docs/imports.md, "Supplier totals"):
- a file's result is recorded (first record wins) *before* its invoices are written,
  so a file read again after a crash keeps the `before` of its first reading, not its
  own write;
- an invoice written by several files of one import is counted from the state before
  the import (the `before` that is not this import's own write) to the state after it
  (read from the store at the end), once;
- an invoice dropped as an orphan is recorded before it is deleted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

Doc = dict[str, Any]
AMOUNTS = ("net", "tax", "gross")


def counted(invoice: Doc | None) -> Doc:
    """What the totals count of one stored invoice (zero for none)."""
    entry: Doc = {"invoices": 0, "credit_notes": 0, **{f: Decimal(0) for f in AMOUNTS}}
    if invoice is None:
        return entry
    credit = invoice.get("type") == "credit_note"
    entry["credit_notes" if credit else "invoices"] = 1
    sign = -1 if credit else 1  # credit notes carry positive amounts
    for f in AMOUNTS:
        entry[f] = sign * Decimal(invoice.get(f) or "0")
    return entry


def snapshot(invoice: Doc | None, job_id: str | None = None) -> Doc | None:
    """The fields of an invoice the totals need, as kept in a file's result."""
    if invoice is None:
        return None
    kept = {k: invoice.get(k) for k in ("type", "supplier_name", *AMOUNTS)}
    return {**kept, "job_id": invoice.get("job_id", job_id)}


def add(delta: Doc, invoice: Doc | None, sign: int) -> None:
    for k, v in counted(invoice).items():
        delta[k] = delta.get(k, 0) + sign * v
    if invoice is not None and sign > 0 and invoice.get("supplier_name"):
        delta["supplier_name"] = invoice["supplier_name"]


def add_totals(current: Doc | None, delta: Doc) -> Doc:
    """A supplier's stored totals plus one job's delta, in the stored form."""
    current = current or {}
    total: Doc = {
        "invoices": int(current.get("invoices", 0)) + int(delta.get("invoices", 0)),
        "credit_notes": int(current.get("credit_notes", 0)) + int(delta.get("credit_notes", 0)),
        "supplier_name": delta.get("supplier_name") or current.get("supplier_name"),
    }
    for f in AMOUNTS:
        total[f] = str(Decimal(current.get(f) or "0") + delta.get(f, Decimal(0)))
    return total


def changes_by_key(job_id: str, files: list[Doc]) -> tuple[dict[str, list[Doc]], set[str]]:
    """Every invoice the job's files wrote, with each file's change of it; and the
    suppliers of results recorded before changes were (whose totals are recomputed)."""
    by_key: dict[str, list[Doc]] = {}
    legacy: set[str] = set()
    for file in files:
        for source in file.get("sources", []):
            if "changes" not in source:
                legacy.add(source["supplier"])
                continue
            for change in source["changes"]:
                by_key.setdefault(change["key"], []).append(
                    {**change, "supplier": source["supplier"]}
                )
    return by_key, legacy


def job_deltas(
    job_id: str,
    by_key: dict[str, list[Doc]],
    now_stored: dict[str, Doc],
    dropped: list[Doc],
) -> dict[str, Doc]:
    """Per supplier, what the job changed: after minus before of each invoice it wrote
    (`now_stored`: the store's state of those written by more than one file), minus
    what it dropped."""
    deltas: dict[str, Doc] = {}
    for key, changes in by_key.items():
        delta = deltas.setdefault(changes[0]["supplier"], {})
        # the invoice before the job: a `before` that is not one of the job's own writes
        befores = [c["before"] for c in changes if (c["before"] or {}).get("job_id") != job_id]
        before = befores[0] if befores else None
        after = changes[0]["after"] if len(changes) == 1 else now_stored.get(key)
        add(delta, after, +1)
        add(delta, before, -1)
    for invoice in dropped:
        add(deltas.setdefault(invoice["supplier_id"], {}), invoice, -1)
    return deltas
