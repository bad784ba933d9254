"""Deterministic, realistic import files for tests and benchmarks.

Same arguments, same bytes: randomness comes from a generator seeded with the arguments,
never from the clock. Everything is pure and cheap, so tests can build batches of
hundreds of files. Deliberate defects (wrong UNT count, totals that do not add up, a
missing segment, a truncated transfer) are options of the same builders, so a broken
file differs from a good one by exactly the defect under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from import_svc.domain.bbgr import BBGR_COLUMNS
from import_svc.domain.invoices import Invoice, InvoiceLine

CENT = Decimal("0.01")

SUPPLIERS = (
    "Optique Durand SARL",
    "Verres Lefèvre SA",
    "Montures Bernard & Fils",
    "L'Atelier du Verre SARL",  # the apostrophe is EDIFACT's terminator: it gets released
    "Lentilles Moreau SAS",
    "Étuis Chevalier SARL",
    "Laboratoire Optique Fournier",
    "Vision+ Distribution SAS",  # and "+" is the data separator
    "Précision Verrier SAS",
    "Accessoires Girard et Cie",
)
BUYERS = (
    "Opticien Martin Lyon",
    "Optique du Vieux-Port Marseille",
    "Vision Plus Bordeaux",
    "Les Lunettes de Léa Nantes",
    "Optique Saint-Michel Paris 5e",
    "Atelier Visuel Lille",
)
# (description, price range in cents): descriptions fit EDIFACT's an..35.
PRODUCTS = (
    ("Verre unifocal 1.5 antireflet", (1800, 6500)),
    ("Verre progressif photochromique", (9000, 24000)),
    ("Verre solaire polarisé gris", (3500, 9000)),
    ("Monture acétate écaille", (4500, 16000)),
    ("Monture titane sans vis", (8000, 21000)),
    ("Lentilles mensuelles -2.00 (x6)", (1500, 3500)),
    ("Solution multifonction 360 ml", (600, 1400)),
    ("Étui rigide noir", (250, 900)),
    ("Chiffonnette microfibre", (50, 300)),
    ("Cordon à lunettes", (150, 600)),
    ("Spray nettoyant 30 ml", (200, 700)),
    ("Plaquettes silicone : paire", (30, 150)),  # ":" is the component separator
)
_CODECS = {
    "UNOA": "ascii",
    "UNOB": "ascii",
    "UNOC": "latin-1",
    "UNOD": "iso8859-2",
    "UNOW": "utf-8",
    "UNOY": "utf-8",
}


@dataclass(frozen=True, slots=True)
class LineSpec:
    product_code: str
    description: str
    quantity: Decimal
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return (self.quantity * self.unit_price).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class InvoiceSpec:
    """One INVOIC message to write; the defect fields default to a correct message."""

    supplier_id: str
    supplier_name: str
    buyer_id: str
    buyer_name: str
    number: str
    date: dt.date
    lines: tuple[LineSpec, ...]
    credit_note: bool = False
    currency: str = "EUR"
    tax_rate: Decimal = Decimal("20.00")
    # Deliberate defects.
    document_code: str | None = None  # BGM code instead of 380/381
    message_type: str = "INVOIC"
    unt_count_delta: int = 0  # added to the true UNT segment count
    unt_ref: str | None = None  # UNT reference instead of UNH's
    net_delta: Decimal = Decimal(0)  # added to MOA+79 only
    gross_delta: Decimal = Decimal(0)  # added to MOA+77 only
    omit: tuple[str, ...] = ()  # segments left out: "DTM", "NAD+SU", "MOA+176", ...

    @property
    def net(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    @property
    def tax(self) -> Decimal:
        return (self.net * self.tax_rate / 100).quantize(CENT, ROUND_HALF_UP)

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax

    def expected(self, syntax: str = "UNOC") -> Invoice:
        """The invoice parse_invoic must read back from this (defect-free) message."""

        def text(value: str) -> str:
            return _fold(value) if _CODECS.get(syntax) == "ascii" else value

        return Invoice(
            supplier_id=self.supplier_id,
            supplier_name=text(self.supplier_name),
            buyer_id=self.buyer_id,
            buyer_name=text(self.buyer_name),
            number=self.number,
            type="credit_note" if self.credit_note else "invoice",
            date=self.date,
            currency=self.currency,
            lines=tuple(
                InvoiceLine(
                    number=n,
                    product_code=line.product_code,
                    description=text(line.description),
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    amount=line.amount,
                )
                for n, line in enumerate(self.lines, 1)
            ),
            net=self.net,
            tax=self.tax,
            gross=self.gross,
            tax_rate=self.tax_rate,
        )


def ean13(body: str) -> str:
    """Twelve digits plus their check digit: codes look real to anyone who checks."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def supplier_id(supplier_no: int) -> str:
    return ean13(f"301{supplier_no % 10**9:09d}")


