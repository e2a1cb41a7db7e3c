"""What a newcomer tripped over (issue 11): noisy logs, a warning that does not apply, error texts
that say the same thing twice, a preview that cuts a long caption.

The CLI runs as a real subprocess (`gemini-ls predict`, no API key, GEMINI_EMULATOR=embedded: the
built-in emulator), the way a newcomer runs it; its stderr is what they read.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gemini_ls.emulator.scenes import encode_image
from gemini_ls.preview import draw_overlay
from tests.faults.common import assert_failed, good_task, jpeg, predict, scene

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "label_config.xml"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "LABEL_STUDIO_"))}
    full.update({"LOG_LEVEL": "INFO", "GEMINI_EMULATOR": "embedded", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "gemini_ls.cli", *args], capture_output=True, text=True, env=full, cwd=ROOT, timeout=180
    )


def test_cli_on_local_files_logs_no_library_chatter_and_no_label_studio_warning(tmp_path):
    paths = []
    for seed in (1, 2, 3):
        path = tmp_path / f"scene{seed}.png"
        path.write_bytes(encode_image(scene(seed).image, "png"))
        paths.append(str(path))
    done = _cli("predict", *paths, "--config", str(EXAMPLE_CONFIG), "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    err = done.stderr
    assert "AFC is enabled" not in err, "google-genai's per-call INFO line is back"
    assert "HTTP Request:" not in err, "httpx's per-request INFO line is back"
    assert "No Label Studio credentials" not in err, "a Label Studio warning on local files"
    assert "EMULATOR" in err  # what does matter is still said (no API key: the built-in emulator)


def test_cli_error_text_names_the_image_once(tmp_path):
    broken = tmp_path / "broken.jpg"
    data = jpeg(5)
    broken.write_bytes(data[: len(data) // 2])
    done = _cli("predict", str(broken), "--config", str(EXAMPLE_CONFIG), "--quiet")
    assert done.returncode == 1
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("FAILED")]
    assert "damaged or truncated" in line, line
    assert line.lower().count("image 'image'") == 1, line  # was "image 'image': Image 'image' is damaged ..."


def test_late_tasks_are_summed_up_in_one_log_line_per_batch(backend_factory, emu, caplog):
    caplog.set_level(logging.INFO)
    backend = backend_factory(PREDICT_TIMEOUT="1.5", GEMINI_CONCURRENCY="4", GEMINI_TIMEOUT="30")
    emu.add_fault("latency", count=4, args={"seconds": 4})
    results = predict(backend, [good_task(i) for i in (1, 2, 3, 4)])
    for entry in results:
        assert_failed(entry, "PREDICT_TIMEOUT")
    late_lines = [
        r.getMessage() for r in caplog.records
        if r.name.startswith("gemini_ls") and r.levelno >= logging.WARNING
        and re.match(r"\d+ of \d+ tasks not finished within PREDICT_TIMEOUT", r.getMessage())
    ]
    # (the once-per-process "one-click write-back is OFF" notice names PREDICT_TIMEOUT too: not a late line)
    assert len(late_lines) == 1, late_lines
    assert "4 of 4 tasks" in late_lines[0] and all(f"task {i}" in late_lines[0] for i in (1, 2, 3, 4)), late_lines


def test_preview_wraps_a_long_caption_instead_of_cutting_it():
    """The caption bar under the image holds the whole caption, inside the image's width."""
    caption = " ".join(["a long caption word"] * 30) + " " + "x" * 90  # and one word wider than the image
    w, h = 240, 120
    image = Image.new("RGB", (w, h), (40, 40, 40))
    region = {"from_name": "caption", "type": "textarea", "value": {"text": [caption]}}
    out = draw_overlay(image, [region])
    text_width = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(f"caption: {caption}")
    needed_lines = math.ceil(text_width / (w - 12))
    assert out.height >= h + 8 + 16 * needed_lines, (out.size, needed_lines)
    bar = np.asarray(out.convert("L"))[h:, :]
    ink_columns = np.nonzero((bar < 128).any(axis=0))[0]
    assert ink_columns.size and ink_columns.max() < w - 3, "text runs into the right edge"
    ink_rows = np.nonzero((bar < 128).any(axis=1))[0]
    assert ink_rows.max() - ink_rows.min() >= 16 * (needed_lines - 1), "the caption is on fewer lines than it needs"
