"""Parcel photos handed over to colis-svc, and its processed photos read back, through
the two GridFS buckets of colis-svc's database (jauge_shared.blobs).

The gateway may put a photo in `photo_uploads` under an upload id of its own, which it
then names in the task's command, and read from `photos` the file `colis_image` names.
It reads nothing else of colis-svc's, and deletes only a photo it put for a command the
broker then refused (no task will ever read it). Everything else in those buckets is
colis-svc's to read and remove (docs/decisions.md, "Floor plan: files").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from gateway.settings import GatewaySettings
from gateway.upload_store import Upload, UploadStore
from jauge_shared.blobs import PHOTO_UPLOADS, PHOTOS, Blobs
from jauge_shared.contracts.colis import COLIS_DB_SUFFIX
from jauge_shared.mongo import database_name


@dataclass
class ColisBuckets:
    uploads: Blobs  # the gateway puts (and takes back a refused command's photo)
    photos: Blobs  # the gateway reads by the name colis-svc gives

    @classmethod
    def open(
        cls, mongo: AsyncMongoClient[dict[str, Any]], settings: GatewaySettings
    ) -> ColisBuckets:
        db = mongo[database_name(settings, COLIS_DB_SUFFIX)]
        return cls(Blobs(db, PHOTO_UPLOADS), Blobs(db, PHOTOS))


async def hand_over_file(buckets: ColisBuckets, upload_id: str, path: Path) -> None:
    """A finished photo of the gateway's folder becomes colis-svc's blob; the local
    file goes once the blob is in."""
    await buckets.uploads.put_file(upload_id, path)
    await asyncio.to_thread(path.unlink, missing_ok=True)


async def hand_over_upload(buckets: ColisBuckets, store: UploadStore, upload: Upload) -> None:
    """A resumable upload whose last byte is in: a photo is put in colis-svc's bucket
    first, and only then marked complete, so that a task bound to it at the same moment
    is either told (`colis.photo_ready`) or finds the blob there."""
    if upload.purpose == "photo":
        await buckets.uploads.put_file(upload.id, store.final(upload))
    await asyncio.to_thread(store.handed_over, upload)
