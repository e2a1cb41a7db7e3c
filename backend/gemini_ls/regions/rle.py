"""Label Studio brush RLE, encoded straight from a box-sized mask, and decoded back.

The format (thi.ng rle-pack, as written by `label_studio_sdk.converter.brush.encode_rle`):

* the image is flattened row-major to RGBA, so every pixel value appears 4 times in a row;
* header: 32 bits value count (4 * width * height), 5 bits word size - 1 (8 bits -> 7),
  then four 4-bit "length field size - 1" entries for the size classes 3, 4, 8 and 16 bits;
* then one record per run of equal values (big-endian bit order, no byte alignment):
  - a run of length 1 is a literal group of one word: `0 00 000 <8-bit value>` (14 bits);
  - length 2..8:    `1 00 <L-1: 3 bits> <value>`  (14 bits)
  - length 9..16:   `1 01 <L-1: 4 bits> <value>`  (15 bits)
  - length 17..256: `1 10 <L-1: 8 bits> <value>`  (19 bits)
  - longer:          k records `1 11 <65535: 16 bits> <value>` for each full 65536 while more
    than 65536 remain, then `1 11 <rest-1: 16 bits> <value>` (27 bits each, even if the rest
    is short: the SDK never falls back to a smaller class for the tail);
* the stream is padded with 8 - (bits % 8) zero bits: a whole extra zero byte when it was
  already aligned. This quirk is reproduced so our output is byte-identical to the SDK.

Speed: the SDK builds a Python string bit by bit over the whole 4-channel image (~46 ms for a
4000x3000 mask). Here everything outside the box is known to be zero, so runs are found only
inside the box (one vectorised comparison over the box), mapped to full-image offsets
arithmetically, and the records are packed with numpy. Cost is O(box pixels + runs).

Decoding (`decode_brush`: an annotator's brush region -> its mask, for review matching and few-shot
examples) goes through the SDK's `decode_rle`, the reference reader of what Label Studio's editor
writes (which, unlike this encoder, also emits literal groups of several words).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..detections import PixelBox

CHANNELS = 4  # Label Studio repeats each mask value into R, G, B and A
WORD_BITS = 8
_LONG_CHUNK = 1 << 16  # longest run one 16-bit record can hold
_HEADER_TAIL_BITS = 21  # 5 bits word size + 4 x 4 bits length-field sizes
# word size 8 -> 0b00111, size classes 3, 4, 8, 16 -> 2, 3, 7, 15 (4 bits each)
_HEADER_TAIL = (7 << 16) | (2 << 12) | (3 << 8) | (7 << 4) | 15
_MAX_VALUES = (1 << 32) - 1  # the count field is 32 bits


def encode_brush_rle(region: np.ndarray, box: PixelBox, width: int, height: int) -> list[int]:
    """RLE bytes of a width x height mask that is zero everywhere except `region` at `box`.

    `region` is box.height x box.width; bool gives 0/255 (opaque brush), uint8 values are used
    as they are. The result equals `mask2rle(full_mask)` for the pasted full-image mask.
    """
    values, scale = _as_values(region)
    if values.shape != (box.height, box.width):
        raise ValueError(f"region shape {values.shape} does not match box {box}")
    if not (0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height):
        raise ValueError(f"box {box} is not inside a {width}x{height} image")
    total = width * height
    if total * CHANNELS > _MAX_VALUES:
        raise ValueError(f"a {width}x{height} image is too large for Label Studio's 32-bit RLE count")
    starts, run_values = _runs_in_image(values, box, width, total, binary=scale == 255)
    lengths = np.diff(starts, append=total) * CHANNELS
    return _pack(lengths, run_values * scale, total * CHANNELS)


def encode_full_mask(mask: np.ndarray) -> list[int]:
    """RLE bytes of a whole-image mask (bool -> 0/255, uint8 as is): same bytes as `mask2rle`."""
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError("mask must be a non-empty 2-D array")
    h, w = mask.shape
    return encode_brush_rle(mask, PixelBox(0, 0, w, h), w, h)


def decode_brush(value: Mapping[str, Any], width: int, height: int) -> np.ndarray | None:
    """A brush region's mask (bool, height x width) from its `value["rle"]`; None when unusable.

    A pixel belongs to the mask when its alpha is non-zero, as the editor draws it.
    """
    from label_studio_sdk.converter.brush import decode_rle  # imported on use: the SDK is slow to import

    rle = value.get("rle")
    if not isinstance(rle, list) or not rle:
        return None
    try:
        flat = np.asarray(decode_rle(rle), dtype=np.uint8)
        return flat.reshape(height, width, 4)[:, :, 3] > 0
    except Exception:  # malformed RLE from a client: no mask, never a crash
        return None


def _as_values(region: np.ndarray) -> tuple[np.ndarray, int]:
    """The region as uint8 plus the factor its run values need (bool: 1 -> 255).

    A bool mask is read through a free uint8 view; only the few run values get scaled,
    which saves a full pass over the box.
    """
    if region.ndim != 2:
        raise ValueError("region must be 2-D")
    if region.dtype == np.bool_:
        return region.view(np.uint8), 255
    if region.dtype == np.uint8:
        return region, 1
    if np.issubdtype(region.dtype, np.integer) and (region.size == 0 or (region.min() >= 0 and region.max() <= 255)):
        return region.astype(np.uint8), 1
    raise ValueError(f"region must be bool or uint8 (0..255), got {region.dtype}")


def _runs_in_image(
    values: np.ndarray, box: PixelBox, width: int, total: int, binary: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets (pixels, full image, ascending, first is 0) and values of all runs.

    `binary` says `values` holds only 0/1, which allows the bit-packed change search.
    """
    bh, bw = values.shape
    row_base = (np.arange(bh, dtype=np.int64) + box.y0) * width + box.x0  # offset of each box row
    gap = bw < width  # zeros separate consecutive box rows (and surround the box)
    first_offset = int(row_base[0])

    # Changes inside a row: pixel c (c >= 1) differs from pixel c-1.
    inner_rows, inner_cols = _binary_changes(values) if binary else _byte_changes(values)
    inner_starts = row_base[inner_rows] + inner_cols
    inner_values = values[inner_rows, inner_cols]

    first_col = values[:, 0]
    last_col = values[:, -1]
    tail_starts = row_base + bw  # where the zeros after a row begin (gap, next row or image tail)
    if gap:
        # Each row is preceded by zeros (the gap or the image start) and followed by zeros.
        row_starts_mask = first_col != 0
        tail_starts_mask = last_col != 0
    else:
        # Full-width box: rows touch each other; only the first row follows the zeros above.
        row_starts_mask = np.empty(bh, dtype=bool)
        row_starts_mask[1:] = first_col[1:] != last_col[:-1]
        row_starts_mask[0] = first_col[0] != 0
        tail_starts_mask = np.zeros(bh, dtype=bool)
        tail_starts_mask[-1] = last_col[-1] != 0
    if first_offset == 0:
        row_starts_mask[0] = True  # the very first pixel always opens a run
    tail_starts_mask &= tail_starts < total  # nothing follows the image's last pixel

    starts = np.concatenate((
        row_base[row_starts_mask], inner_starts, tail_starts[tail_starts_mask]
    ))
    run_values = np.concatenate((
        first_col[row_starts_mask], inner_values, np.zeros(int(tail_starts_mask.sum()), np.uint8)
    ))
    order = np.argsort(starts, kind="stable")
    starts = starts[order]
    run_values = run_values[order]
    if first_offset > 0:  # leading zeros before the box
        starts = np.concatenate(([0], starts))
        run_values = np.concatenate(([0], run_values)).astype(np.uint8)
    return starts, run_values


