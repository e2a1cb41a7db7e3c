"""prepare_image: orientation, formats, modes, downscale, pass-through and bad inputs."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import zlib

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from gemini_ls.images.errors import ImageError
from gemini_ls.images.prepare import PreparedImage, prepare_image

MAX_SIDE = 1536
MAX_PIXELS = 100_000_000


def prep(raw: bytes, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> PreparedImage:
    return prepare_image(raw, name="image", max_side=max_side, max_pixels=max_pixels)


def decode(p: PreparedImage) -> np.ndarray:
    im = Image.open(io.BytesIO(p.data))
    assert im.size == (p.sent_width, p.sent_height)
    return np.asarray(im.convert("RGB"), dtype=np.int16)


def marker_picture(w: int = 96, h: int = 64) -> np.ndarray:
    """Four solid quadrants in different colours: every flip and rotation gives a different image."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (230, 20, 20)  # top-left red
    a[: h // 2, w // 2 :] = (20, 200, 20)  # top-right green
    a[h // 2 :, : w // 2] = (20, 20, 220)  # bottom-left blue
    a[h // 2 :, w // 2 :] = (240, 240, 30)  # bottom-right yellow
    return a


# What a viewer displays for a stored picture, per the EXIF 2.3 definition of Orientation,
# written with numpy only (independent of PIL's table).
DISPLAY = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirror horizontal
    3: lambda a: np.rot90(a, 2),  # rotate 180
    4: lambda a: a[::-1],  # mirror vertical
    5: lambda a: np.rot90(a[:, ::-1], 1),  # mirror horizontal + rotate 270 CW
    6: lambda a: np.rot90(a, -1),  # rotate 90 CW
    7: lambda a: np.rot90(a[:, ::-1], -1),  # mirror horizontal + rotate 90 CW
    8: lambda a: np.rot90(a, 1),  # rotate 270 CW
}


def encode(arr_or_im, fmt: str, *, orientation: int | None = None, **kw) -> bytes:
    im = Image.fromarray(arr_or_im) if isinstance(arr_or_im, np.ndarray) else arr_or_im
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_gives_what_the_viewer_shows(orientation, fmt):
    stored = marker_picture()
    expected = DISPLAY[orientation](stored).astype(np.int16)
    raw = encode(stored, fmt, orientation=orientation, **({"quality": 98} if fmt == "JPEG" else {}))
    p = prep(raw)
    h, w = expected.shape[:2]
    assert (p.width, p.height) == (w, h) == (p.sent_width, p.sent_height)
    if orientation >= 5:
        assert (p.width, p.height) == (64, 96)  # swapped
    got = decode(p)
    if fmt == "PNG":
        assert np.array_equal(got, expected)
    else:  # lossy: compare solid regions away from the seams
        diff = np.abs(got - expected)
        assert diff.mean() < 4, diff.mean()
        qh, qw = h // 4, w // 4
        for y in (qh, 3 * qh):
            for x in (qw, 3 * qw):
                assert diff[y, x].max() < 20
    if orientation == 1:
        assert p.data == raw  # nothing to do: the very same bytes


def test_pass_through_keeps_bytes_identical():
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        raw = encode(marker_picture(), fmt)
        p = prep(raw)
        assert p.data == raw, fmt
        assert p.mime_type == mime
        assert p.sha256 == hashlib.sha256(raw).hexdigest()
        assert (p.width, p.height, p.sent_width, p.sent_height) == (96, 64, 96, 64)


@pytest.mark.parametrize(
    "fmt,kw,mime",
    [
        ("GIF", {}, "image/png"),
        ("BMP", {}, "image/png"),
        ("TIFF", {}, "image/png"),
        ("ICO", {"sizes": [(64, 64)]}, "image/png"),
    ],
)
def test_formats_gemini_does_not_take_become_png(fmt, kw, mime):
    src = marker_picture(64, 64)
    raw = encode(src, fmt, **kw)
    p = prep(raw)
    assert p.mime_type == mime
    assert Image.open(io.BytesIO(p.data)).format == "PNG"
    assert (p.width, p.height) == (64, 64)
    got = decode(p)
    # GIF quantises to a palette; the quadrant colours survive closely
    assert np.abs(got - src.astype(np.int16)).mean() < 3


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    p = prep(out.getvalue())
    assert p.mime_type == "image/png"
    px = decode(p)[15, 20]
    assert px[0] > 200 and px[2] < 50  # red, the first frame


def test_heic_is_decoded_and_sent_as_jpeg():
    pillow_heif.register_heif_opener()
    src = marker_picture(128, 96)
    raw = encode(src, "HEIF", quality=95)
    p = prep(raw)
    assert p.mime_type == "image/jpeg"
    assert (p.width, p.height) == (128, 96)
    assert np.abs(decode(p) - src.astype(np.int16)).mean() < 8


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_heic_orientation_is_applied(orientation):
    # pillow-heif stores the EXIF orientation as HEIF irot/imir transforms and applies them on decode
    pillow_heif.register_heif_opener()
    src = marker_picture(128, 96)
    p = prep(encode(src, "HEIF", orientation=orientation, quality=95))
    expected = DISPLAY[orientation](src).astype(np.int16)
    assert (p.height, p.width) == expected.shape[:2]
    assert np.abs(decode(p) - expected).mean() < 8


def test_lossless_webp_with_rotation_becomes_png_and_lossy_becomes_jpeg():
    src = marker_picture()
    lossless = prep(encode(src, "WEBP", lossless=True, orientation=6))
    assert lossless.mime_type == "image/png"
    assert np.array_equal(decode(lossless), DISPLAY[6](src).astype(np.int16))
    lossy = prep(encode(src, "WEBP", quality=90, orientation=6))
    assert lossy.mime_type == "image/jpeg"
    assert (lossy.width, lossy.height) == (64, 96)


@pytest.mark.parametrize("size", [(4000, 3000), (1000, 5000), (1537, 10)])
def test_downscale_keeps_aspect_ratio(size):
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = 255  # left half white: must stay the left half
    p = prep(encode(arr, "PNG"))
    assert (p.width, p.height) == (w, h)
    scale = MAX_SIDE / max(w, h)
    assert (p.sent_width, p.sent_height) == (max(1, round(w * scale)), max(1, round(h * scale)))
    assert max(p.sent_width, p.sent_height) == MAX_SIDE
    got = decode(p)
    assert got[:, : p.sent_width // 2 - 2].min() > 200
    assert got[:, p.sent_width // 2 + 2 :].max() < 55


def test_large_rotated_jpeg_downscaled_with_display_dimensions():
    stored = np.kron(marker_picture(4, 3), np.ones((1000, 1000, 1), np.uint8))  # 4000x3000
    p = prep(encode(stored, "JPEG", orientation=6, quality=90))
    assert (p.width, p.height) == (3000, 4000)
    assert (p.sent_width, p.sent_height) == (1152, 1536)
    assert p.mime_type == "image/jpeg"
    expected = np.asarray(Image.fromarray(DISPLAY[6](stored)).resize((1152, 1536)), np.int16)
    assert np.abs(decode(p) - expected).mean() < 6


def test_modes_are_converted_sensibly():
    # palette with transparency -> RGBA PNG
    im = Image.new("P", (20, 20), 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.info["transparency"] = 0
    p = prep(encode(im.copy(), "GIF", transparency=0))
    assert p.mime_type == "image/png" and Image.open(io.BytesIO(p.data)).mode == "RGBA"
    # RGBA with an alpha channel that is fully opaque -> alpha dropped (TIFF source -> PNG)
    opaque = Image.new("RGBA", (20, 20), (10, 20, 30, 255))
    assert Image.open(io.BytesIO(prep(encode(opaque, "TIFF")).data)).mode == "RGB"
    # real alpha survives
    half = Image.new("RGBA", (20, 20), (10, 20, 30, 128))
    out = Image.open(io.BytesIO(prep(encode(half, "TIFF")).data))
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 128
    # 16-bit grey PNG -> 8-bit grey, scaled by the format's range
    arr16 = np.full((10, 10), 65535, np.uint16)
    arr16[:, :5] = 32896  # ~ half
    p16 = prep(encode(Image.fromarray(arr16), "PNG"))
    g = np.asarray(Image.open(io.BytesIO(p16.data)))
    assert g.dtype == np.uint8 and g[0, 9] == 255 and abs(int(g[0, 0]) - 128) <= 1
    # CMYK JPEG -> RGB JPEG
    cmyk = Image.new("CMYK", (30, 30), (0, 255, 255, 0))  # red in CMYK
    pc = prep(encode(cmyk, "JPEG"))
    rgb = Image.open(io.BytesIO(pc.data))
    assert rgb.mode == "RGB" and pc.mime_type == "image/jpeg"
    r, g_, b = rgb.getpixel((15, 15))
    assert r > 200 and g_ < 60 and b < 60


def _png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height, all black: tiny on disk, huge in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, between 89 and 179 MP
def test_decompression_bomb_refused_before_decoding():
    raw = _png_bomb(10_000, 10_000)  # 100 MP in ~12 KB
    assert len(raw) < 100_000
    with pytest.raises(ImageError) as e:
        prep(raw, max_pixels=50_000_000)
    assert e.value.reason == "too_many_pixels"
    assert "10000x10000" in str(e.value) and "IMAGE_MAX_PIXELS" in str(e.value)


def test_pillow_global_bomb_guard_reported_the_same_way():
    # 400 MP is above Pillow's own hard limit (2 x MAX_IMAGE_PIXELS), which fires inside Image.open
    raw = _png_bomb(20_000, 20_000)
    with pytest.raises(ImageError) as e:
        prep(raw, max_pixels=10**12)
    assert e.value.reason == "too_many_pixels"
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # never touched


def test_truncated_jpeg_is_corrupt():
    raw = encode(np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8), "JPEG")
    with pytest.raises(ImageError) as e:
        prep(raw[: len(raw) // 2])
    assert e.value.reason == "corrupt"
    assert "damaged or truncated" in str(e.value)


def test_garbage_after_valid_header_is_corrupt():
    raw = bytearray(encode(marker_picture(), "PNG"))
    raw[60:] = b"\xff" * (len(raw) - 60)
    with pytest.raises(ImageError) as e:
        prep(bytes(raw))
    assert e.value.reason == "corrupt"


@pytest.mark.parametrize(
    "raw,hint",
    [
        (b"hello, this is not a picture at all\n" * 10, "text file"),
        (b"<!DOCTYPE html><html><body>Please log in</body></html>", "HTML page"),
        (b'{"detail": "Authentication credentials were not provided."}', "JSON"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "SVG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (bytes(range(256)) * 4, "unknown file format"),
    ],
)
def test_not_an_image(raw, hint):
    with pytest.raises(ImageError) as e:
        prepare_image(raw, name="photo.jpg", max_side=MAX_SIDE, max_pixels=MAX_PIXELS)
    assert e.value.reason == "not_an_image"
    assert hint in str(e.value)
    assert "photo.jpg" not in str(e.value)  # the caller names the image ("image 'photo.jpg': ..."), once


def test_empty_bytes():
    with pytest.raises(ImageError) as e:
        prep(b"")
    assert e.value.reason == "empty"
    assert "0 bytes" in str(e.value)


def test_prepared_image_is_frozen():
    p = prep(encode(marker_picture(), "PNG"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.width = 1  # type: ignore[misc]