def sample_invoice(
    supplier_no: int,
    number: str,
    n_lines: int,
    credit_note: bool = False,
    *,
    date: dt.date | None = None,
    tax_rate: Decimal = Decimal("20.00"),
    currency: str = "EUR",
    seed: int = 0,
) -> InvoiceSpec:
    """A plausible invoice (or credit note) of supplier `supplier_no` with n_lines lines."""
    rng = random.Random(f"invoice/{supplier_no}/{number}/{n_lines}/{credit_note}/{seed}")
    lines = []
    for _ in range(n_lines):
        description, (low, high) = rng.choice(PRODUCTS)
        lines.append(
            LineSpec(
                product_code=ean13(f"376{rng.randrange(10**9):09d}"),
                description=description,
                quantity=Decimal(rng.randint(1, 3) if credit_note else rng.randint(1, 12)),
                unit_price=Decimal(rng.randint(low, high)) / 100,
            )
        )
    return InvoiceSpec(
        supplier_id=supplier_id(supplier_no),
        supplier_name=SUPPLIERS[supplier_no % len(SUPPLIERS)],
        buyer_id=ean13(f"302{rng.randrange(10**9):09d}"),
        buyer_name=rng.choice(BUYERS),
        number=number,
        date=date or dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(366)),
        lines=tuple(lines),
        credit_note=credit_note,
        currency=currency,
        tax_rate=tax_rate,
    )


