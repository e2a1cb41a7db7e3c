"""Turn downloaded bytes into what Gemini is sent: `prepare_image(raw, ...) -> PreparedImage`.

What Gemini must see is what the annotator sees, because Gemini's boxes (0-1000 of the image it
was sent) are mapped back onto Label Studio's image as percentages:

* EXIF orientation is applied (ImageOps.exif_transpose). Browsers rotate JPEG/PNG/WebP by their
  EXIF tag, so Label Studio shows the rotated picture and reports its rotated size; if Gemini got
  the stored pixels instead, every box on a portrait phone photo would land in the wrong place.
  `width`/`height` are therefore the size *after* the transpose (and before any downscale).
* Downscaling keeps the aspect ratio, so normalised coordinates are unchanged by it.

Format: the format is sniffed from the bytes, never from the URL or extension. Gemini takes PNG,
JPEG, WebP, HEIC and HEIF (docs/gemini-facts.md#images-and-tokens). Anything else (GIF: first frame, BMP,
TIFF: first page, ICO, AVIF, JPEG 2000, animated PNG/WebP: first frame...) is re-encoded:

* PNG when the picture has real transparency or came from a lossless format (screenshots, charts,
  scans: no JPEG ringing around thin lines, and they compress well);
* JPEG (quality 90) when it came from a lossy format (camera photos, HEIC, lossy WebP): a
  re-encoded photo as PNG would be 5-10x larger for no visible gain.

HEIC/HEIF is always decoded and re-encoded although Gemini accepts it: pillow-heif applies the
HEIF `irot`/`imir` transforms (and resets the EXIF tag), we cannot verify that Gemini honours them,
and re-encoding guarantees Gemini gets exactly the pixels whose size we report.

The original bytes go through untouched when nothing needs changing (accepted format, 8-bit
mode, orientation 1 or absent, single frame, longest side <= max_side): cheapest and exact. They
are still fully decoded once, so a truncated file fails here with a clear message instead of
inside Gemini.

Default max_side = 1536 (IMAGE_MAX_SIDE), from the token arithmetic in docs/gemini-facts.md#images-and-tokens: a
Gemini 2.x model bills an image with both sides <= 384 px as 258 tokens; anything larger is cut
into crops of min(w, h) / 1.5 px, each resampled to a 768 px tile (258 tokens each). The short
side is thus seen at about 768 * 1.5 = 1152 px whatever the upload's resolution, and the token
count depends on the aspect ratio, not on the pixel count. 1536 on the long side keeps the short
side >= 1152 px for every aspect ratio up to 4:3 (1536 x 1152), so Gemini loses no detail it
would have used, while a 24 MP photo shrinks from ~8 MB to ~0.5 MB: bigger images only cost
upload bandwidth and latency. (Gemini 3 bills a fixed amount per media_resolution level instead;
1536 px is still above what HIGH resolves.)

Decompression bombs: the header size is checked against `max_pixels` before any pixel is
decoded; PIL's own global guard (Image.MAX_IMAGE_PIXELS, which we never modify: it is process-wide
and not ours to race on) still raises above ~179 MP, which we report the same way.

Decode memory: a PNG of a few hundred KB can hold 100 MP (300 MB as RGB), so the pixel count of a
download says nothing about its size, and eight threads decoding such files at once took a worker
past 3.6 GB. Two things bound it:

* `DecodeBudget` (IMAGE_DECODE_BUDGET, default 100 M pixels): the pixels being decoded at once in
  this process, shared by all its threads. A decode waits until its pixels fit; one larger than the
  whole budget runs alone. With the default, eight tasks on a 100 MP PNG decode one after another
  and peak under 1 GB (tests/benchmarks/bench_decode_memory.py);
* decoding straight to the size sent where the format allows: JPEG through libjpeg's DCT scaling
  (`draft`, 1/2 to 1/8, never below the target), and a cheap integer `reduce` before the LANCZOS
  pass for everything else (`reducing_gap`), so the full-size copy is the only large buffer. PNG,
  WebP and HEIC have no scaled decode: their full-size pixels are what the budget counts.

The budget alone was not enough: glibc gives each thread its own malloc arena, and a 400 MB decode
freed by one thread stayed mapped in that thread's arena while the next decode, in another thread,
took 400 MB more (4 serialized decodes peaked at 1.7 GB). So the first budget a process creates
also fixes malloc's mmap threshold at 1 MiB (`mallopt(M_MMAP_THRESHOLD)`, what MALLOC_MMAP_THRESHOLD_
does from the environment): every large pixel buffer is then its own mapping, returned to the
system the moment it is freed (4 decodes: 650 MB, the same as one).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

ORIENTATION_TAG = 0x0112
JPEG_QUALITY = 90

# Formats Gemini accepts that we may send as they are; PIL calls camera multi-picture JPEGs "MPO"
# (their first image is a plain JPEG, which is what every viewer shows).
_PASS_THROUGH_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "WEBP": "image/webp"}
_PASS_THROUGH_MODES = {
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA"},
    "JPEG": {"L", "RGB"},
    "MPO": {"L", "RGB"},
    "WEBP": {"RGB", "RGBA"},
}
_LOSSY_FORMATS = {"JPEG", "MPO", "HEIF", "AVIF", "JPEG2000", "WEBP"}  # WEBP: unless VP8L, see below
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # these swap width and height
# Downscale by an integer box reduce first, then LANCZOS over the last factor of 3: Pillow's
# documentation calls the result indistinguishable from a LANCZOS pass over the full image.
REDUCING_GAP = 3.0
DEFAULT_DECODE_BUDGET = 100_000_000

_heif_lock = threading.Lock()
_heif_registered = False
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 1 << 20

log = logging.getLogger("gemini_ls.images")


@dataclass(frozen=True)
class PreparedImage:
    """One image ready for Gemini.

    width/height: the image as Label Studio shows it (after EXIF transpose, before downscale);
    sent_width/sent_height: the pixels Gemini gets; sha256 is of `data`.
    """

    name: str
    data: bytes
    mime_type: str
    width: int
    height: int
    sent_width: int
    sent_height: int
    sha256: str


class DecodeBudget:
    """Pixels being decoded at once, shared by every thread that holds this object.

    `hold(pixels)` waits until the pixels fit beside those already held; a request larger than the
    whole budget is treated as exactly the budget (it runs alone rather than never).
    """

    def __init__(self, pixels: int) -> None:
        if pixels < 1:
            raise ValueError("the decode budget must be positive")
        self.capacity = pixels
        self._used = 0
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._used

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        cost = max(1, min(pixels, self.capacity))
        with self._cond:
            while self._used + cost > self.capacity:
                self._cond.wait()
            self._used += cost
        try:
            yield
        finally:
            with self._cond:
                self._used -= cost
                self._cond.notify_all()


# The budget bounds a PROCESS's memory, so every caller in the process must share one: one per
# configured size (IMAGE_DECODE_BUDGET), created on first use and never changed afterwards.
_budgets: dict[int, DecodeBudget] = {}
_budgets_lock = threading.Lock()


def decode_budget(pixels: int = DEFAULT_DECODE_BUDGET) -> DecodeBudget:
    """The process-wide DecodeBudget of `pixels`."""
    with _budgets_lock:
        if not _budgets:
            _return_large_buffers_to_the_system()
        budget = _budgets.get(pixels)
        if budget is None:
            budget = _budgets[pixels] = DecodeBudget(pixels)
        return budget


def _return_large_buffers_to_the_system() -> bool:
    """Fix glibc's mmap threshold (see the module docstring); False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # musl and other libcs without mallopt
        done = False
    if not done:
        log.info("Could not set malloc's mmap threshold: decode memory may stay high after large images")
    return done


