"""The parcel form, read as it arrives: its photo is checked while it streams to disk.

Starlette's form parser spools every file part (to /tmp past 1 MB) and the route could
only look at it once whole. Here the photo part goes straight to its own file under
`uploads/colis/` (a name of our own), and each chunk is checked on the way: the size
against `max_photo_bytes`, the first bytes against the image kinds we take, then, as
soon as Pillow can read the header, the format and the pixel count against
`max_photo_pixels` (a decompression bomb is a small file of a huge image). The first
check that fails ends the request: the rest of the body is not written anywhere.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any
from uuid import uuid4

from fastapi import HTTPException
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartParser

PHOTO_TYPES = {
    "image/jpeg",
    "image/jpg",
    "image/pjpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/tiff",
}
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # colis-svc's
_MAGIC = (
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
)
# Pillow is asked to read the header at these sizes of the photo's start; a header not
# found in the first megabyte is no photo we take
_HEADER_TRIES = (4 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024)
NOT_AN_IMAGE = "Photo refusée : le fichier n'est pas une image reconnue."
WRONG_TYPE = "Photo refusée : JPEG, PNG, WEBP, GIF, BMP ou TIFF attendu."


def is_image(head: bytes) -> bool:
    """Whether a file's first 16 bytes are those of a photo kind colis-svc reads."""
    webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return webp or any(head.startswith(m) for m in _MAGIC)


def _refuse(status: int, detail: str) -> HTTPException:
    return HTTPException(status, detail=detail)


class PhotoSink:
    """One photo part: written to `<folder>/.<id>.part`, checked chunk by chunk.

    `write` runs in a worker thread (Starlette's UploadFile sends file writes there), so
    neither the disk nor Pillow's header read holds the event loop.
    """

    def __init__(self, folder: Path, max_bytes: int, max_pixels: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.upload_id = uuid4().hex
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.partial = folder / f".{self.upload_id}.part"
        self.size = 0
        self._head = bytearray()  # the start of the photo, until its header is read
        self._identified = False
        self._out = self.partial.open("wb")
        self.finished = False

    # the file-like face Starlette's UploadFile uses -------------------------------------

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise _refuse(413, f"Photo trop lourde : {self.max_bytes // 1024 // 1024} Mo au plus.")
        if not self._identified:
            before = len(self._head)
            self._head += data[: _HEADER_TRIES[-1] - before]
            if before < 16 <= len(self._head):
                self._check_magic()
            for threshold in _HEADER_TRIES:
                if before < threshold <= len(self._head):
                    self._try_header(last=threshold == _HEADER_TRIES[-1])
                    break
        return self._out.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0  # the parser rewinds a finished part; this one is read from disk later

    def close(self) -> None:
        """Closed by the parser on an error, or by `discard`: the partial file goes."""
        self._out.close()
        if not self.finished:
            self.partial.unlink(missing_ok=True)

    # what the route does once the form is read ------------------------------------------

    def finish(self) -> str:
        """The photo complete and checked: renamed to its upload id, which is returned."""
        self._out.close()
        if self.size == 0:
            self.close()
            raise _refuse(422, "Photo vide : renvoyez le fichier.")
        if not self._identified:
            self._check_magic()  # a photo of fewer than 16 bytes has not been yet
            self._try_header(last=True)
        os.replace(self.partial, self.folder / self.upload_id)
        self.finished = True
        return self.upload_id

    def discard(self) -> None:
        self.close()
        if self.finished:
            (self.folder / self.upload_id).unlink(missing_ok=True)

    # the checks ------------------------------------------------------------------------

    def _check_magic(self) -> None:
        if not is_image(bytes(self._head[:16])):
            raise _refuse(415, NOT_AN_IMAGE)

    def _try_header(self, *, last: bool) -> None:
        try:
            with Image.open(io.BytesIO(bytes(self._head)), formats=FORMATS) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            raise self._too_many_pixels() from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            if last:
                raise _refuse(415, NOT_AN_IMAGE) from None
            return  # not enough of it yet
        if width * height > self.max_pixels:
            raise self._too_many_pixels()
        self._identified = True
        self._head = bytearray()

    def _too_many_pixels(self) -> HTTPException:
        megapixels = self.max_pixels // 1_000_000
        return _refuse(
            413, f"Photo refusée : image trop grande ({megapixels} millions de pixels au plus)."
        )


class ParcelFormParser(MultiPartParser):
    """Starlette's multipart parser, with the photo part going to a `PhotoSink` instead
    of a spooled temporary file."""

    def __init__(
        self,
        headers: Headers,
        stream: AsyncGenerator[bytes, None],
        *,
        folder: Path,
        max_bytes: int,
        max_pixels: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(headers, stream, **kwargs)
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.sinks: list[PhotoSink] = []

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        part = self._current_part
        if part.file is None:
            return
        spooled = part.file.file
        self._files_to_close_on_error.remove(spooled)  # type: ignore[arg-type]
        spooled.close()
        declared = (part.file.content_type or "").lower()
        # the bytes decide; a part sent without a type, or as plain bytes, is fine
        if declared not in PHOTO_TYPES and declared not in ("", "application/octet-stream"):
            raise _refuse(415, WRONG_TYPE)
        sink = PhotoSink(self.folder, self.max_bytes, self.max_pixels)
        self.sinks.append(sink)
        self._files_to_close_on_error.append(sink)  # type: ignore[arg-type]
        part.file = UploadFile(
            file=sink,  # type: ignore[arg-type]
            size=0,
            filename=part.file.filename,
            headers=part.file.headers,
        )

    async def parse(self) -> FormData:
        try:
            return await super().parse()
        except BaseException:
            for sink in self.sinks:
                sink.discard()
            raise
