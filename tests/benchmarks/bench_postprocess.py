"""Whole post-processing of one segmentation task: 25 detections -> brush RLE + polygon results.

Run: .venv/bin/python -m tests.benchmarks.bench_postprocess
Prints a markdown table and writes it to tests/benchmarks/results/regions.md (section
"Post-processing"). Memory is measured in a fresh subprocess (RSS high-water mark via
resource.getrusage, which also sees OpenCV's allocations) and with tracemalloc (numpy only).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import cv2
import numpy as np

from gemini_ls.detections import Detection, ImageMeta, NormBox, ParsedAnswer
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.regions import convert_for
from tests.benchmarks.bench_rle import HEIGHT, WIDTH, machine, make_blobs, write_section

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="brush" toName="image"><Label value="Object"/></BrushLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Object"/></PolygonLabels>
</View>"""


def make_answer() -> ParsedAnswer:
    """25 detections as Gemini sends them: a 256x256 soft probability map per box."""
    detections = []
    for i, blob in enumerate(make_blobs()):
        small = cv2.resize(blob.region.astype(np.float32), (256, 256), interpolation=cv2.INTER_AREA)
        prob = np.clip(cv2.GaussianBlur(small, (0, 0), 2.0) * 255, 0, 255).astype(np.uint8)
        b = blob.box
        box = NormBox(ymin=b.y0 / HEIGHT * 1000, xmin=b.x0 / WIDTH * 1000,
                      ymax=b.y1 / HEIGHT * 1000, xmax=b.x1 / WIDTH * 1000)
        detections.append(Detection("Object", "object", box=box, mask=prob, score=0.5 + i / 100))
    return ParsedAnswer(detections=tuple(detections))


def run_task(controls, image: ImageMeta, answer: ParsedAnswer) -> list[dict]:
    results = []
    for control in controls:
        results.extend(convert_for(control, {image.name: image}, answer).results)
    return results


def save_answer(answer: ParsedAnswer, path: str) -> None:
    boxes = np.array([[d.box.ymin, d.box.xmin, d.box.ymax, d.box.xmax] for d in answer.detections])
    np.savez(path, boxes=boxes, maps=np.stack([d.mask for d in answer.detections]))


def load_answer(path: str) -> ParsedAnswer:
    data = np.load(path)
    return ParsedAnswer(detections=tuple(
        Detection("Object", "object", box=NormBox(*map(float, b)), mask=m, score=0.5 + i / 100)
        for i, (b, m) in enumerate(zip(data["boxes"], data["maps"]))
    ))


def _memory_child(path: str) -> None:
    """In a fresh process holding only the task's input: peak RSS growth and tracemalloc peak.

    The answer is loaded from a file (25 x 64 KB maps) so that building the benchmark's full-size
    shapes does not raise the high-water mark before the measurement starts.
    """
    controls = parse_label_config(CONFIG).controls
    image = ImageMeta("image", WIDTH, HEIGHT)
    answer = load_answer(path)
    tiny = Detection("Object", "object", box=NormBox(0, 0, 5, 5), mask=answer.detections[0].mask)
    run_task(controls, image, ParsedAnswer(detections=(tiny,)))  # warm imports and caches
    # Imports peak higher than the steady state, so reset the high-water mark first (Linux:
    # "5" > clear_refs) and compare VmHWM with the RSS at the start; getrusage is the fallback.
    reset = _reset_peak_rss()
    before = _status_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    results = run_task(controls, image, answer)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_kb": after - before, "rss_total_kb": after, "traced": traced_peak,
                      "method": "VmHWM after clear_refs" if reset else "getrusage ru_maxrss",
                      "results": len(results)}))


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main() -> int:
    controls = parse_label_config(CONFIG).controls
    image = ImageMeta("image", WIDTH, HEIGHT)
    answer = make_answer()
    results = run_task(controls, image, answer)
    n_brush = sum(r["type"] == "brushlabels" for r in results)
    n_poly = sum(r["type"] == "polygonlabels" for r in results)
    assert n_brush == 25, n_brush

    times, cpu = [], []
    for _ in range(21):
        t0, c0 = time.perf_counter(), time.process_time()
        run_task(controls, image, answer)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    split = {}
    for control in controls:
        ts = []
        for _ in range(7):
            t0 = time.perf_counter()
            convert_for(control, {image.name: image}, answer)
            ts.append((time.perf_counter() - t0) * 1000)
        split[control.tag] = statistics.median(ts)

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/answer.npz"
        save_answer(answer, path)
        child = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_postprocess", "--memory", path],
                               capture_output=True, text=True, check=True)
    mem = json.loads(child.stdout.strip().splitlines()[-1])

    med = statistics.median(times)
    body = "\n".join([
        f"Command: `.venv/bin/python -m tests.benchmarks.bench_postprocess` ({machine()})",
        "",
        f"One task: {WIDTH}x{HEIGHT} image, 25 detections with 256x256 probability maps (the RLE masks' shapes,",
        "blurred), a BrushLabels and a PolygonLabels control sharing the answer -> "
        f"{n_brush} brush + {n_poly} polygon results.",
        "",
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| median wall time, whole task (21 runs) | {med:.1f} ms | < 100 ms |",
        f"| min / max wall time | {min(times):.1f} / {max(times):.1f} ms | |",
        f"| median CPU time (all threads; OpenCV uses 2) | {statistics.median(cpu):.1f} ms | |",
        f"| load average (1 min) when run | {os.getloadavg()[0]:.2f} | |",
        f"| of which BrushLabels (median) | {split['BrushLabels']:.1f} ms | |",
        f"| of which PolygonLabels (median) | {split['PolygonLabels']:.1f} ms | |",
        f"| peak extra RSS during the task (fresh process, {mem['method']}) | {mem['rss_kb'] / 1024:.1f} MB | < 200 MB |",
        f"| that process's peak RSS during the task (imports included) | {mem['rss_total_kb'] / 1024:.0f} MB | |",
        f"| tracemalloc peak (numpy allocations) | {mem['traced'] / 2**20:.1f} MB | |",
    ])
    print(body)
    write_section("Post-processing", body)
    return 0


if __name__ == "__main__":
    if "--memory" in sys.argv:
        _memory_child(sys.argv[sys.argv.index("--memory") + 1])
        sys.exit(0)
    sys.exit(main())