def prepare_image(
    raw: bytes, *, name: str, max_side: int, max_pixels: int, decode_pixels: int = DEFAULT_DECODE_BUDGET
) -> PreparedImage:
    """Validate, orient, convert and downscale `raw`; raises ImageError, never anything else.

    Messages do not name the image: the caller says which one it was ("image 'photo': ...").
    `decode_pixels` is IMAGE_DECODE_BUDGET, the process-wide budget this decode waits for.
    """
    if max_side < 1 or max_pixels < 1:
        raise ValueError("max_side and max_pixels must be positive")
    if not raw:
        raise ImageError("empty", "the file is empty (0 bytes)")
    _register_heif()
    try:
        return _prepare(raw, name=name, max_side=max_side, max_pixels=max_pixels, budget=decode_budget(decode_pixels))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError("too_many_pixels", str(exc)) from None
    except MemoryError:
        raise ImageError("too_many_pixels", "the picture is too large to decode in memory") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error... for bad data
        raise ImageError("corrupt", f"the picture is damaged or truncated ({_describe(exc)})") from None


def _prepare(raw: bytes, *, name: str, max_side: int, max_pixels: int, budget: DecodeBudget) -> PreparedImage:
    im = _open(raw)
    fmt = im.format or "?"
    stored_w, stored_h = im.size
    if stored_w < 1 or stored_h < 1:
        raise ImageError("corrupt", f"the picture ({fmt}) declares a size of {stored_w}x{stored_h}")
    if stored_w * stored_h > max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"the picture is {stored_w}x{stored_h} = {stored_w * stored_h / 1e6:.1f} megapixels, above "
            f"IMAGE_MAX_PIXELS={max_pixels:,} (a guard against decompression bombs); shrink it or raise the limit",
        )
    fits = max(stored_w, stored_h) <= max_side  # rotation never changes the longest side
    target_stored = _target_size(stored_w, stored_h, max_side)
    if fmt in ("JPEG", "MPO") and not fits:
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target): a 50 MP photo then
        # costs a fraction of the memory and time. Must happen before load().
        im.draft(im.mode, target_stored)
    with budget.hold(im.size[0] * im.size[1]):  # after draft: the pixels actually decoded
        return _decode(im, raw, fmt, name=name, max_side=max_side, fits=fits, stored=(stored_w, stored_h))