def _byte_changes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of every pixel that differs from its left neighbour, any uint8 values."""
    bh, bw = values.shape
    if bw == 1:
        empty = np.empty(0, np.int64)
        return empty, empty
    flat = np.flatnonzero(values[:, 1:] != values[:, :-1])
    rows, cols = np.divmod(flat, bw - 1)
    return rows, cols + 1


def _binary_changes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of every pixel that differs from its left neighbour, for 0/1 values.

    The box is packed 64 pixels to a word (one cheap pass), so finding the edges is one
    shift-and-XOR per 64 pixels; only the few words holding an edge are decoded bit by bit.
    This is about twice as fast as comparing bytes and scanning the result.
    """
    bh, bw = values.shape
    n = bh * bw
    packed = np.packbits(values.reshape(-1))  # row-major, first pixel in the top bit
    packed = np.concatenate((packed, np.zeros(-packed.size % 8, np.uint8)))
    words = packed.view(">u8").astype(np.uint64)
    previous = np.zeros_like(words)  # each bit's left neighbour
    previous[1:] = words[:-1] << np.uint64(63)
    previous |= words >> np.uint64(1)
    edges = words ^ previous
    hot = np.flatnonzero(edges != 0)
    edge_words = edges[hot]
    found: list[np.ndarray] = []
    while edge_words.size:  # peel the lowest set bit off each word; usually 1-2 rounds
        lowest = edge_words & (~edge_words + np.uint64(1))
        _, exponent = np.frexp(lowest.astype(np.float64))  # exact: lowest is a power of two
        found.append(hot * 64 + (64 - exponent))  # bit k from the top is pixel 64*word + k
        edge_words = edge_words ^ lowest
        keep = edge_words != 0
        hot, edge_words = hot[keep], edge_words[keep]
    pos = np.sort(np.concatenate(found)) if found else np.empty(0, np.int64)
    rows, cols = np.divmod(pos, bw)
    inside = (cols != 0) & (pos < n)  # a row's first pixel is compared with the row above: not an edge here
    return rows[inside], cols[inside]


