"""The parcel photo: checked, turned upright, shrunk and re-encoded, from bytes to bytes.

Agents upload phone photos over a slow link and clients view them on phones, so what is
kept is a JPEG of at most `max_side` pixels and a small thumbnail; the original is not.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from decimal import Decimal

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import PermanentTaskError
from .summary import format_fr

# Only the formats a camera, a phone or a scanner produces: every other Pillow decoder is
# attack surface for no benefit. "JPEG" also opens the multi-picture JPEGs (MPO) of many
# phones. HEIC would need the pillow-heif plugin; iOS uploads photos as JPEG anyway.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
JPEG_QUALITY = 85
THUMBNAIL_QUALITY = 80

# What Pillow raises on hostile or broken input; none of it gets better with a retry.
# The bomb warning is listed for processes run with `-W error`, where it is raised.
_UNREADABLE: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    SyntaxError,  # Pillow's "not a PNG/JPEG file" from inside its plugins
    ValueError,
    TypeError,
    EOFError,
    IndexError,
    KeyError,
    ZeroDivisionError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    jpeg: bytes
    thumbnail: bytes
    width: int
    height: int


def process_photo(
    data: bytes,
    *,
    max_side: int = 1600,
    thumb_side: int = 320,
    max_pixels: int = 40_000_000,
) -> ProcessedPhoto:
    """Raises `PermanentTaskError` ("Photo illisible : …") for anything it cannot use."""
    if max_side < 1 or thumb_side < 1 or max_pixels < 1:
        raise ValueError("max_side, thumb_side and max_pixels must be positive")
    if not data:
        raise PermanentTaskError("Photo illisible : le fichier est vide.")
    try:
        # verify() checks the file's structure without decoding it, and leaves the image
        # unusable, hence the second open.
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as probe:
            _check_pixels(probe, max_pixels)
            probe.verify()
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as source:
            _check_pixels(source, max_pixels)
            # Lets libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the target: a
            # 5000×4000 photo decodes to 2500×2000, a quarter of the memory and time.
            source.draft("RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(source)
            image = _to_rgb(upright)
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        thumb = image.copy()
        thumb.thumbnail((thumb_side, thumb_side), Image.Resampling.LANCZOS)
        return ProcessedPhoto(
            jpeg=_encode(image, JPEG_QUALITY),
            thumbnail=_encode(thumb, THUMBNAIL_QUALITY),
            width=image.width,
            height=image.height,
        )
    except PermanentTaskError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PermanentTaskError("Photo illisible : image trop grande.") from e
    except _UNREADABLE as e:
        raise PermanentTaskError(f"Photo illisible : {_reason(e)}") from e


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    # Our own limit, on the size the header declares, before any pixel is decoded. Pillow's
    # MAX_IMAGE_PIXELS is process-wide (changing it per call would race between threads)
    # and twice as permissive; it stays as the second line of defence.
    width, height = image.size
    if width * height > max_pixels:
        raise PermanentTaskError(
            f"Photo illisible : image trop grande ({width}×{height} pixels, "
            f"{format_fr(Decimal(max_pixels))} au plus)."
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        # Transparent pixels would turn black in a plain convert; a white sheet looks like
        # the background the photo was meant to be seen on.
        rgba = image.convert("RGBA")
        sheet = Image.new("RGB", rgba.size, "white")
        sheet.paste(rgba, mask=rgba.getchannel("A"))
        return sheet
    if image.mode.startswith("I"):
        # 16-bit greyscale (some scanners): a plain convert clips everything above 255.
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    # Progressive, so a slow phone shows the whole photo blurred first. No EXIF is
    # written: the orientation is already applied and GPS positions must not leak.
    image.save(buffer, "JPEG", quality=quality, optimize=True, progressive=True)
    return buffer.getvalue()


def _reason(error: BaseException) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "format non reconnu (JPEG, PNG, WEBP, GIF, BMP ou TIFF attendu)."
    if isinstance(error, OSError) and "truncated" in str(error):
        return "fichier incomplet (envoi interrompu ?)."
    return f"fichier endommagé ({type(error).__name__}: {error})."
