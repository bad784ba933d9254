"""Files handed over to the services that own them, through GridFS buckets of their
databases (jauge_shared.blobs); the gateway's only touch of another service's data.

- colis-svc's `photo_uploads`: a parcel photo, under an upload id of the gateway's own,
  which it then names in the task's command; deleted by the gateway only when the broker
  refused that command (no task will ever read it);
- colis-svc's `photos`: read, the one file `colis_image` names;
- import-svc's `import_uploads`: the import page's files, one blob each
  (`<upload_id>.<n>`, the file's name as filename, `upload_id` in the metadata), which
  import-svc takes into its own folder when `import.request` names the upload.

Everything else in those buckets is their owner's to read and remove
(docs/decisions.md, "Floor plan: files").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from gateway.settings import GatewaySettings
from gateway.upload_store import Upload, UploadStore
from jauge_shared.blobs import IMPORT_UPLOADS, PHOTO_UPLOADS, PHOTOS, Blobs
from jauge_shared.contracts.colis import COLIS_DB_SUFFIX
from jauge_shared.contracts.imports import IMPORT_DB_SUFFIX
from jauge_shared.mongo import database_name


@dataclass
class Buckets:
    uploads: Blobs  # colis-svc's: the gateway puts (and takes back a refused command's)
    photos: Blobs  # colis-svc's: the gateway reads by the name colis-svc gives
    imports: Blobs  # import-svc's: the gateway puts

    @classmethod
    def open(cls, mongo: AsyncMongoClient[dict[str, Any]], settings: GatewaySettings) -> Buckets:
        colis = mongo[database_name(settings, COLIS_DB_SUFFIX)]
        imports = mongo[database_name(settings, IMPORT_DB_SUFFIX)]
        return cls(
            Blobs(colis, PHOTO_UPLOADS), Blobs(colis, PHOTOS), Blobs(imports, IMPORT_UPLOADS)
        )


async def hand_over_upload(
    buckets: Buckets, store: UploadStore, upload: Upload, after_own_failure: bool = False
) -> None:
    """A resumable upload whose last byte is in: a photo is put in colis-svc's bucket
    first, and only then marked complete, so that a task bound to it at the same moment
    is either told (`colis.photo_ready`) or finds the blob there. `after_own_failure`:
    see `Blobs.put_file`."""
    if upload.purpose == "photo":
        await buckets.uploads.put_file(
            upload.id, store.final(upload), after_own_failure=after_own_failure
        )
    else:
        await hand_over_import(buckets, upload.id, [store.final(upload)], [upload.name])
    await asyncio.to_thread(store.handed_over, upload)


async def hand_over_import(
    buckets: Buckets, upload_id: str, paths: list[Path], names: list[str | None]
) -> None:
    """Files to import, one blob each, for import-svc to take when the import is asked."""
    for n, (path, name) in enumerate(zip(paths, names, strict=True)):
        await buckets.imports.put_file(
            f"{upload_id}.{n}", path, filename=name or path.name, upload_id=upload_id
        )


async def take_back_import(buckets: Buckets, upload_id: str, count: int) -> None:
    """The files of an import the broker refused: no job will ever take them."""
    for n in range(count):
        await buckets.imports.delete(f"{upload_id}.{n}")