def _pack(lengths: np.ndarray, run_values: np.ndarray, count: int) -> list[int]:
    """Serialise runs (lengths in values, not pixels) exactly like the SDK's encode_rle."""
    rec_len, rec_val = _split_long_runs(lengths.astype(np.int64), run_values.astype(np.int64))

    # Size class 0..3 -> length field of 3, 4, 8 or 16 bits; a record is flag + 2-bit class +
    # field + 8-bit value. A lone value is the literal form: flag 0, class 0, field 0.
    size_class = (rec_len > 8).astype(np.int64) + (rec_len > 16) + (rec_len > 256)
    bits = _RECORD_BITS[size_class]
    repeat_flag = (rec_len > 1).astype(np.int64)
    code = (repeat_flag << (bits - 1)) | (size_class << (bits - 3)) | ((rec_len - 1) << 8) | rec_val

    # Header as two more records: 32-bit value count, then word size and the size table.
    code = np.concatenate(([count, _HEADER_TAIL], code)).astype(np.uint64)
    bits = np.concatenate(([32, _HEADER_TAIL_BITS], bits)).astype(np.uint64)
    ends = np.cumsum(bits)
    starts = ends - bits
    total_bits = int(ends[-1])
    # Each record (<= 32 bits) shifted into the top of a 64-bit word at its bit phase spans at
    # most 5 bytes from its first byte. Records never share bits, so adding bytes == OR-ing.
    word = code << (np.uint64(64) - bits - (starts & np.uint64(7)))
    window = word.astype(">u8").view(np.uint8).reshape(-1, 8)[:, :5]
    where = (starts >> np.uint64(3)).astype(np.int64)[:, None] + np.arange(5)
    nbytes = total_bits // 8 + 1  # the SDK always pads with 1..8 zero bits
    packed = np.bincount(where.ravel(), weights=window.ravel(), minlength=nbytes + 5)
    return list(packed[:nbytes].astype(np.uint8).tobytes())  # list(bytes) is faster than tolist()


_RECORD_BITS = np.array([14, 15, 19, 27], dtype=np.int64)


def _split_long_runs(lengths: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs longer than 65536 become full 65536-records and a rest, as the SDK writes them."""
    big = np.flatnonzero(lengths > _LONG_CHUNK)
    if big.size == 0:
        return lengths, values
    full = (lengths[big] - 1) // _LONG_CHUNK
    counts = np.ones(lengths.size, dtype=np.int64)
    counts[big] += full
    rec_len = np.repeat(lengths, counts)
    rec_val = np.repeat(values, counts)
    first = (np.cumsum(counts) - counts)[big]
    # Few long runs (image margins, the gaps above and below boxes): a short loop is clearest.
    for f, k, n in zip(first.tolist(), full.tolist(), lengths[big].tolist()):
        rec_len[f:f + k] = _LONG_CHUNK
        rec_len[f + k] = n - k * _LONG_CHUNK
    return rec_len, rec_val
