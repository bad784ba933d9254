"""Resumable uploads, in chunks at known offsets, in the gateway's own folder.

One upload is three files in `<JAUGE_DATA_DIR>/uploads/colis/` (the gateway's folder:
no other service reads it), named by an id of our own (never from the user):

- `.<id>.json`: who opened it, its type, its size once known, whether it was handed over;
- `.<id>.task`: the task that waits for it (a file of its own, so that binding the task
  and finishing the upload, which may happen at the same moment, never overwrite each
  other's note);
- `.<id>.part`: the bytes received so far; a chunk is written only at the offset equal
  to the part's current size (a chunk sent again after a lost answer changes nothing);
- `<id>`: the finished upload, renamed from the part in one step when the last byte is
  in, until it is handed over.

A finished photo is handed over to colis-svc as one blob of its `photo_uploads` bucket
(`handover.py`, jauge_shared.blobs), then the local file goes; only then is the upload
`done` (complete). colis-svc's sweeper removes handed-over photos no live task refers
to; `sweep` here removes the gateway's own notes and parts once they are old.

A chunk is checked and written without an `await` in between: within one gateway the
offset check and the write cannot interleave with another request's. Two replicas
writing the same upload at once would need a lock in the store; one browser sends one
chunk at a time, and a chunk repeated after a failure is harmless.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
SWEEP_EVERY_S = 60.0


@dataclass
class Upload:
    id: str
    owner: str
    type: str
    size: int | None  # None until the client declares it (`Upload-Length`)
    created_at: str
    purpose: str = "photo"  # or "import": an EDI or BBGR file for import-svc
    name: str | None = None  # an import file's name
    task_id: str | None = None
    done: bool = False  # every byte in and handed over (`UploadStore.handed_over`)
    offset: int = 0

    @property
    def complete(self) -> bool:
        return self.done


class OffsetMismatch(Exception):
    """The chunk does not start where the upload stands: the client asks (HEAD) again."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class TooLarge(Exception):
    pass


