"""BBGR CSV exports: statement, monthly figures, returns and receptions.

These are spreadsheet exports made by people, so the reader is forgiving where a mistake
cannot change a figure (column order, case and accents of the header, extra columns,
blank lines, UTF-8 or Windows-1252) and strict where it could (amounts, dates,
quantities). A bad row is reported with its line number and does not stop the others;
only a file that cannot be read as a table at all is rejected.

Over 300 lines on purpose: the four kinds' columns, their cell readers and their row
checks are one table read top to bottom; apart, what a BBGR column means would be scattered.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from import_svc.domain.errors import FileRejectedError
from import_svc.domain.invoices import french_amount

ColumnType = Literal["date", "month", "decimal", "int", "text"]
Value = Decimal | dt.date | int | str | None

TOLERANCE = Decimal("0.01")
# Limits that keep one hostile file's time, memory and stored results bounded
# (docs/imports.md, "Limits"). A file's per-row results are kept in one stored document,
# which may not pass 16 MB: 50,000 rows with a reason of at most MAX_ROW_ERROR_BYTES
# (UTF-8) each stay under 14 MB. The largest real export seen, a year of receptions, has
# about 20,000 rows.
MAX_BBGR_BYTES = 16 * 1024 * 1024
MAX_ROWS = 50_000
MAX_COLUMNS = 100
MAX_CELL_CHARS = 1_000
MAX_ROW_ERROR_BYTES = 240


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    required: bool = True


BBGR_COLUMNS: dict[str, tuple[Column, ...]] = {
    "bbgr_statment": (
        Column("date", "date"),
        Column("reference", "text"),
        Column("libelle", "text"),
        Column("debit", "decimal", required=False),
        Column("credit", "decimal", required=False),
        Column("solde", "decimal"),
    ),
    "bbgr_monthly": (
        Column("mois", "month"),
        Column("code_client", "text"),
        Column("client", "text"),
        Column("ca_ht", "decimal"),
        Column("remises", "decimal"),
        Column("ca_net", "decimal"),
    ),
    "bbgr_retours": (
        Column("date", "date"),
        Column("numero_retour", "text"),
        Column("code_article", "text"),
        Column("designation", "text"),
        Column("quantite", "int"),
        Column("motif", "text", required=False),
    ),
    "bbgr_receptions": (
        Column("date", "date"),
        Column("numero_bl", "text"),
        Column("code_article", "text"),
        Column("designation", "text"),
        Column("quantite_commandee", "int"),
        Column("quantite_recue", "int"),
    ),
}

BBGR_LABELS = {
    "bbgr_statment": "relevé BBGR",
    "bbgr_monthly": "synthèse mensuelle BBGR",
    "bbgr_retours": "retours BBGR",
    "bbgr_receptions": "réceptions BBGR",
}


@dataclass(frozen=True, slots=True)
class BbgrRow:
    line_no: int  # line in the file, the header being line 1
    values: Mapping[str, Value] = field(default_factory=dict)  # empty when error is set
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class BbgrFile:
    kind: str
    columns: tuple[str, ...]
    rows: list[BbgrRow]

    @property
    def bad_rows(self) -> list[BbgrRow]:
        return [row for row in self.rows if row.error is not None]


def read_bbgr(kind: str, data: bytes) -> BbgrFile:
    """The rows of one BBGR export; FileRejectedError (French reason) if it is no table."""
    try:
        columns = BBGR_COLUMNS[kind]
    except KeyError:
        raise ValueError(f"unknown BBGR kind {kind!r}") from None
    if len(data) > MAX_BBGR_BYTES:
        raise FileRejectedError(
            f"Le fichier fait {_megabytes(len(data))}, au-delà de la limite de "
            f"{_megabytes(MAX_BBGR_BYTES)} pour un export BBGR : découpez-le en plusieurs "
            "fichiers."
        )
    reader = csv.reader(io.StringIO(_decode(data), newline=""), delimiter=";", quotechar='"')
    try:
        header = next(reader, None)
        while header is not None and _blank(header):
            header = next(reader, None)
        if header is None:
            raise FileRejectedError("Le fichier est vide.")
        positions = _header_positions(kind, header)
        rows: list[BbgrRow] = []
        last_line = reader.line_num
        for cells in reader:
            line_no, last_line = last_line + 1, reader.line_num
            if not _blank(cells):
                if len(rows) == MAX_ROWS:
                    raise FileRejectedError(
                        f"Le fichier compte plus de {_count(MAX_ROWS)} lignes de données "
                        f"(limite atteinte ligne {_count(line_no)}) : il n'est pas importé, "
                        "découpez-le en plusieurs fichiers."
                    )
                rows.append(_read_row(kind, line_no, cells, len(header), positions))
    except csv.Error as e:
        raise FileRejectedError(
            f"Ligne {reader.line_num} : le fichier CSV est mal formé "
            "(guillemets non fermés ou champ démesuré)."
        ) from e
    if not rows:
        raise FileRejectedError("Le fichier ne contient aucune ligne de données après l'en-tête.")
    return BbgrFile(kind=kind, columns=tuple(c.name for c in columns), rows=rows)


def _count(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} Mo".replace(".", ",")


def _decode(data: bytes) -> str:
    if not data.strip():
        raise FileRejectedError("Le fichier est vide.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRejectedError(
            "Le fichier est encodé en UTF-16 : exportez-le en CSV (séparateur point-virgule) "
            "UTF-8 ou Windows-1252."
        )
    if b"\x00" in data:
        raise FileRejectedError(
            "Le fichier contient des octets nuls : c'est un fichier binaire, pas un export CSV."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass  # Excel's "CSV (séparateur : point-virgule)" writes Windows-1252
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as e:
        raise FileRejectedError(
            "Le fichier n'est lisible ni en UTF-8 ni en Windows-1252 "
            f"(octet invalide à la position {e.start + 1})."
        ) from e


def _bounded(reason: str) -> str:
    """`reason`, cut to MAX_ROW_ERROR_BYTES of UTF-8 (a shown cell may be any text)."""
    encoded = reason.encode()
    if len(encoded) <= MAX_ROW_ERROR_BYTES:
        return reason
    return encoded[: MAX_ROW_ERROR_BYTES - 3].decode("utf-8", "ignore") + "…"


def _blank(cells: list[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def normalize_header(name: str) -> str:
    """'Quantité reçue' → 'quantite_recue': headers are matched without case or accents."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")


