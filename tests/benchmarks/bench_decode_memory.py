"""Decode memory: peak RSS of a real server process while 8 tasks point at one 100 MP PNG.

The attack of issue 11: a ~300 KB PNG of 10,000 x 10,000 pixels (exactly IMAGE_MAX_PIXELS, so the
bomb guard lets it through) decodes to 300 MB of RGB. Eight tasks of one /predict pointing at it
took a worker from 127 MB to 3.66 GB. The bar: peak RSS under 1 GB with the default settings.

What runs: `gemini-ls serve` (gunicorn, WORKERS=1, THREADS=8, GEMINI_CONCURRENCY=8: the defaults)
under `/usr/bin/time -v`, Gemini = the emulator in its own process, the PNG served by a loopback
HTTP server (FETCH_ALLOWLIST=127.0.0.1). The worker's peak RSS is read from outside, from the
kernel's high-water mark (/proc/<worker>/status VmHWM) once the /predict has answered; `time -v`'s
"Maximum resident set size" (the largest of gunicorn's processes, reported when it exits) is the
cross-check. "before" is the worker's RSS after a warm-up /predict with a small image.

Run:  .venv/bin/python -m tests.benchmarks.bench_decode_memory [--tasks 8] [--before DIR]
      (--before DIR: also measure the code in DIR/backend, e.g. an unpacked `git archive main`)
Writes the table to tests/benchmarks/results/decode_memory.md.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY
from tests.benchmarks.bench_soak import children, free_port, wait_http
from tests.fixtures.servers import ImageServer
from tests.helpers import config, rect_control

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).parent / "results" / "decode_memory.md"
VENV_BIN = ROOT / ".venv" / "bin"
CONFIG = config(rect_control())
SIDE = 10_000
MB = 1024  # /proc and time -v report kB


def attack_png(side: int = SIDE) -> bytes:
    """A synthetic scene blown up to side x side pixels: ~300 KB of PNG, side**2 * 3 bytes decoded.
    Cached in the temp dir: compressing 100 MP takes ~10 s."""
    path = Path(tempfile.gettempdir()) / f"gemini-ls-attack-{side}.png"
    if path.exists():
        return path.read_bytes()
    small = make_scene(1000, 1000, 4, seed=7).image
    buf = io.BytesIO()
    small.resize((side, side), Image.Resampling.NEAREST).save(buf, "PNG", compress_level=6)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return buf.getvalue()


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Measurement:
    before_kb: int  # worker RSS after the warm-up
    peak_kb: int  # worker VmHWM after the attack
    time_max_kb: int  # /usr/bin/time -v: largest process of the server
    seconds: float  # the attack /predict's wall time
    answered: int  # tasks with a result
    tasks: int


def measure(emulator_url: str, *, tasks: int = 8, env: dict[str, str] | None = None,
            pythonpath: str | None = None, image: bytes | None = None) -> Measurement:
    """Start a server, warm it up, send `tasks` tasks pointing at the attack PNG in one /predict,
    read the worker's peak RSS, stop the server."""
    image = image if image is not None else attack_png()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full = dict(os.environ)
    for name in ("GOOGLE_API_KEY", "REDIS_URL", "BASIC_AUTH_USER", "PROMETHEUS_MULTIPROC_DIR"):
        full.pop(name, None)
    full.update(
        GEMINI_API_KEY=DEFAULT_API_KEY, GEMINI_BASE_URL=emulator_url, WORKERS="1", THREADS="8",
        GEMINI_CONCURRENCY="8", PREDICT_TIMEOUT="85", FETCH_ALLOWLIST="127.0.0.1", LOG_LEVEL="WARNING",
    )
    if pythonpath:
        full["PYTHONPATH"] = pythonpath
    full.update(env or {})
    timing = tempfile.NamedTemporaryFile("w", prefix="gemini-ls-time-", suffix=".txt", delete=False)
    timing.close()
    log = tempfile.NamedTemporaryFile("w", prefix="gemini-ls-decode-", suffix=".log", delete=False)
    server = subprocess.Popen(
        ["/usr/bin/time", "-v", "-o", timing.name, str(VENV_BIN / "gemini-ls"), "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        env=full, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    )
    try:
        with ImageServer() as images:
            big = images.add("/attack.png", image)
            small = images.add("/small.png", encode_image(make_scene(320, 240, 3, seed=1).image, "png"))
            wait_http(url + "/health", timeout=90)
            warm = requests.post(url + "/predict", json=_body([small]), timeout=120)
            assert warm.status_code == 200 and "result" in warm.json()["results"][0], warm.text[:300]
            worker = _worker(server.pid)
            before = _status_kb(worker, "VmRSS")
            started = time.monotonic()
            resp = requests.post(url + "/predict", json=_body([big] * tasks), timeout=180)
            seconds = time.monotonic() - started
            assert resp.status_code == 200, resp.text[:300]
            answered = sum("result" in r for r in resp.json()["results"])
            peak = _status_kb(worker, "VmHWM")
    finally:
        # Stop gunicorn's master, not the group: `time` must live to report what it measured.
        for pid in children(server.pid) or [server.pid]:
            os.kill(pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    text = Path(timing.name).read_text()
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return Measurement(before, peak, int(match.group(1)) if match else 0, seconds, answered, tasks)


def _body(urls: list[str]) -> dict:
    tasks = [{"id": i + 1, "data": {"image": u}} for i, u in enumerate(urls)]
    return {"tasks": tasks, "label_config": CONFIG, "project": "1.1", "params": {"context": None}}


def _worker(master: int) -> int:
    """The gunicorn worker under `time` -> gemini-ls (the master) -> worker."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        for pid in children(master):
            for worker in children(pid):
                return worker
        time.sleep(0.2)
    raise RuntimeError("no gunicorn worker found")


def start_emulator() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "gemini_ls.emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/_emulator/health")
    return proc, url


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--before", default=None, help="a directory holding the old code's backend/ to measure too")
    args = parser.parse_args()
    command = ".venv/bin/python -m tests.benchmarks.bench_decode_memory " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    image = attack_png()
    cases: list[tuple[str, dict[str, str], str | None]] = []
    if args.before:
        cases.append(("before the fix (main: no budget, plain LANCZOS)", {}, str(Path(args.before) / "backend")))
    cases += [
        ("defaults (IMAGE_DECODE_BUDGET=100 M pixels)", {}, None),
        ("budget off (IMAGE_DECODE_BUDGET=10^12)", {"IMAGE_DECODE_BUDGET": str(10**12)}, None),
    ]
    emulator, emu_url = start_emulator()
    rows = []
    try:
        for label, env, path in cases:
            m = measure(emu_url, tasks=args.tasks, env=env, pythonpath=path, image=image)
            print(label, m, flush=True)
            rows.append((label, m))
    finally:
        emulator.terminate()
        emulator.wait(10)
    lines = [
        f"{args.tasks} tasks in one /predict, each pointing at the same {SIDE:,} x {SIDE:,} PNG "
        f"({len(image) / 1024:.0f} KB, {SIDE * SIDE * 3 / 2**20:.0f} MB as RGB); one gunicorn worker with 8 threads, "
        "GEMINI_CONCURRENCY=8. Peak = the worker's VmHWM read from /proc after the answer; `time -v` = "
        "`/usr/bin/time -v`'s maximum RSS of the server's processes. Bar: peak < 1 GB by default.",
        "",
        "| settings | RSS before | peak RSS | `time -v` max RSS | /predict | tasks answered |",
        "|---|---|---|---|---|---|",
    ]
    for label, m in rows:
        lines.append(
            f"| {label} | {m.before_kb / MB:.0f} MB | **{m.peak_kb / MB:.0f} MB** | {m.time_max_kb / MB:.0f} MB | "
            f"{m.seconds:.1f} s | {m.answered}/{m.tasks} |"
        )
    lines += ["", f"Command: `{command}`"]
    if args.before:
        lines += ["", f"(`{args.before}` held the code before the fix: `git archive <commit> backend | tar -x -C {args.before}`.)"]
    lines.append("")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
