"""The parcel photo: orientation, size, format, and what is refused."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest
from PIL import ExifTags, Image

from colis_svc.domain import PermanentTaskError, process_photo


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def open_jpeg(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    image.load()
    return image


def png_declaring(width: int, height: int) -> bytes:
    """A few dozen bytes whose header claims a huge picture: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_exif_orientation_6_comes_out_upright() -> None:
    # Stored 200×100, red left half and blue right half, "rotate 90° clockwise to view".
    stored = Image.new("RGB", (200, 100), "blue")
    stored.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    photo = process_photo(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))

    assert (photo.width, photo.height) == (100, 200)
    out = open_jpeg(photo.jpeg).convert("RGB")
    assert out.size == (100, 200)
    red, _, blue = out.getpixel((50, 40))  # type: ignore[misc]
    assert (red > 200, blue < 60) == (True, True)  # the left side went to the top
    red, _, blue = out.getpixel((50, 160))  # type: ignore[misc]
    assert (red < 60, blue > 200) == (True, True)
    assert ExifTags.Base.Orientation not in out.getexif()  # not rotated twice by viewers


def test_a_5000_by_4000_photo_is_resized_to_1600_on_its_long_side() -> None:
    photo = process_photo(encode(Image.new("RGB", (5000, 4000), (90, 140, 60)), "JPEG"))
    assert (photo.width, photo.height) == (1600, 1280)
    assert open_jpeg(photo.jpeg).size == (1600, 1280)
    assert open_jpeg(photo.thumbnail).size == (320, 256)


def test_portrait_png_is_resized_on_its_height() -> None:
    photo = process_photo(encode(Image.new("L", (1000, 3200), 128), "PNG"), max_side=800)
    assert (photo.width, photo.height) == (250, 800)
    assert open_jpeg(photo.jpeg).mode == "RGB"


def test_small_photos_are_not_enlarged() -> None:
    photo = process_photo(encode(Image.new("RGB", (120, 90), "white"), "JPEG"))
    assert (photo.width, photo.height) == (120, 90)
    assert open_jpeg(photo.thumbnail).size == (120, 90)


def test_transparency_becomes_white() -> None:
    photo = process_photo(encode(Image.new("RGBA", (50, 50), (255, 0, 0, 0)), "PNG"))
    assert open_jpeg(photo.jpeg).getpixel((25, 25)) == (255, 255, 255)


def test_palette_gif_is_accepted() -> None:
    photo = process_photo(encode(Image.new("P", (64, 48), 3), "GIF"))
    assert (photo.width, photo.height) == (64, 48)


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    photo = process_photo(encode(Image.new("I;16", (40, 40), 32768), "PNG"))
    grey = open_jpeg(photo.jpeg).getpixel((20, 20))
    assert isinstance(grey, tuple)
    assert 120 <= grey[0] <= 136


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "vide"),
        (b"this is not an image at all" * 10, "format non reconnu"),
        (encode(Image.new("RGB", (8, 8)), "PPM"), "format non reconnu"),  # not a photo format
    ],
)
def test_unreadable_data_is_a_permanent_error(data: bytes, reason: str) -> None:
    with pytest.raises(PermanentTaskError, match=f"^Photo illisible : .*{reason}"):
        process_photo(data)


def test_truncated_upload_is_a_permanent_error() -> None:
    whole = encode(Image.effect_noise((400, 300), 60).convert("RGB"), "JPEG")
    with pytest.raises(PermanentTaskError, match="Photo illisible"):
        process_photo(whole[: len(whole) // 2])


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # 100 000 × 100 000: beyond even Pillow's own limit, which raises in Image.open.
    with pytest.raises(PermanentTaskError, match="Photo illisible : image trop grande"):
        process_photo(png_declaring(100_000, 100_000))


def test_our_pixel_limit_is_stricter_than_pillows() -> None:
    # 8000 × 6000 = 48 Mpx: Pillow would decode it, our 40 Mpx limit refuses it.
    with pytest.raises(PermanentTaskError, match=r"image trop grande \(8000×6000 pixels"):
        process_photo(png_declaring(8000, 6000))
    with pytest.raises(PermanentTaskError, match="trop grande"):
        process_photo(encode(Image.new("RGB", (200, 100)), "PNG"), max_pixels=10_000)


def test_pillows_bomb_warning_is_refused_when_raised() -> None:
    # 10 000 × 10 000 makes Pillow warn; under `-W error` the warning is raised.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(PermanentTaskError, match="image trop grande"):
            process_photo(png_declaring(10_000, 10_000), max_pixels=10**9)