def _header_positions(kind: str, header: list[str]) -> dict[str, int]:
    expected = [c.name for c in BBGR_COLUMNS[kind]]
    if len(header) > MAX_COLUMNS:
        raise FileRejectedError(
            f"L'en-tête compte {_count(len(header))} colonnes, au-delà de la limite de "
            f"{MAX_COLUMNS} : ce n'est pas un export BBGR."
        )
    names = [normalize_header(cell[:MAX_CELL_CHARS]) for cell in header]
    if len(header) == 1:
        for separator, label in ((",", "virgule"), ("\t", "tabulation")):
            if separator in header[0]:
                raise FileRejectedError(
                    f"Le fichier est séparé par des {label}s : les exports BBGR doivent "
                    "utiliser le point-virgule (;) comme séparateur."
                )
    positions: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in expected:
            if name in positions:
                raise FileRejectedError(f"Colonne « {name} » en double dans l'en-tête.")
            positions[name] = index
    missing = [name for name in expected if name not in positions]
    if len(missing) == len(expected):
        raise FileRejectedError(
            f"En-tête absent ou non reconnu : la première ligne d'un fichier "
            f"{BBGR_LABELS[kind]} doit nommer les colonnes {';'.join(expected)}."
        )
    if missing:
        raise FileRejectedError(
            f"Colonne(s) manquante(s) dans l'en-tête : {', '.join(missing)} "
            f"(attendues pour un fichier {BBGR_LABELS[kind]} : {';'.join(expected)})."
        )
    return positions


