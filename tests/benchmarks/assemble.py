"""Rebuild tests/benchmarks/README.md from the tables the benchmarks wrote to results/.

Run:  .venv/bin/python -m tests.benchmarks.assemble   (after running any benchmark)
"""

from pathlib import Path

HERE = Path(__file__).parent
ORDER = [
    ("predict.md", "Issue 4: /predict throughput against the ideal"),
    ("regions.md", "Issue 5: brush RLE encoding and whole-task post-processing"),
    ("combined.md", "Issue 5: one combined request vs separate requests"),
    ("region_parts.md", "Issue 23 items 1-2: per-region questions in the regions' call"),
    ("files.md", "Issue 6: bytes and latency per task by Files API policy"),
    ("soak.md", "Issue 8: soak, 2 gunicorn workers, faults injected"),
    ("decode_memory.md", "Issue 11: peak RSS of a worker, 8 tasks on one 100 MP PNG"),
    ("models.md", "Issue 17: tokens per task by model routing (2.5 vs 3.x)"),
    ("interactive.md", "Issue 17: interactive pre-annotation overhead on a 12 MP photo"),
    ("interactive_choose.md", "Issue 24 item 6: interactive, the annotator's object when the model answers several"),
    ("jobs.md", "Issue 13: job workers scaling and the one-click 1,000-task time"),
    ("click.md", "Issue 22 item 11: one click over 1,000 tasks, click to the last prediction stored"),
    ("batch.md", "Issue 15: Batch API vs synchronous pre-labelling, peak RSS in JSONL mode"),
    ("fewshot.md", "Issue 14: few-shot examples, K=0 vs K=3 (tokens, uploads, label swaps)"),
    ("fewshot_cache.md", "Issue 24: few-shot K=3 overhead per task with the context cache vs without ($ per 1,000 tasks)"),
    ("page.md", "Issue 25: the jobs page's data for 100 jobs and 50 projects, and its Redis cost"),
    ("calibration.md", "Issue 24: calibrated region scores (ECE before / after) and tasks needing a fix sorted first"),
    ("tiling.md", "Issue 24: tiling, small-object recall and tokens on 12 MP and 24 MP photos"),
    ("estimate.md", "Issue 24: --estimate against the job that follows it"),
    ("multipage.md", "Issue 23 item 4: multi-page documents, one request vs one per page"),
    ("dynlabels.md", "Issue 23: labels from the task, reference pictures vs names (inventory template)"),
    ("ocr.md", "Issue 23: OCR, Label Studio's OCR template on pages of 30 lines (calls, tokens, time, line recall, transcriptions)"),
    ("vqa.md", "Issue 23 item 6: VQA, one request per task vs one per question"),
]

HEADER = """# Benchmarks

Benchmarks are run by a command, never as timed assertions in the test suite. Each section below is
the table its benchmark wrote (to `results/`), with the exact command that produced it; ratios are
from one run on this project's 2-core machine. Rebuild this file with
`.venv/bin/python -m tests.benchmarks.assemble`.
"""


def assembled() -> str:
    """The README the results files make (tests/unit/test_benchmarks_import.py checks it is the one committed)."""
    parts = [HEADER]
    for name, title in ORDER:
        path = HERE / "results" / name
        body = path.read_text().strip() if path.exists() else "_not run yet_"
        # demote the result files' own headings under this section's
        body = "\n".join(("#" + line if line.startswith("#") else line) for line in body.splitlines())
        parts.append(f"## {title}\n\n{body}\n")
    return "\n".join(parts)


def main() -> None:
    (HERE / "README.md").write_text(assembled())
    print((HERE / "README.md").read_text())


if __name__ == "__main__":
    main()
