"""Brush RLE encoding: ours (from the box) vs the SDK's mask2rle (full image), same bytes.

Run: .venv/bin/python -m tests.benchmarks.bench_rle
Prints a markdown table and writes it to tests/benchmarks/results/regions.md (section "RLE").
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from label_studio_sdk.converter.brush import mask2rle

from gemini_ls.detections import PixelBox
from gemini_ls.regions.rle import encode_brush_rle

WIDTH, HEIGHT = 4000, 3000
N_MASKS = 25
RESULTS = Path(__file__).parent / "results" / "regions.md"


@dataclass(frozen=True)
class Blob:
    """A realistic object mask: a shape drawn inside its box (the box-sized region)."""

    box: PixelBox
    region: np.ndarray  # bool, box.height x box.width
    coverage: float  # fraction of the image the mask covers


def _shape(rng: np.random.Generator, ellipse: bool, bw: int, bh: int, params: np.ndarray) -> np.ndarray:
    """An ellipse, or an irregular 14-gon (radii from `params`), filling a bh x bw box."""
    canvas = np.zeros((bh, bw), np.uint8)
    if ellipse:
        cv2.ellipse(canvas, (bw // 2, bh // 2), (max(bw // 2 - 1, 1), max(bh // 2 - 1, 1)), 0, 0, 360, 1, -1)
    else:
        angles, radii = params
        pts = np.stack([bw / 2 + radii * np.cos(angles) * (bw / 2 - 1),
                        bh / 2 + radii * np.sin(angles) * (bh / 2 - 1)], axis=1)
        cv2.fillPoly(canvas, [pts.round().astype(np.int32)], 1)
    return canvas.astype(bool)


def make_blobs(seed: int = 7, n: int = N_MASKS, width: int = WIDTH, height: int = HEIGHT) -> list[Blob]:
    """n masks covering 1..30% of the image each: ellipses and irregular polygons in their boxes.

    Each shape's fill ratio is measured on a small raster first, so the box is sized to give
    the intended coverage.
    """
    rng = np.random.default_rng(seed)
    blobs = []
    for i, coverage in enumerate(np.linspace(0.01, 0.30, n)):
        ellipse = i % 2 == 0
        params = np.stack([np.sort(rng.uniform(0, 2 * np.pi, 14)), rng.uniform(0.55, 1.0, 14)])
        fill = _shape(rng, ellipse, 256, 256, params).mean()
        aspect = rng.uniform(0.6, 1.6)
        area = coverage * width * height / fill
        bw = int(min(width, np.sqrt(area * aspect)))
        bh = int(min(height, area / bw))
        x0 = int(rng.integers(0, width - bw + 1))
        y0 = int(rng.integers(0, height - bh + 1))
        region = _shape(rng, ellipse, bw, bh, params)
        blobs.append(Blob(PixelBox(x0, y0, x0 + bw, y0 + bh), region, region.sum() / (width * height)))
    return blobs


def full_mask(blob: Blob, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    b = blob.box
    mask[b.y0:b.y1, b.x0:b.x1] = blob.region * np.uint8(255)
    return mask


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def machine() -> str:
    import os

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}, opencv {cv2.__version__}, load average {os.getloadavg()[0]:.2f}")


def write_section(name: str, body: str) -> None:
    """Replace (or append) the `## name` section of regions.md, keeping the other sections."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = RESULTS.read_text() if RESULTS.exists() else "# Region conversion benchmarks\n"
    head = f"## {name}\n"
    parts = text.split("\n## ")
    kept = [parts[0].rstrip("\n")] + ["## " + p.rstrip("\n") for p in parts[1:] if not ("## " + p).startswith(head)]
    RESULTS.write_text("\n\n".join(kept + [head + body.rstrip("\n")]) + "\n")


def main() -> int:
    blobs = make_blobs()
    rows = []
    ours_all, sdk_all = [], []
    for i, blob in enumerate(blobs):
        full = full_mask(blob)
        ours_bytes = encode_brush_rle(blob.region, blob.box, WIDTH, HEIGHT)
        sdk_bytes = mask2rle(full)
        assert ours_bytes == sdk_bytes, f"mask {i}: bytes differ from mask2rle"
        ours = _median_ms(lambda blob=blob: encode_brush_rle(blob.region, blob.box, WIDTH, HEIGHT), 21)
        sdk = _median_ms(lambda full=full: mask2rle(full), 3)
        ours_all.append(ours)
        sdk_all.append(sdk)
        rows.append((i, blob.coverage, blob.box, len(ours_bytes), ours, sdk))
    med_ours, med_sdk = statistics.median(ours_all), statistics.median(sdk_all)
    lines = [
        f"Command: `.venv/bin/python -m tests.benchmarks.bench_rle` ({machine()})",
        "",
        f"{WIDTH}x{HEIGHT} image, {N_MASKS} masks (ellipses and irregular polygons) covering 1-30% each.",
        "Ours encodes from the box-sized region; `mask2rle` gets the full 0/255 mask. Bytes asserted identical.",
        "",
        "| mask | coverage | box (w x h) | RLE bytes | ours ms | mask2rle ms | speed-up |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, cov, box, nbytes, ours, sdk in rows:
        lines.append(f"| {i} | {cov:.1%} | {box.width}x{box.height} | {nbytes} | {ours:.3f} | {sdk:.1f} | {sdk / ours:.0f}x |")
    lines += [
        "",
        f"**Median per mask: ours {med_ours:.3f} ms, mask2rle {med_sdk:.1f} ms, ratio {med_sdk / med_ours:.0f}x** "
        f"(target >= 50x). Sum over 25 masks: ours {sum(ours_all):.1f} ms, mask2rle {sum(sdk_all):.0f} ms.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("RLE encoding", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