def _read_row(
    kind: str, line_no: int, cells: list[str], width: int, positions: dict[str, int]
) -> BbgrRow:
    if len(cells) < width or any(cell.strip() for cell in cells[width:]):
        return BbgrRow(line_no, error=f"{_count(len(cells))} champs au lieu de {width}")
    longest = max(len(cell) for cell in cells)
    if longest > MAX_CELL_CHARS:
        return BbgrRow(
            line_no,
            error=f"un champ de {_count(longest)} caractères (au plus {_count(MAX_CELL_CHARS)})",
        )
    values: dict[str, Value] = {}
    problems: list[str] = []
    for column in BBGR_COLUMNS[kind]:
        raw = cells[positions[column.name]].strip()
        if not raw:
            if column.required:
                problems.append(f"colonne « {column.name} » vide")
            values[column.name] = None
            continue
        try:
            values[column.name] = _PARSERS[column.type](raw)
        except ValueError as e:
            shown = raw if len(raw) <= 40 else raw[:40] + "…"
            problems.append(f"{column.name} « {shown} » invalide ({e})")
    if not problems:
        problems = _ROW_CHECKS[kind](values)
    if problems:
        return BbgrRow(line_no, error=_bounded(" ; ".join(problems)))
    return BbgrRow(line_no, values=values)


# --- cells -------------------------------------------------------------------------------

_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", re.ASCII)
_MONTH = re.compile(r"(?:(\d{1,2})/)?(\d{1,2})/(\d{4})", re.ASCII)
_DECIMAL = re.compile(r"[+-]?\d+(?:[,.]\d+)?", re.ASCII)
# French exports group thousands with spaces, often non-breaking ones.
_THOUSANDS = str.maketrans("", "", " \u00a0\u202f")


def _date(raw: str) -> dt.date:
    match = _DATE.fullmatch(raw)
    if match is None:
        raise ValueError("date attendue au format JJ/MM/AAAA")
    day, month, year = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise ValueError("cette date n'existe pas") from None


def _month(raw: str) -> dt.date:
    # Excel turns "03/2024" into "01/03/2024" when it re-saves: both mean March 2024.
    match = _MONTH.fullmatch(raw)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError("mois attendu au format MM/AAAA")
    return dt.date(int(match.group(3)), int(match.group(2)), 1)


def _decimal(raw: str) -> Decimal:
    text = raw.translate(_THOUSANDS)
    if not _DECIMAL.fullmatch(text) or len(text) > 30:
        raise ValueError("montant attendu, par exemple 1 234,56")
    return Decimal(text.replace(",", "."))


def _int(raw: str) -> int:
    try:
        value = _decimal(raw)
    except ValueError:
        raise ValueError("nombre entier attendu") from None
    if value != value.to_integral_value():
        raise ValueError("nombre entier attendu")
    return int(value)


_PARSERS: dict[ColumnType, Callable[[str], Value]] = {
    "date": _date,
    "month": _month,
    "decimal": _decimal,
    "int": _int,
    "text": str,
}


# --- rows --------------------------------------------------------------------------------


def _check_statement(values: Mapping[str, Value]) -> list[str]:
    if values["debit"] is None and values["credit"] is None:
        return ["ni débit ni crédit renseigné"]
    return []


def _check_monthly(values: Mapping[str, Value]) -> list[str]:
    ca_ht, remises, ca_net = values["ca_ht"], values["remises"], values["ca_net"]
    assert isinstance(ca_ht, Decimal)
    assert isinstance(remises, Decimal)
    assert isinstance(ca_net, Decimal)
    if abs(ca_ht - remises - ca_net) > TOLERANCE:
        return [
            f"le CA net ({french_amount(ca_net)}) ne correspond pas au CA HT "
            f"({french_amount(ca_ht)}) moins les remises ({french_amount(remises)})"
        ]
    return []


def _check_returns(values: Mapping[str, Value]) -> list[str]:
    quantity = values["quantite"]
    assert isinstance(quantity, int)
    return [] if quantity > 0 else [f"quantité retournée {quantity} : elle doit être positive"]


def _check_receptions(values: Mapping[str, Value]) -> list[str]:
    problems = []
    for name in ("quantite_commandee", "quantite_recue"):
        quantity = values[name]
        assert isinstance(quantity, int)
        if quantity < 0:
            problems.append(f"{name} négative ({quantity})")
    return problems


_ROW_CHECKS: dict[str, Callable[[Mapping[str, Value]], list[str]]] = {
    "bbgr_statment": _check_statement,
    "bbgr_monthly": _check_monthly,
    "bbgr_retours": _check_returns,
    "bbgr_receptions": _check_receptions,
}
