"""The seed writes what the services read: a lot number colis-svc cannot parse stopped
colis-svc from starting on a seeded store."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from colis_svc.domain import parse_lot_number
from jauge_tools.seed import parcels


def test_every_seeded_lot_number_is_one_colis_svc_reads_and_unique() -> None:
    seeded = parcels(1000, ["alice"], datetime(2026, 12, 7, tzinfo=UTC), random.Random(1))
    numbers = [lot["numero_lot"] for lot in seeded["lots"]]
    assert len(set(numbers)) == len(numbers) == 10
    for number in numbers:
        parse_lot_number(number)  # raises on a number not of colis-svc's format