def make_interchange(
    messages: Sequence[InvoiceSpec],
    *,
    sender: str = "3012345000004",
    receiver: str = "3098765000001",
    ref: str = "1",
    syntax: str = "UNOC",
    una: bool = True,
    decimal_mark: str = ".",
    newlines: bool = True,
    prepared: dt.datetime = dt.datetime(2024, 3, 1, 8, 30),
    unz_count_delta: int = 0,
    truncated: bool = False,
) -> bytes:
    """An INVOIC D.96A interchange holding `messages`, encoded as `syntax` declares.

    `truncated` cuts the file in the middle of its last message, like an interrupted
    transfer. UNOA/UNOB text is folded to ASCII (accents dropped).
    """
    segments: list[str] = []
    if una:
        segments.append(f"UNA:+{decimal_mark}? '")
    segments.append(
        _segment(
            "UNB",
            (syntax, "3"),
            (sender, "14"),
            (receiver, "14"),
            (f"{prepared:%y%m%d}", f"{prepared:%H%M}"),
            ref,
        )
    )
    last_message_at = 0
    for index, spec in enumerate(messages, 1):
        last_message_at = len(segments)
        segments += _message_segments(spec, f"{index:04d}", decimal_mark)
    segments.append(_segment("UNZ", str(len(messages) + unz_count_delta), ref))

    separator = "\n" if newlines else ""
    text = separator.join(segments) + separator
    if truncated:
        head = separator.join(segments[:last_message_at]) + separator
        last = separator.join(segments[last_message_at:-1])
        text = head + last[: len(last) // 2]
    codec = _CODECS[syntax]
    return (_fold(text) if codec == "ascii" else text).encode(codec)


def _message_segments(spec: InvoiceSpec, ref: str, decimal_mark: str) -> list[str]:
    def amount(value: Decimal) -> str:
        return f"{value:f}".replace(".", decimal_mark)

    code = spec.document_code or ("381" if spec.credit_note else "380")
    keyed: list[tuple[str, str]] = [
        ("UNH", _segment("UNH", ref, (spec.message_type, "D", "96A", "UN"))),
        ("BGM", _segment("BGM", code, spec.number, "9")),
        ("DTM+137", _segment("DTM", ("137", f"{spec.date:%Y%m%d}", "102"))),
        ("NAD+SU", _segment("NAD", "SU", (spec.supplier_id, "", "9"), "", spec.supplier_name)),
        ("NAD+BY", _segment("NAD", "BY", (spec.buyer_id, "", "9"), "", spec.buyer_name)),
        ("CUX", _segment("CUX", ("2", spec.currency, "4"))),
    ]
    for n, line in enumerate(spec.lines, 1):
        keyed += [
            ("LIN", _segment("LIN", str(n), "", (line.product_code, "EN"))),
            ("IMD", _segment("IMD", "F", "", ("", "", "", line.description))),
            ("QTY+47", _segment("QTY", ("47", amount(line.quantity), "PCE"))),
            ("MOA+203", _segment("MOA", ("203", amount(line.amount)))),
            ("PRI+AAA", _segment("PRI", ("AAA", amount(line.unit_price)))),
        ]
    net, tax = spec.net, spec.tax
    keyed += [
        ("UNS", _segment("UNS", "S")),
        ("CNT", _segment("CNT", ("2", str(len(spec.lines))))),
        ("MOA+79", _segment("MOA", ("79", amount(net + spec.net_delta)))),
        ("MOA+125", _segment("MOA", ("125", amount(net)))),
        ("MOA+176", _segment("MOA", ("176", amount(tax)))),
        ("MOA+77", _segment("MOA", ("77", amount(net + tax + spec.gross_delta)))),
        ("TAX", _segment("TAX", "7", "VAT", "", "", ("", "", "", amount(spec.tax_rate)), "S")),
        ("MOA+124", _segment("MOA", ("124", amount(tax)))),
    ]
    kept = [text for key, text in keyed if not _omitted(key, spec.omit)]
    count = len(kept) + 1 + spec.unt_count_delta
    return [*kept, _segment("UNT", str(count), spec.unt_ref if spec.unt_ref is not None else ref)]


def _omitted(key: str, omit: tuple[str, ...]) -> bool:
    return key in omit or key.split("+")[0] in omit


_RELEASED = str.maketrans({char: "?" + char for char in "?:+'"})


def _release(text: str) -> str:
    return text.translate(_RELEASED)


def _segment(tag: str, *elements: str | tuple[str, ...]) -> str:
    parts = [tag]
    for element in elements:
        if isinstance(element, tuple):
            components = list(element)
            while components and not components[-1]:
                components.pop()
            parts.append(":".join(_release(c) for c in components))
        else:
            parts.append(_release(element))
    while len(parts) > 1 and not parts[-1]:
        parts.pop()
    return "+".join(parts) + "'"


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


# --- BBGR --------------------------------------------------------------------------------

# Headers as the BBGR exports spell them; the reader matches them without case or accents.
BBGR_HEADERS = {
    "bbgr_statment": ("Date", "Référence", "Libellé", "Débit", "Crédit", "Solde"),
    "bbgr_monthly": ("Mois", "Code client", "Client", "CA HT", "Remises", "CA net"),
    "bbgr_retours": (
        "Date",
        "Numéro retour",
        "Code article",
        "Désignation",
        "Quantité",
        "Motif",
    ),
    "bbgr_receptions": (
        "Date",
        "Numéro BL",
        "Code article",
        "Désignation",
        "Quantité commandée",
        "Quantité reçue",
    ),
}
RETURN_REASONS = ("Casse", "Erreur de commande", "Défaut de traitement", "Non conforme", "")


def french_decimal(value: Decimal) -> str:
    return f"{value:f}".replace(".", ",")


def make_bbgr_csv(
    kind: str,
    n_rows: int,
    bad_rows: Iterable[int] = (),
    *,
    seed: int = 0,
    encoding: str = "utf-8-sig",
) -> bytes:
    """A BBGR export of `kind` with n_rows data rows, as Excel writes it (";", CRLF).

    `bad_rows` are 1-based data row numbers to spoil (row i is on line i + 1 of the file):
    an impossible date, a malformed amount or quantity, depending on the kind.
    """
    if kind not in BBGR_COLUMNS:
        raise ValueError(f"unknown BBGR kind {kind!r}")
    rng = random.Random(f"bbgr/{kind}/{n_rows}/{seed}")
    spoiled = set(bad_rows)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(BBGR_HEADERS[kind])
    make_row, spoil = _BBGR_ROWS[kind]
    state: dict[str, Decimal] = {"solde": Decimal("0.00")}
    for n in range(1, n_rows + 1):
        row = make_row(rng, n, state)
        writer.writerow(spoil(row) if n in spoiled else row)
    return out.getvalue().encode(encoding)


def _day(n: int) -> str:
    date = dt.date(2024, 1, 1) + dt.timedelta(days=(n - 1) // 3)  # exports are sorted by date
    return f"{date:%d/%m/%Y}"


def _cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)) / 100