def _decode(
    im: Image.Image, raw: bytes, fmt: str, *, name: str, max_side: int, fits: bool, stored: tuple[int, int]
) -> PreparedImage:
    stored_w, stored_h = stored
    animated = bool(getattr(im, "is_animated", False)) and fmt != "MPO"
    # Decode now, before anything reads metadata: PNG's getexif() loads the image itself and a
    # failure there would be swallowed (a failed load leaves nothing to retry), hiding corruption.
    im.load()
    orientation = _orientation(im)
    rotated = orientation in _ROTATED_ORIENTATIONS
    width, height = (stored_h, stored_w) if rotated else (stored_w, stored_h)

    if (
        fmt in _PASS_THROUGH_MIME
        and im.mode in _PASS_THROUGH_MODES[fmt]
        and orientation in (None, 1)
        and fits
        and not animated
    ):
        return _result(name, raw, _PASS_THROUGH_MIME[fmt], width, height, width, height)

    target = _target_size(width, height, max_side)
    im = ImageOps.exif_transpose(im) if orientation not in (None, 1) else im
    im = _normalize_mode(im)
    if im.size != target:
        im = im.resize(target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    data, mime = _encode(im, lossy_source=_is_lossy(fmt, raw))
    return _result(name, data, mime, width, height, im.size[0], im.size[1])


def _open(raw: bytes) -> Image.Image:
    # Between MAX_IMAGE_PIXELS and twice that Pillow emits a DecompressionBombWarning; we leave it
    # alone (silencing it would mean mutating the process-wide warnings filters) and enforce our limit.
    try:
        return Image.open(io.BytesIO(raw))
    except UnidentifiedImageError:
        raise ImageError("not_an_image", f"not a picture: {_sniff_hint(raw)}") from None


def _orientation(im: Image.Image) -> int | None:
    try:
        value = im.getexif().get(ORIENTATION_TAG)
    except Exception:  # a broken EXIF block should not cost us the picture
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    # The long side becomes exactly max_side; the short one is rounded, never below 1 px.
    if width >= height:
        return max_side, max(1, round(height * scale))
    return max(1, round(width * scale)), max_side


def _normalize_mode(im: Image.Image) -> Image.Image:
    """8-bit L/LA/RGB/RGBA; alpha kept only when some pixel is actually transparent."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode.startswith("I") or mode == "F":
        im = _to_8bit_gray(im)
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode not in ("LA", "RGBA"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX...
    if im.mode in ("LA", "RGBA"):
        lowest_alpha = im.getchannel("A").getextrema()[0]
        if lowest_alpha == 255:
            im = im.convert("L" if im.mode == "LA" else "RGB")
    return im


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float grey to 8-bit: scaled by the format's range, not by the data,
    so a dark 16-bit scan stays dark (except for floats and out-of-range ints, which have no range)."""
    arr = np.asarray(im)
    out: np.ndarray
    if im.mode.startswith("I;16"):
        out = (arr.astype(np.uint32) // 257).astype(np.uint8)
    else:
        arr = arr.astype(np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo >= 0 and hi <= 255 and im.mode != "F":
            out = arr
        elif lo >= 0 and hi <= 65535 and im.mode != "F":
            out = arr / 257.0
        elif lo >= 0 and hi <= 1.0:
            out = arr * 255.0
        else:
            out = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        out = np.clip(np.nan_to_num(out), 0, 255).round().astype(np.uint8)
    return Image.fromarray(out, "L")


def _is_lossy(fmt: str, raw: bytes) -> bool:
    if fmt == "WEBP":
        # VP8L is WebP's lossless codec; "VP8 " (space) the lossy one. Both sit near the start.
        return b"VP8L" not in raw[:64]
    return fmt in _LOSSY_FORMATS


def _encode(im: Image.Image, *, lossy_source: bool) -> tuple[bytes, str]:
    out = io.BytesIO()
    if im.mode in ("LA", "RGBA") or not lossy_source:
        im.save(out, "PNG")
        return out.getvalue(), "image/png"
    im.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), "image/jpeg"


def _result(name: str, data: bytes, mime: str, w: int, h: int, sw: int, sh: int) -> PreparedImage:
    return PreparedImage(
        name=name, data=data, mime_type=mime, width=w, height=h, sent_width=sw, sent_height=sh,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _register_heif() -> None:
    # pillow-heif registers itself in PIL's (process-wide) plugin table; do it exactly once.
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True


def _sniff_hint(raw: bytes) -> str:
    head = raw[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "the server returned an HTML page (a login or error page?) instead of the image"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG is not supported; export the picture as PNG or JPEG"
    if head.startswith((b"{", b"[")):
        return "the server returned JSON (an error message?) instead of the image"
    if raw.startswith(b"%PDF"):
        return "it is a PDF document; export the page as PNG or JPEG"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in raw[:256]):
        return "it is a text file"
    return f"unknown file format ({len(raw):,} bytes); supported: JPEG, PNG, WebP, HEIC/HEIF, GIF, BMP, TIFF"


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
