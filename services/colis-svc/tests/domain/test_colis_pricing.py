"""Prices from the tariff: exact examples per transport, the minimum, rounding, properties."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colis_svc.domain import DEFAULT_TARIFF, Tariff, minor_units, price
from jauge_shared.contracts import ColisData, TransportType

XOF = Tariff(
    devise="XOF",
    minimum=Decimal(5000),
    cargo_par_kg=Decimal(10000),
    express_par_kg=Decimal(15000),
    bateau_par_m3=Decimal(300000),
)
EUR = Tariff(
    devise="EUR",
    minimum=Decimal("5.00"),
    cargo_par_kg=Decimal("5.00"),
    express_par_kg=Decimal("7.50"),
    bateau_par_m3=Decimal("450"),
)


def colis(transport: str, dims: tuple[str, str, str], poids: str) -> ColisData:
    longueur, largeur, hauteur = dims
    return ColisData(
        client_id="c1",
        type_transport=TransportType(transport),
        longueur=Decimal(longueur),
        largeur=Decimal(largeur),
        hauteur=Decimal(hauteur),
        poids=Decimal(poids),
    )


@pytest.mark.parametrize(
    ("data", "amount", "chargeable", "basis"),
    [
        # cargo, the real weight wins: 30×40×50/5000 = 12 kg < 15 kg
        (colis("cargo", ("30", "40", "50"), "15"), "150000", "15", "kg"),
        # cargo, the volumetric weight wins: 12 kg > 10 kg
        (colis("cargo", ("30", "40", "50"), "10"), "120000", "12", "kg"),
        # express: 50×50×50/5000 = 25 kg > 8 kg, at 15 000 XOF/kg
        (colis("express", ("50", "50", "50"), "8"), "375000", "25", "kg"),
        # bateau: 100×80×60 cm = 0.48 m³ at 300 000 XOF/m³; the weight plays no part
        (colis("bateau", ("100", "80", "60"), "900"), "144000", "0.48", "m3"),
        (colis("bateau", ("100", "100", "100"), "1"), "300000", "1", "m3"),
    ],
)
def test_exact_prices_per_transport(
    data: ColisData, amount: str, chargeable: str, basis: str
) -> None:
    quote = price(data, XOF)
    assert quote.amount == Decimal(amount)
    assert str(quote.amount) == amount  # whole francs, no ".00"
    assert quote.chargeable == Decimal(chargeable)
    assert quote.basis == basis
    assert quote.devise == "XOF"
    assert not quote.minimum_applied


@pytest.mark.parametrize("transport", ["cargo", "express", "bateau"])
def test_small_parcels_pay_the_minimum(transport: str) -> None:
    # 0.3 kg × 10 000 = 3 000; 0.3 kg × 15 000 = 4 500; 0.001 m³ × 300 000 = 300
    quote = price(colis(transport, ("10", "10", "10"), "0.3"), XOF)
    assert quote.amount == Decimal(5000)
    assert quote.minimum_applied
    assert "minimum du tarif appliqué : 5\u202f000 XOF" in quote.detail


def test_xof_rounds_half_up_to_the_franc() -> None:
    # 1.23445 kg × 10 000 = 12 344.5 → 12 345 (banker's rounding would give 12 344)
    quote = price(colis("cargo", ("10", "10", "10"), "1.23445"), XOF)
    assert quote.amount == Decimal(12345)
    assert quote.amount.as_tuple().exponent == 0


def test_eur_rounds_half_up_to_the_cent() -> None:
    # 1.001 kg × 5.00 = 5.005 → 5.01
    quote = price(colis("cargo", ("10", "10", "10"), "1.001"), EUR)
    assert quote.amount == Decimal("5.01")
    assert str(quote.amount) == "5.01"


def test_eur_minimum_keeps_its_cents() -> None:
    quote = price(colis("express", ("10", "10", "10"), "0.5"), EUR)  # 3.75 < 5.00
    assert str(quote.amount) == "5.00"
    assert quote.minimum_applied


def test_eur_sea_freight() -> None:
    # 120×80×50 = 0.48 m³ × 450 = 216.00
    quote = price(colis("bateau", ("120", "80", "50"), "3"), EUR)
    assert str(quote.amount) == "216.00"


def test_detail_explains_the_price_in_french() -> None:
    quote = price(colis("cargo", ("30", "40", "50"), "10"), XOF)
    assert quote.detail == (
        "Poids taxable 12 kg (réel 10 kg, volumétrique 12 kg) × 10\u202f000 XOF/kg "
        "= 120\u202f000 XOF"
    )
    sea = price(colis("bateau", ("100", "80", "60"), "1"), XOF)
    assert sea.detail == "Volume 0,48 m³ × 300\u202f000 XOF/m³ = 144\u202f000 XOF"


def test_tariff_document_has_design_shape_and_round_trips() -> None:
    doc = XOF.to_document()
    assert doc == {
        "devise": "XOF",
        "minimum": "5000",
        "tarifs": {
            "cargo": {"par_kg": "10000"},
            "express": {"par_kg": "15000"},
            "bateau": {"par_m3": "300000"},
        },
    }
    assert Tariff.from_document(doc) == XOF
    assert Tariff.from_document(EUR.to_document()) == EUR
    assert Tariff.from_document(DEFAULT_TARIFF.to_document()) == DEFAULT_TARIFF


def test_tariff_document_accepts_json_numbers() -> None:
    doc = {
        "devise": "eur",
        "minimum": 5,
        "tarifs": {"cargo": {"par_kg": 7.1}, "express": {"par_kg": "9"}, "bateau": {"par_m3": 450}},
    }
    tariff = Tariff.from_document(doc)
    assert tariff.devise == "EUR"
    # str() first: not 7.0999999999999996447286321199499070644378662109375
    assert tariff.cargo_par_kg == Decimal("7.1")


@pytest.mark.parametrize(
    "doc",
    [
        {"devise": "XOF", "minimum": "5000"},
        {"devise": "XOF", "minimum": "5000", "tarifs": {"cargo": {"par_kg": "1"}}},
        {
            "devise": "XOF",
            "minimum": "abc",
            "tarifs": {"cargo": {"par_kg": 1}, "express": {"par_kg": 1}, "bateau": {"par_m3": 1}},
        },
        {
            "devise": "XOF",
            "minimum": True,
            "tarifs": {"cargo": {"par_kg": 1}, "express": {"par_kg": 1}, "bateau": {"par_m3": 1}},
        },
    ],
)
def test_broken_tariff_documents_are_rejected(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the defect
        Tariff.from_document(doc)


def test_tariff_invariants() -> None:
    with pytest.raises(ValueError, match="negative"):
        Tariff("XOF", Decimal(0), Decimal(-1), Decimal(1), Decimal(1))
    with pytest.raises(ValueError, match="whole amount"):
        Tariff("XOF", Decimal("0.5"), Decimal(1), Decimal(1), Decimal(1))
    with pytest.raises(ValueError, match="ISO 4217"):
        Tariff("francs", Decimal(0), Decimal(1), Decimal(1), Decimal(1))
    with pytest.raises(ValueError, match="finite"):
        Tariff("EUR", Decimal(0), Decimal("NaN"), Decimal(1), Decimal(1))


# Properties ---------------------------------------------------------------------------

sides = st.decimals(min_value=Decimal("0.1"), max_value=Decimal("500"), places=1)
weights = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("5000"), places=3)
transports = st.sampled_from(list(TransportType))
parcels = st.builds(
    ColisData,
    client_id=st.just("c1"),
    type_transport=transports,
    longueur=sides,
    largeur=sides,
    hauteur=sides,
    poids=weights,
)
rates = st.decimals(min_value=Decimal(0), max_value=Decimal(1_000_000), places=2)


@st.composite
def tariffs(draw: st.DrawFn) -> Tariff:
    devise = draw(st.sampled_from(["XOF", "EUR", "USD", "XAF"]))
    places = minor_units(devise)
    minimum = draw(st.decimals(min_value=Decimal(0), max_value=Decimal(100_000), places=places))
    return Tariff(devise, minimum, draw(rates), draw(rates), draw(rates))


@given(parcels, tariffs())
def test_price_is_never_below_the_minimum_and_is_in_currency_units(
    data: ColisData, tariff: Tariff
) -> None:
    quote = price(data, tariff)
    assert quote.amount >= tariff.minimum
    assert quote.amount.as_tuple().exponent == -minor_units(tariff.devise)


@given(parcels, tariffs())
def test_volumetric_rule(data: ColisData, tariff: Tariff) -> None:
    quote = price(data, tariff)
    volume = data.longueur * data.largeur * data.hauteur
    if data.type_transport is TransportType.BATEAU:
        chargeable = volume / Decimal(1_000_000)
        rate = tariff.bateau_par_m3
        assert quote.basis == "m3"
    else:
        chargeable = max(data.poids, volume / Decimal(5000))
        rate = (
            tariff.cargo_par_kg
            if data.type_transport is TransportType.CARGO
            else tariff.express_par_kg
        )
        assert quote.basis == "kg"
        assert quote.chargeable >= data.poids
    assert quote.chargeable == chargeable
    unit = Decimal(1).scaleb(-minor_units(tariff.devise))
    expected = max(chargeable * rate, tariff.minimum).quantize(unit, rounding=ROUND_HALF_UP)
    assert quote.amount == expected


@given(parcels, weights, tariffs())
def test_a_heavier_parcel_never_costs_less(data: ColisData, extra: Decimal, tariff: Tariff) -> None:
    heavier = data.model_copy(update={"poids": data.poids + extra})
    assert price(heavier, tariff).amount >= price(data, tariff).amount
