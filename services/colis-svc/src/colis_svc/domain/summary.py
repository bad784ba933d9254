"""The short description of a parcel that the task dashboard shows, in French."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from jauge_shared.contracts import ColisData, TransportType

# French typography groups thousands with a narrow no-break space, so "1 250" never wraps.
_THOUSANDS = "\u202f"

TRANSPORT_LABELS: dict[TransportType, str] = {
    TransportType.CARGO: "Cargo",
    TransportType.EXPRESS: "Express",
    TransportType.BATEAU: "Bateau",
}


def format_fr(value: Decimal, places: int | None = None) -> str:
    """`Decimal("1250.5")` → "1 250,5"; with `places`, a fixed number of decimals."""
    if places is None:
        number = value.normalize()
    else:
        number = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if number.is_zero():
        number = abs(number)  # no "-0" on screen
    # "f" formatting, because normalize() may leave an exponent ("3E+1" for 30).
    text = format(number, "f")
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, fraction = text.partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        whole, tail = whole[:-3], whole[-3:]
        groups.insert(0, tail)
    grouped = _THOUSANDS.join([whole, *groups])
    return f"{sign}{grouped},{fraction}" if fraction else f"{sign}{grouped}"


def format_dimensions(data: ColisData) -> str:
    """Length × width × height as the agent typed them: "30×40×50 cm"."""
    sides = (data.longueur, data.largeur, data.hauteur)
    return "×".join(format_fr(side) for side in sides) + " cm"


def summarize(data: ColisData, client_name: str | None) -> dict[str, str]:
    """Strings only, so the summary is stored and sent as is (no Decimal in BSON or JSON)."""
    transport = TransportType(data.type_transport)
    return {
        "client": client_name or data.client_id,
        "client_id": data.client_id,
        "transport": transport.value,
        "transport_label": TRANSPORT_LABELS[transport],
        "poids": f"{format_fr(data.poids)} kg",
        "dimensions": format_dimensions(data),
    }
