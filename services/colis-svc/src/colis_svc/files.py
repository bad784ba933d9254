"""colis-svc's files under JAUGE_DATA_DIR: uploads waiting for their task, processed photos.

Paths are built here only, from ids checked here, so no name from a message reaches the
file system unchecked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from uuid import uuid4

from colis_svc.domain import PermanentTaskError

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class FileStore:
    """Uploads waiting for their task, and the processed photos, under JAUGE_DATA_DIR."""

    def __init__(self, data_dir: Path) -> None:
        self.uploads = data_dir / "uploads" / "colis"
        self.images = data_dir / "images" / "colis"

    def ensure_layout(self) -> None:
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.images.mkdir(parents=True, exist_ok=True)

    def upload_path(self, upload_id: str) -> Path:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise PermanentTaskError("Photo introuvable : identifiant d'envoi invalide.")
        return self.uploads / upload_id

    def image_paths(self, name: str) -> tuple[Path, Path]:
        return self.images / f"{name}.jpg", self.images / f"{name}.thumb.jpg"

    def has_images(self, name: str) -> bool:
        return all(path.exists() for path in self.image_paths(name))

    def write_images(self, name: str, jpeg: bytes, thumbnail: bytes) -> None:
        self.images.mkdir(parents=True, exist_ok=True)
        jpeg_path, thumb_path = self.image_paths(name)
        self.write_atomic(jpeg_path, jpeg)
        self.write_atomic(thumb_path, thumbnail)

    @staticmethod
    def write_atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def remove_upload(self, upload_id: str | None) -> None:
        if upload_id and UPLOAD_ID.fullmatch(upload_id):
            (self.uploads / upload_id).unlink(missing_ok=True)

    def remove_images(self, name: str) -> None:
        for path in self.image_paths(name):
            path.unlink(missing_ok=True)
