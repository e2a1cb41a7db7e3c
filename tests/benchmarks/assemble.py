"""Rebuild tests/benchmarks/README.md from the tables the benchmarks wrote to results/.

Run:  .venv/bin/python -m tests.benchmarks.assemble   (after running any benchmark)
"""

from pathlib import Path

HERE = Path(__file__).parent
ORDER = [
    ("predict.md", "Issue 4: /predict throughput against the ideal"),
    ("regions.md", "Issue 5: brush RLE encoding and whole-task post-processing"),
    ("combined.md", "Issue 5: one combined request vs separate requests"),
    ("files.md", "Issue 6: bytes and latency per task by Files API policy"),
    ("soak.md", "Issue 8: soak, 2 gunicorn workers, faults injected"),
    ("decode_memory.md", "Issue 11: peak RSS of a worker, 8 tasks on one 100 MP PNG"),
    ("models.md", "Issue 17: tokens per task by model routing (2.5 vs 3.x)"),
    ("interactive.md", "Issue 17: interactive pre-annotation overhead on a 12 MP photo"),
    ("jobs.md", "Issue 13: job workers scaling and the one-click 1,000-task time"),
    ("batch.md", "Issue 15: Batch API vs synchronous pre-labelling, peak RSS in JSONL mode"),
    ("fewshot.md", "Issue 14: few-shot examples, K=0 vs K=3 (tokens, uploads, label swaps)"),
    ("page.md", "Issue 25: the jobs page's data for 100 jobs and 50 projects, and its Redis cost"),
    ("calibration.md", "Issue 24: calibrated region scores (ECE before / after) and tasks needing a fix sorted first"),
    ("tiling.md", "Issue 24: tiling, small-object recall and tokens on 12 MP and 24 MP photos"),
    ("vqa.md", "Issue 23 item 6: VQA, one request per task vs one per question"),
]

HEADER = """# Benchmarks

Benchmarks are run by a command, never as timed assertions in the test suite. Each section below is
the table its benchmark wrote (to `results/`), with the exact command that produced it; ratios are
from one run on this project's 2-core machine. Rebuild this file with
`.venv/bin/python -m tests.benchmarks.assemble`.
"""


def main() -> None:
    parts = [HEADER]
    for name, title in ORDER:
        path = HERE / "results" / name
        body = path.read_text().strip() if path.exists() else "_not run yet_"
        # demote the result files' own headings under this section's
        body = "\n".join(("#" + line if line.startswith("#") else line) for line in body.splitlines())
        parts.append(f"## {title}\n\n{body}\n")
    (HERE / "README.md").write_text("\n".join(parts))
    print((HERE / "README.md").read_text())


if __name__ == "__main__":
    main()
