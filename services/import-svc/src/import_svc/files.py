"""Where import files live, and how they move without ever being lost or half-moved.

inbox/<kind>/ → work/<job_id>/ (claimed by one job) → archive/<kind>/YYYY/MM/ or
errors/<kind>/ with a `.error.txt` beside it. Every move is a rename on one file system,
which is atomic: a file is in exactly one of these places at any instant.

Files of the import page come from the gateway through import-svc's `import_uploads`
GridFS bucket (jauge_shared.blobs): `receive_uploads` takes them into uploads/<id>/,
import-svc's own folder, before the job claims them as it claims the inbox's. No other
service reads or writes a folder of import-svc's (docs/decisions.md, "Floor plan: files").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jauge_shared.blobs import Blobs
from jauge_shared.contracts import ImportKind, is_file_item

logger = logging.getLogger("import_svc")


@dataclass(frozen=True)
class FileStore:
    root: Path

    def inbox(self, kind: ImportKind) -> Path:
        return self.root / "inbox" / kind.value

    def uploads(self, upload_id: str) -> Path:
        return self.root / "uploads" / _one_name(upload_id)

    def work(self, job_id: str) -> Path:
        return self.root / "work" / _one_name(job_id)

    def archive(self, kind: ImportKind, when: datetime) -> Path:
        return self.root / "archive" / kind.value / f"{when:%Y}" / f"{when:%m}"

    def errors(self, kind: ImportKind) -> Path:
        return self.root / "errors" / kind.value

    def ensure_layout(self) -> None:
        for kind in ImportKind:
            self.inbox(kind).mkdir(parents=True, exist_ok=True)

    def claim_inbox(self, kind: ImportKind, job_id: str) -> list[str]:
        """Move every waiting file of `kind` into the job's work folder; returns names."""
        return self._claim(sorted(p for p in self.inbox(kind).iterdir() if p.is_file()), job_id)

    def claim_uploads(self, upload_ids: list[str], job_id: str) -> list[str]:
        paths: list[Path] = []
        for upload_id in upload_ids:
            folder = self.uploads(upload_id)
            if folder.is_dir():
                paths.extend(sorted(p for p in folder.iterdir() if p.is_file()))
        return self._claim(paths, job_id)

    def claim_paths(self, paths: list[Path], job_id: str) -> list[str]:
        """Claim these files (a retry's rejected files, control.py) like the inbox's."""
        return self._claim(paths, job_id)

    def waiting(self, kind: ImportKind) -> int:
        """How many files an import of `kind`'s inbox would claim now."""
        folder = self.inbox(kind)
        if not folder.is_dir():
            return 0
        return sum(
            1
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and is_file_item(p.name)
        )

    def rejected(self, kind: ImportKind, name: str) -> Path:
        """Where a rejected file is kept (its note is `<name>.error.txt` beside it)."""
        return self.errors(kind) / _one_name(name)

    def _claim(self, paths: list[Path], job_id: str) -> list[str]:
        work = self.work(job_id)
        work.mkdir(parents=True, exist_ok=True)
        claimed: list[str] = []
        for path in paths:
            if path.name.startswith("."):
                continue  # partial uploads and editor files are not import files
            if not is_file_item(path.name):
                # its import.file message would be refused by the contract (a control
                # character in the name): left where it is, for an operator to rename
                logger.warning("import file name refused", extra={"file": repr(path.name)})
                continue
            target = _free_name(work, path.name)
            try:
                os.replace(path, target)
            except FileNotFoundError:
                continue  # taken meanwhile (a redone claim of the same job): not lost
            claimed.append(target.name)
        return claimed

    def claimed(self, job_id: str) -> list[str]:
        work = self.work(job_id)
        return sorted(p.name for p in work.iterdir()) if work.is_dir() else []

    def return_to_inbox(self, kind: ImportKind, job_id: str, name: str) -> Path | None:
        return self._move_out(self.work(job_id) / _one_name(name), self.inbox(kind))

    def archive_file(self, kind: ImportKind, job_id: str, name: str, when: datetime) -> Path | None:
        return self._move_out(self.work(job_id) / _one_name(name), self.archive(kind, when))

    def reject_file(self, kind: ImportKind, job_id: str, name: str, reason: str) -> Path | None:
        folder = self.errors(kind)
        moved = self._move_out(self.work(job_id) / _one_name(name), folder)
        if moved is not None:
            note = moved.with_name(moved.name + ".error.txt")
            tmp = note.with_name("." + note.name + ".tmp")
            tmp.write_text(reason + "\n", encoding="utf-8")
            os.replace(tmp, note)
        return moved

    @staticmethod
    def _move_out(source: Path, folder: Path) -> Path | None:
        if not source.exists():
            return None  # already moved by an earlier delivery of the same work
        folder.mkdir(parents=True, exist_ok=True)
        target = _free_name(folder, source.name)
        os.replace(source, target)
        return target

    def remove_work(self, job_id: str) -> None:
        work = self.work(job_id)
        if work.is_dir() and not any(work.iterdir()):
            work.rmdir()


async def receive_uploads(files: FileStore, bucket: Blobs, upload_ids: list[str]) -> None:
    """The uploads' blobs written into uploads/<id>/ (a file already there is kept: a
    redone job), then deleted from the bucket. Deleted only once every file is written,
    and before the claim moves them: a redo after a crash never receives a file twice."""
    for upload_id in upload_ids:
        blobs = await bucket.find(upload_id=upload_id)
        if not blobs:
            continue
        folder = files.uploads(upload_id)
        folder.mkdir(parents=True, exist_ok=True)
        for blob_id, name in blobs:
            if not is_file_item(name):
                logger.warning("uploaded file name refused", extra={"file": repr(name)})
                continue
            target = folder / _one_name(name)
            if not target.exists():
                await bucket.save_to(blob_id, target)
        for blob_id, _ in blobs:
            await bucket.delete(blob_id)


def _one_name(name: str) -> str:
    """`name` if it is one entry of a folder, else ValueError: the contracts already refuse
    `..`, `/` and NUL in ids and file names; this is the second lock on the same door."""
    if not name or name in {".", ".."} or "/" in name or "\x00" in name:
        raise ValueError(f"not a single path component: {name!r}")
    return name


def _free_name(folder: Path, name: str) -> Path:
    """`name`, or `name (2)`, ...: a move never overwrites another file."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 2
    while target.exists():
        target = folder / f"{stem} ({n}){suffix}"
        n += 1
    return target
