"""Contracts of EDI and BBGR imports (import-svc)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, NonNegativeInt

from jauge_shared.contracts.envelope import Command, Event
from jauge_shared.contracts.fields import FileItem, JobId, UploadId

# import-svc's database (`<db_prefix>_import`): the gateway names it only to put the
# import page's files in its `import_uploads` bucket (jauge_shared.blobs)
IMPORT_DB_SUFFIX = "import"


class ImportKind(StrEnum):
    EDI = "edi"
    BBGR_STATMENT = "bbgr_statment"  # spelled as in the original system
    BBGR_MONTHLY = "bbgr_monthly"
    BBGR_RETOURS = "bbgr_retours"
    BBGR_RECEPTIONS = "bbgr_receptions"


class ImportStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def import_title(kind: ImportKind) -> str:
    """An import's title (`import.started`, `import.queued`): one rule for its producer
    and for progress-svc."""
    if kind is ImportKind.EDI:
        return "Import des factures EDI"
    return f"Import BBGR {kind.value.removeprefix('bbgr_')}"


def final_import_message(processed: int, failed: int, *, rows: bool = False) -> str:
    """What a completed import says (`import.finished`'s `message`); progress-svc says
    the same for a finished event that carries none."""
    if processed == 0:
        return "Import terminé : aucun fichier à importer"
    plural = "s" if processed > 1 else ""
    what = f"ligne{plural} traitée{plural}" if rows else f"fichier{plural} traité{plural}"
    text = f"Import terminé : {processed} {what}"
    return text + (f", {failed} en erreur" if failed else "")


def cancelled_import_message(processed: int, failed: int, returned: int, *, uploads: bool) -> str:
    """What a cancelled import says: what was done, and where the rest went."""
    plural = "s" if processed > 1 else ""
    text = f"Import annulé : {processed} fichier{plural} traité{plural}"
    if failed:
        text += f", {failed} en erreur"
    if returned:
        where = "à envoyer de nouveau" if uploads else "remis dans la boîte de réception"
        text += f" ; {returned} non traité{'s' if returned > 1 else ''}, {where}"
    return text


class RequestImport(Command):
    """Start an import of the files waiting in the kind's inbox, or of uploaded files."""

    type: Literal["import.request"] = "import.request"
    kind: ImportKind
    user_id: str = Field(min_length=1, max_length=64)
    upload_ids: list[UploadId] = Field(
        default_factory=list,
        max_length=10_000,
        description="Files uploaded for this import only; empty means the whole inbox.",
    )
    retry_of: JobId | None = Field(
        default=None,
        description="Import again only the files that failed in this earlier import (an "
        "uploaded file of the same name replaces the rejected one).",
    )


class CancelImport(Command):
    """Stop an import: its files not yet read go back where they came from (the inbox,
    or the upload bucket), and it ends `cancelled` with the counts of what was done.
    Idempotent: a cancel of an ended import changes nothing."""

    type: Literal["import.cancel"] = "import.cancel"
    user_id: str = Field(min_length=1, max_length=64, description="Who asked (for the log).")


class ImportFile(Command):
    """One file of an import, for whichever import-svc replica takes it."""

    type: Literal["import.file"] = "import.file"
    kind: ImportKind
    item: FileItem = Field(description="File name in the job's staging folder.")
    index: NonNegativeInt


class ImportQueued(Event):
    """An import was accepted and waits for the import lock."""

    type: Literal["import.queued"] = "import.queued"
    kind: ImportKind
    user_id: str
    title: str
    position: NonNegativeInt = Field(description="1 = next to run.")


class ImportStarted(Event):
    type: Literal["import.started"] = "import.started"
    kind: ImportKind
    user_id: str
    title: str = Field(examples=["Import des factures EDI"])
    total: NonNegativeInt = Field(description="Files, or rows for a single-file BBGR import.")


class ImportCleanupStarted(Event):
    """Every file is done; the clean-up step runs before the job finishes."""

    type: Literal["import.cleanup_started"] = "import.cleanup_started"


class FileImported(Event):
    type: Literal["file.imported"] = "file.imported"
    item: str = Field(description="File name (or row label for a BBGR import).")
    ok: bool
    error: str | None = Field(default=None, description="Why the file failed, in French.")
    invoices: NonNegativeInt = 0
    lines: NonNegativeInt = 0
    duration_ms: NonNegativeInt = 0


class ImportFinished(Event):
    type: Literal["import.finished"] = "import.finished"
    status: ImportStatus
    error: str | None = None
    processed: NonNegativeInt = 0
    failed: NonNegativeInt = 0
    invoices: NonNegativeInt = 0
    message: str = Field(default="", examples=["Import terminé : 12 fichiers traités, 1 en erreur"])