class UploadStore:
    """Parcel photos: finished, `uploads/colis/<id>` until handed over to colis-svc."""

    purpose = "photo"
    _last_sweep = float("-inf")

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.folder = data_dir / "uploads" / "colis"

    def _dir(self, upload_id: str) -> Path:
        return self.folder

    def _note(self, upload_id: str) -> Path:
        return self._dir(upload_id) / f".{upload_id}.json"

    def _task(self, upload_id: str) -> Path:
        return self._dir(upload_id) / f".{upload_id}.task"

    def _part(self, upload_id: str) -> Path:
        return self._dir(upload_id) / f".{upload_id}.part"

    def final(self, upload: Upload) -> Path:
        """The finished upload, where colis-svc looks for it."""
        return self.folder / upload.id

    def open(
        self, owner: str, content_type: str, size: int | None, name: str | None = None
    ) -> Upload:
        upload = Upload(
            id=uuid4().hex,
            owner=owner,
            type=content_type,
            size=size,
            created_at=datetime.now(UTC).isoformat(),
            purpose=self.purpose,
            name=name,
        )
        self._dir(upload.id).mkdir(parents=True, exist_ok=True)
        self._part(upload.id).touch()
        self._save(upload)
        return upload

    def adopt(self, upload_id: str, owner: str, size: int, task_id: str) -> Upload:
        """A photo of the parcel form, already finished at `final` (photo_stream renames
        it there), becomes an upload bound to its task: from here on it is handed over as
        a resumable upload's last chunk is (photo_handovers.py)."""
        upload = Upload(
            id=upload_id,
            owner=owner,
            type="image",
            size=size,
            created_at=datetime.now(UTC).isoformat(),
            purpose=self.purpose,
        )
        self.bind(upload, task_id)
        self._save(upload)
        upload.offset = size
        return upload

    def get(self, upload_id: str) -> Upload | None:
        if not UPLOAD_ID.fullmatch(upload_id):
            return None
        try:
            raw = json.loads(self._note(upload_id).read_text())
        except (OSError, ValueError):
            return None
        upload = Upload(**{k: raw.get(k) for k in Upload.__dataclass_fields__ if k in raw})
        upload.offset = self._received(upload)
        try:
            upload.task_id = self._task(upload_id).read_text().strip() or None
        except FileNotFoundError:
            upload.task_id = None
        return upload

    def _received(self, upload: Upload) -> int:
        if upload.size is not None and (upload.done or self.final(upload).exists()):
            return upload.size
        try:
            return self._part(upload.id).stat().st_size
        except FileNotFoundError:
            return 0

    def _save(self, upload: Upload) -> None:
        note = self._note(upload.id)
        tmp = note.with_name(f"{note.name}.{uuid4().hex}.tmp")
        fields = asdict(upload)
        fields.pop("offset")
        fields.pop("task_id")
        tmp.write_text(json.dumps(fields))
        os.replace(tmp, note)

    def declare_size(self, upload: Upload, size: int) -> None:
        if upload.size is None:
            upload.size = size
            self._save(upload)

    def bind(self, upload: Upload, task_id: str) -> None:
        """The task that waits for this upload: told when its last byte arrives."""
        upload.task_id = task_id
        self._task(upload.id).write_text(task_id)

    def append(self, upload: Upload, offset: int, chunk: bytes, limit: int) -> bool:
        """Writes `chunk` at `offset`; True when this call finished the upload.

        A chunk wholly inside what is already there (sent again because its answer was
        lost) is accepted and changes nothing."""
        current = self._received(upload)
        upload.offset = current
        if upload.done:
            return False
        end = offset + len(chunk)
        if offset != current and not (offset < current and end <= current):
            raise OffsetMismatch(current)
        if offset == current and chunk:
            if end > limit or (upload.size is not None and end > upload.size):
                raise TooLarge()
            part = self._part(upload.id)
            with part.open("r+b" if part.exists() else "wb") as out:
                out.seek(offset)
                out.write(chunk)
                out.truncate(end)
            upload.offset = end
        if upload.size is not None and upload.offset == upload.size:
            # also when the last chunk comes again before the handover was done: the
            # caller hands it over (again; a handover is idempotent)
            part = self._part(upload.id)
            if part.exists():
                os.replace(part, self.final(upload))
            return True
        return False

    def handed_over(self, upload: Upload) -> None:
        """The finished file is where its receiver reads it: the upload is complete, and
        a photo's local copy goes (colis-svc has its blob)."""
        upload.done = True
        self._save(upload)
        self.final(upload).unlink(missing_ok=True)

    def head(self, upload: Upload) -> bytes:
        """The first bytes received, to check the file's kind."""
        final = self.final(upload)
        source = final if final.exists() else self._part(upload.id)
        try:
            with source.open("rb") as f:
                return f.read(16)
        except FileNotFoundError:
            return b""

    def forget(self, upload_id: str) -> None:
        """The notes only: the finished file has been handed over."""
        for path in (self._part(upload_id), self._note(upload_id), self._task(upload_id)):
            path.unlink(missing_ok=True)

    def sweep_now_and_then(self, max_age_s: float) -> int:
        """`sweep`, at most once a minute per process (called as an upload is opened)."""
        now = time.monotonic()
        if now - UploadStore._last_sweep < SWEEP_EVERY_S:
            return 0
        UploadStore._last_sweep = now
        return self.sweep(max_age_s)

    def sweep(self, max_age_s: float) -> int:
        """The gateway's own leftovers (notes, parts, files not handed over) older than
        `max_age_s`: uploads abandoned by their phone or browser, photos and import files
        alike; an import upload's folder goes once empty. The buckets' blobs are their
        owners' to remove."""
        cutoff = time.time() - max_age_s
        imports = self.data_dir / "uploads" / "imports"
        folders = [self.folder, *(imports.iterdir() if imports.is_dir() else [])]
        removed = 0
        for folder in folders:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for path in folder.iterdir():
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        path.unlink(missing_ok=True)
                        removed += 1
            if folder.parent == imports:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # refused while a file is still there
        return removed

    def discard(self, upload_id: str) -> None:
        upload = self.get(upload_id)
        if upload is not None:
            for path in (self._part(upload_id), self._note(upload_id), self._task(upload_id)):
                path.unlink(missing_ok=True)
            self.final(upload).unlink(missing_ok=True)


class ImportUploadStore(UploadStore):
    """Files to import, one folder each in the gateway's folder: finished,
    `uploads/imports/<id>/<name>` until handed over to import-svc's `import_uploads`
    bucket."""

    purpose = "import"

    def _dir(self, upload_id: str) -> Path:
        return import_folder(self.data_dir, upload_id)

    def final(self, upload: Upload) -> Path:
        return self._dir(upload.id) / (upload.name or upload.id)

    def forget(self, upload_id: str) -> None:
        """The notes, and the upload's own folder once empty."""
        super().forget(upload_id)
        with contextlib.suppress(OSError):
            self._dir(upload_id).rmdir()


def import_folder(data_dir: Path, upload_id: str) -> Path:
    """The gateway's folder of one upload of files to import (resumable or multipart)."""
    return data_dir / "uploads" / "imports" / upload_id


def find_upload(data_dir: Path, upload_id: str) -> tuple[UploadStore, Upload] | None:
    """The upload and the store it is in, whatever its purpose."""
    for store in (UploadStore(data_dir), ImportUploadStore(data_dir)):
        upload = store.get(upload_id)
        if upload is not None:
            return store, upload
    return None
