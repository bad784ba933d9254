"""colis-svc's files, in two GridFS buckets of its own database (jauge_shared.blobs):

- `photo_uploads`: photos handed over by the gateway, named by the `upload_id` of the
  task's command. The gateway puts them; colis-svc reads them and deletes them once the
  photo is stored (or the task is gone), and its sweeper removes those no live task
  refers to;
- `photos`: the processed JPEG and thumbnail of each parcel (`<name>.jpg`,
  `<name>.thumb.jpg`), which the gateway reads by the name `colis_image` answers with.

No folder is shared with another service (docs/decisions.md, "Floor plan: files"). Ids
are checked here, so no name from a message reaches the store unchecked.
"""

from __future__ import annotations

import re

from colis_svc.domain import PermanentTaskError
from jauge_shared.blobs import Blobs

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def image_names(name: str) -> tuple[str, str]:
    return f"{name}.jpg", f"{name}.thumb.jpg"


class FileStore:
    """Photos waiting for their task, and the processed photos."""

    def __init__(self, uploads: Blobs, images: Blobs) -> None:
        self.uploads = uploads
        self.images = images

    @staticmethod
    def checked_upload(upload_id: str) -> str:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise PermanentTaskError("Photo introuvable : identifiant d'envoi invalide.")
        return upload_id

    async def has_upload(self, upload_id: str) -> bool:
        return await self.uploads.exists(self.checked_upload(upload_id))

    async def read_upload(self, upload_id: str) -> bytes | None:
        return await self.uploads.read(self.checked_upload(upload_id))

    async def has_images(self, name: str) -> bool:
        return all([await self.images.exists(n) for n in image_names(name)])

    async def write_images(self, name: str, jpeg: bytes, thumbnail: bytes) -> None:
        jpeg_name, thumb_name = image_names(name)
        await self.images.put(jpeg_name, jpeg)
        await self.images.put(thumb_name, thumbnail)

    async def remove_upload(self, upload_id: str | None) -> None:
        if upload_id and UPLOAD_ID.fullmatch(upload_id):
            await self.uploads.delete(upload_id)

    async def remove_images(self, name: str) -> None:
        for blob in image_names(name):
            await self.images.delete(blob)