def _statement_row(rng: random.Random, n: int, state: dict[str, Decimal]) -> list[str]:
    amount = _cents(rng, 2000, 250000)
    if rng.random() < 0.7:
        label, debit, credit = f"Facture F-{2400000 + n}", french_decimal(amount), ""
        state["solde"] -= amount
    else:
        label, debit, credit = "Règlement par virement", "", french_decimal(amount)
        state["solde"] += amount
    return [_day(n), f"REF{n:07d}", label, debit, credit, french_decimal(state["solde"])]


def _monthly_row(rng: random.Random, n: int, state: dict[str, Decimal]) -> list[str]:
    ca_ht = _cents(rng, 50000, 5000000)
    remises = (ca_ht * rng.randint(0, 15) / 100).quantize(CENT, ROUND_HALF_UP)
    month = 1 + (n - 1) % 12
    return [
        f"{month:02d}/2024",
        f"C{rng.randrange(100000):05d}",
        rng.choice(BUYERS),
        french_decimal(ca_ht),
        french_decimal(remises),
        french_decimal(ca_ht - remises),
    ]


def _returns_row(rng: random.Random, n: int, state: dict[str, Decimal]) -> list[str]:
    return [
        _day(n),
        f"RET-{n:06d}",
        ean13(f"376{rng.randrange(10**9):09d}"),
        rng.choice(PRODUCTS)[0],
        str(rng.randint(1, 5)),
        rng.choice(RETURN_REASONS),
    ]


def _receptions_row(rng: random.Random, n: int, state: dict[str, Decimal]) -> list[str]:
    ordered = rng.randint(1, 20)
    received = ordered if rng.random() < 0.8 else rng.randint(0, ordered)
    return [
        _day(n),
        f"BL{240000 + n:08d}",
        ean13(f"376{rng.randrange(10**9):09d}"),
        rng.choice(PRODUCTS)[0],
        str(ordered),
        str(received),
    ]


def _spoil(index: int, value: str) -> Callable[[list[str]], list[str]]:
    def spoil(row: list[str]) -> list[str]:
        return [value if i == index else cell for i, cell in enumerate(row)]

    return spoil


_BBGR_ROWS: dict[
    str,
    tuple[
        Callable[[random.Random, int, dict[str, Decimal]], list[str]],
        Callable[[list[str]], list[str]],
    ],
] = {
    "bbgr_statment": (_statement_row, _spoil(0, "31/02/2024")),
    "bbgr_monthly": (_monthly_row, _spoil(3, "12,5x")),
    "bbgr_retours": (_returns_row, _spoil(4, "deux")),
    "bbgr_receptions": (_receptions_row, _spoil(0, "2024-13-01")),
}
