"""Lot numbers, the per-day counter key, the open-lot rule, tracking numbers."""

from __future__ import annotations

import random
import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colis_svc.domain import (
    TRACKING_ALPHABET,
    LotStatut,
    PermanentTaskError,
    can_change_lot_statut,
    counter_key,
    ensure_open,
    format_lot_number,
    make_tracking_number,
    normalize_tracking_number,
    parse_lot_number,
)
from jauge_shared.contracts import TransportType

DAY = date(2026, 11, 22)


@pytest.mark.parametrize(
    ("type_lot", "counter", "expected"),
    [
        ("cargo", 1, "CARGO-20261122001"),
        (TransportType.EXPRESS, 42, "EXPRESS-20261122042"),
        ("bateau", 999, "BATEAU-20261122999"),
        ("cargo", 1000, "CARGO-202611221000"),  # grows instead of wrapping
        ("cargo", 123456, "CARGO-20261122123456"),
    ],
)
def test_format_lot_number(type_lot: str, counter: int, expected: str) -> None:
    assert format_lot_number(type_lot, DAY, counter) == expected


def test_lot_number_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        format_lot_number("cargo", DAY, 0)
    with pytest.raises(ValueError, match="avion"):
        format_lot_number("avion", DAY, 1)
    for bad in ["CARGO-20261122000", "CARGO-2026112201", "CARGO-202611220001", "X-1", ""]:
        with pytest.raises(ValueError, match=r"not a lot number|is not a valid"):
            parse_lot_number(bad)


@given(
    st.sampled_from(list(TransportType)),
    st.dates(min_value=date(2000, 1, 1), max_value=date(9999, 12, 31)),
    st.integers(min_value=1, max_value=10**7),
)
def test_lot_number_maps_back_to_exactly_one_type_day_and_counter(
    type_lot: TransportType, day: date, counter: int
) -> None:
    # A lossless inverse means two different (type, day, counter) never share a number.
    assert parse_lot_number(format_lot_number(type_lot, day, counter)) == (type_lot, day, counter)


def test_counter_key_is_per_type_and_per_day() -> None:
    assert counter_key("cargo", DAY) == "lot:cargo:20261122"
    keys = {counter_key(t, d) for t in TransportType for d in (DAY, date(2026, 11, 23))}
    assert len(keys) == 6


def test_open_lot_accepts_parcels() -> None:
    ensure_open("ouvert")
    ensure_open(LotStatut.OUVERT, "CARGO-20261122001")


@pytest.mark.parametrize(
    ("statut", "message"),
    [
        ("ferme", "Le lot CARGO-20261122001 est fermé : impossible d'y ajouter un colis."),
        (LotStatut.EXPEDIE, "Le lot CARGO-20261122001 est déjà expédié"),
        ("perdu", "Le lot CARGO-20261122001 a un statut inconnu"),
    ],
)
def test_closed_lot_is_a_permanent_error(statut: str, message: str) -> None:
    with pytest.raises(PermanentTaskError, match=re.escape(message)) as caught:
        ensure_open(statut, "CARGO-20261122001")
    assert caught.value.message.startswith("Le lot")


def test_lot_statut_only_moves_forward() -> None:
    assert can_change_lot_statut("ouvert", "ferme")
    assert can_change_lot_statut(LotStatut.FERME, LotStatut.EXPEDIE)
    assert not can_change_lot_statut("ferme", "ouvert")
    assert not can_change_lot_statut("ouvert", "expedie")
    assert not can_change_lot_statut("expedie", "ferme")
    assert not can_change_lot_statut("ouvert", "perdu")


def test_tracking_number_shape() -> None:
    number = make_tracking_number(DAY)
    assert re.fullmatch(r"TS20261122-[0-9A-HJKMNP-TV-Z]{8}", number), number
    assert not set("ILOU") & set(TRACKING_ALPHABET)


def test_tracking_numbers_are_reproducible_with_a_seeded_rng() -> None:
    first = make_tracking_number(DAY, rng=random.Random(3))
    assert first == make_tracking_number(DAY, rng=random.Random(3))


def test_tracking_numbers_do_not_repeat() -> None:
    numbers = {make_tracking_number(DAY) for _ in range(20_000)}
    assert len(numbers) == 20_000


def test_normalize_tracking_number_forgives_typing() -> None:
    number = make_tracking_number(DAY, rng=random.Random(5))
    assert normalize_tracking_number(number) == number
    typed = " " + number.lower().replace("-", " ") + " "
    assert normalize_tracking_number(typed) == number
    assert normalize_tracking_number("ts20261122-0o1il000") == "TS20261122-00111000"
    assert normalize_tracking_number("TS20261122-ABCDEFGU") is None  # U is never issued
    assert normalize_tracking_number("CARGO-20261122001") is None
    assert normalize_tracking_number("") is None
