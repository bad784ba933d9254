"""The price of a parcel from the configurable tariff (DESIGN.md, "Domain rules").

Air (`cargo`, `express`) is charged per kg on the larger of the real weight and the
volumetric weight L×W×H(cm)/5000; sea (`bateau`) per m³ on L×W×H(cm)/1,000,000; never
below the tariff's minimum; rounded half-up to the currency unit. Everything is Decimal:
a float would turn 0.1 kg into 0.1000000000000000055511151231257827 kg.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from typing import Any, Literal

from jauge_shared.contracts import ColisData, TransportType

from .summary import format_fr

Basis = Literal["kg", "m3"]

VOLUMETRIC_DIVISOR = Decimal(5000)  # cm³ per chargeable kg, the air-freight convention
CM3_PER_M3 = Decimal(1_000_000)

# Decimals of the currency unit (ISO 4217). The CFA francs have no subunit in use, so an
# XOF price is a whole number; a currency missing here is assumed to have cents.
_MINOR_UNITS: dict[str, int] = {
    "XOF": 0,
    "XAF": 0,
    "GNF": 0,
    "KMF": 0,
    "JPY": 0,
    "KRW": 0,
    "EUR": 2,
    "USD": 2,
    "CNY": 2,
    "GBP": 2,
    "MAD": 2,
}

# A private context: the result must not depend on whatever precision or rounding the
# process-wide context was left with. 40 digits hold 10⁴ cm cubed times any sane rate.
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_UP)


def minor_units(devise: str) -> int:
    return _MINOR_UNITS.get(devise, 2)


def currency_unit(devise: str) -> Decimal:
    """The smallest amount of the currency: `Decimal("1")` for XOF, `Decimal("0.01")` for EUR."""
    return Decimal(1).scaleb(-minor_units(devise))


@dataclass(frozen=True, slots=True)
class Tariff:
    devise: str
    minimum: Decimal
    cargo_par_kg: Decimal
    express_par_kg: Decimal
    bateau_par_m3: Decimal

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z]{3}", self.devise):
            raise ValueError(f"devise must be an ISO 4217 code, got {self.devise!r}")
        for name in ("minimum", "cargo_par_kg", "express_par_kg", "bateau_par_m3"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"{name} must be a finite, non-negative Decimal, got {value!r}")
        # A minimum finer than the currency unit could round below itself.
        if self.minimum != self.minimum.quantize(currency_unit(self.devise)):
            raise ValueError(f"minimum {self.minimum} is not a whole amount of {self.devise}")

    def rate(self, transport: TransportType | str) -> tuple[Decimal, Basis]:
        # Coerced, so a plain "cargo" (an unvalidated model_copy) cannot be priced as sea.
        transport = TransportType(transport)
        if transport == TransportType.CARGO:
            return self.cargo_par_kg, "kg"
        if transport == TransportType.EXPRESS:
            return self.express_par_kg, "kg"
        return self.bateau_par_m3, "m3"

    def to_document(self) -> dict[str, Any]:
        """DESIGN's shape. Amounts are strings: exact in JSON, and storable in FerretDB,
        which (unlike MongoDB) has no Decimal128."""
        return {
            "devise": self.devise,
            "minimum": str(self.minimum),
            "tarifs": {
                "cargo": {"par_kg": str(self.cargo_par_kg)},
                "express": {"par_kg": str(self.express_par_kg)},
                "bateau": {"par_m3": str(self.bateau_par_m3)},
            },
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Tariff:
        """Reads `to_document()`'s shape; amounts may be str, int, float, Decimal or Decimal128."""
        try:
            tarifs = doc["tarifs"]
            return cls(
                devise=str(doc["devise"]).strip().upper(),
                minimum=_to_decimal(doc["minimum"]),
                cargo_par_kg=_to_decimal(tarifs["cargo"]["par_kg"]),
                express_par_kg=_to_decimal(tarifs["express"]["par_kg"]),
                bateau_par_m3=_to_decimal(tarifs["bateau"]["par_m3"]),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"tariff document is incomplete: {e!r}") from e


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):  # bool is an int; True must not become a price of 1
        raise ValueError(f"not an amount: {value!r}")
    if hasattr(value, "to_decimal"):  # bson.Decimal128, without importing bson here
        value = value.to_decimal()
    try:
        # str() first: Decimal(0.1) would keep the float's binary error.
        return value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as e:
        raise ValueError(f"not an amount: {value!r}") from e


# Placeholder rates in CFA francs for a fresh install; the admin's table replaces them.
DEFAULT_TARIFF = Tariff(
    devise="XOF",
    minimum=Decimal(5000),
    cargo_par_kg=Decimal(10000),
    express_par_kg=Decimal(15000),
    bateau_par_m3=Decimal(300000),
)


@dataclass(frozen=True, slots=True)
class PriceQuote:
    amount: Decimal
    devise: str
    chargeable: Decimal  # kg (air) or m³ (sea), exact: not rounded before multiplying
    basis: Basis
    detail: str  # how the amount was reached, in French, for the agent and the client
    minimum_applied: bool


def volume_cm3(data: ColisData) -> Decimal:
    with localcontext(_CONTEXT):
        volume: Decimal = data.longueur * data.largeur * data.hauteur
        return volume


def volumetric_weight(data: ColisData) -> Decimal:
    """kg: what the space taken in an aircraft hold is charged as."""
    with localcontext(_CONTEXT):
        return volume_cm3(data) / VOLUMETRIC_DIVISOR


def volume_m3(data: ColisData) -> Decimal:
    with localcontext(_CONTEXT):
        return volume_cm3(data) / CM3_PER_M3


def price(data: ColisData, tariff: Tariff) -> PriceQuote:
    rate, basis = tariff.rate(data.type_transport)
    unit = currency_unit(tariff.devise)
    with localcontext(_CONTEXT):
        if basis == "kg":
            volumetric = volumetric_weight(data)
            chargeable = max(data.poids, volumetric)
            how = (
                f"Poids taxable {_show(chargeable)} kg (réel {_show(data.poids)} kg, "
                f"volumétrique {_show(volumetric)} kg)"
            )
        else:
            chargeable = volume_m3(data)
            how = f"Volume {_show(chargeable)} m³"
        raw = chargeable * rate
        minimum_applied = raw < tariff.minimum
        amount = max(raw, tariff.minimum).quantize(unit, rounding=ROUND_HALF_UP)

        places = minor_units(tariff.devise)
        per = "kg" if basis == "kg" else "m³"
        detail = (
            f"{how} × {format_fr(rate)} {tariff.devise}/{per} = "
            f"{format_fr(raw, places)} {tariff.devise}"
        )
        if minimum_applied:
            detail += f" ; minimum du tarif appliqué : {format_fr(amount, places)} {tariff.devise}"
    return PriceQuote(
        amount=amount,
        devise=tariff.devise,
        chargeable=chargeable,
        basis=basis,
        detail=detail,
        minimum_applied=minimum_applied,
    )


def _show(quantity: Decimal) -> str:
    """Weights and volumes to at most three decimals: grams and litres are precise enough."""
    return format_fr(quantity.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))
