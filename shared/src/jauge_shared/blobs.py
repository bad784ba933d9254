"""The one way services hand files to each other: a GridFS bucket in the store.

No two services share a folder (issue 17, point 3). A file that goes from one service to
another (a parcel photo from the gateway to colis-svc) is put in a GridFS bucket of the
receiving service's database, under an id the sender made and then names in its
command; the receiver reads it by that id and deletes it when it is done. A service's
own files that another service serves (colis-svc's processed photos, which the gateway
streams) live in a bucket of their owner too, read by the id the owner answers with.

Who owns each bucket, and who may do what with it, is written in docs/decisions.md
("Floor plan: files"). Measured on FerretDB in docs/performance.md: a 400 KB photo is
written and read back in about 30 ms, a 4 MB file in about 360 ms.

Ids are checked here (`BLOB_ID`), so no name from a message reaches the store unchecked.
Writing an id that is already there is a no-op: a handover repeated after a lost answer
changes nothing.
"""

from __future__ import annotations

import contextlib
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from gridfs import AsyncGridFSBucket, NoFile
from gridfs.errors import FileExists
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

BLOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


# chunks of a blob without its file document, none written for this long: the try that
# wrote them was cut off (a writer still at work writes a chunk far more often)
ABANDONED_CHUNKS_AFTER_S = 60.0
# (bucket, id) of the blobs this process is putting right now
_WRITING: set[tuple[str, str]] = set()


class BadBlobId(ValueError):
    pass


class BlobBeingWritten(Exception):
    """Another try is writing this blob's chunks right now: try again later."""


def checked(blob_id: str) -> str:
    if not BLOB_ID.fullmatch(blob_id) or blob_id.startswith("."):
        raise BadBlobId(blob_id)
    return blob_id


class Blobs:
    """One GridFS bucket, files named by ids of our own."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], bucket: str) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name=bucket)
        self.files = db[f"{bucket}.files"]
        self.chunks = db[f"{bucket}.chunks"]

    async def put(self, blob_id: str, data: bytes, **metadata: Any) -> None:
        checked(blob_id)
        if not await self.exists(blob_id):
            await self._write(blob_id, blob_id, io.BytesIO(data), metadata)

    async def put_file(
        self,
        blob_id: str,
        path: Path,
        filename: str | None = None,
        *,
        after_own_failure: bool = False,
        **metadata: Any,
    ) -> None:
        """A file of the caller's own folder, read in the driver's chunks (never whole).
        `after_own_failure`: the caller's earlier put of this id failed and nobody else
        writes it, so chunks without a file document are that put's, whatever their age
        (a store back from an outage need not wait a minute for them)."""
        checked(blob_id)
        if await self.exists(blob_id):
            return
        with path.open("rb") as source:
            await self._write(blob_id, filename or blob_id, source, metadata, after_own_failure)

    async def _write(
        self,
        blob_id: str,
        filename: str,
        source: BinaryIO,
        metadata: dict[str, Any],
        after_own_failure: bool = False,
    ) -> None:
        """GridFS writes the chunks first and the file's document last: a try cut off in
        between (the store killed, the writer cancelled) leaves chunks that make every
        later try fail on their unique index, with no file to show for it. Within this
        process one task at a time writes an id (another gets `BlobBeingWritten`), so a
        caller's `after_own_failure` never removes a live try's chunks here."""
        writing = (self.files.full_name, blob_id)
        if writing in _WRITING:
            raise BlobBeingWritten(blob_id)
        _WRITING.add(writing)
        try:
            for attempt in (1, 2):
                try:
                    await self.bucket.upload_from_stream_with_id(
                        blob_id, filename, source, metadata=metadata or None
                    )
                    return
                except (FileExists, DuplicateKeyError):
                    if await self.exists(blob_id):
                        return  # put by a try whose answer was lost
                    if attempt == 2:
                        raise
                    await self._drop_abandoned_chunks(blob_id, any_age=after_own_failure)
                    source.seek(0)
        finally:
            _WRITING.discard(writing)

    async def _drop_abandoned_chunks(self, blob_id: str, any_age: bool) -> None:
        if not any_age:
            newest = await self.chunks.find_one(
                {"files_id": blob_id}, {"_id": 1}, sort=[("_id", DESCENDING)]
            )
            if newest is None:
                return
            written_at = newest["_id"].generation_time
            if datetime.now(UTC) - written_at < timedelta(seconds=ABANDONED_CHUNKS_AFTER_S):
                raise BlobBeingWritten(blob_id)
        await self.chunks.delete_many({"files_id": blob_id})

    async def find(self, **metadata: str) -> list[tuple[str, str]]:
        """(id, filename) of the blobs put with this metadata, by id."""
        query = {f"metadata.{key}": value for key, value in metadata.items()}
        cursor = self.files.find(query, {"_id": 1, "filename": 1}).sort("_id", 1)
        return [(str(doc["_id"]), str(doc["filename"])) async for doc in cursor]

    async def save_to(self, blob_id: str, path: Path) -> bool:
        """The blob written to `path` (a hidden temporary file, then one rename): False if
        there is no such blob."""
        tmp = path.with_name(f".{path.name}.{checked(blob_id)}.tmp")
        try:
            with tmp.open("wb") as out:
                await self.bucket.download_to_stream(blob_id, out)
        except NoFile:
            tmp.unlink(missing_ok=True)
            return False
        tmp.replace(path)
        return True

    async def exists(self, blob_id: str) -> bool:
        if not BLOB_ID.fullmatch(blob_id):
            return False
        return await self.files.find_one({"_id": blob_id}, {"_id": 1}) is not None

    async def read(self, blob_id: str) -> bytes | None:
        if not BLOB_ID.fullmatch(blob_id):
            return None
        try:
            stream = await self.bucket.open_download_stream(blob_id)
        except NoFile:
            return None
        data: bytes = await stream.read()
        return data

    async def delete(self, blob_id: str | None) -> None:
        if not blob_id or not BLOB_ID.fullmatch(blob_id):
            return
        with contextlib.suppress(NoFile):
            await self.bucket.delete(blob_id)

    async def older_than(self, age_s: float, now: datetime | None = None) -> list[str]:
        """Ids of the blobs put more than `age_s` ago (for the owner's sweeper)."""
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=age_s)
        cursor = self.files.find({"uploadDate": {"$lt": cutoff}}, {"_id": 1})
        return [str(doc["_id"]) async for doc in cursor]


# The buckets, by owner (docs/decisions.md, "Floor plan: files"). The first two are in
# colis-svc's database: the gateway puts photo uploads in the first and reads the second
# by the ids colis-svc's `colis_image` answers with.
PHOTO_UPLOADS = "photo_uploads"
PHOTOS = "photos"
# import-svc's database: files of the import page, put by the gateway (metadata
# `upload_id`, the file's name as its filename), taken by import-svc into its own folder
IMPORT_UPLOADS = "import_uploads"
