"""Every benchmark script imports: a renamed fixture broke two of them unnoticed (they run by hand,
not in CI), so their imports at least are checked on every run."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("bench_*.py"))


def test_there_are_benchmarks() -> None:
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports(name: str) -> None:
    module = importlib.import_module(f"tests.benchmarks.{name}")
    assert callable(getattr(module, "main", None)), f"{name} has no main()"


def test_benchmarks_readme_is_what_the_results_assemble_to() -> None:
    """A table written into README.md by hand and not into results/ is lost on the next
    `python -m tests.benchmarks.assemble`; a results file left out of ORDER is never shown."""
    from tests.benchmarks import assemble

    listed = {name for name, _ in assemble.ORDER}
    on_disk = {p.name for p in (BENCH / "results").glob("*.md")}
    assert on_disk <= listed, f"results not in assemble.ORDER: {sorted(on_disk - listed)}"
    assert (BENCH / "README.md").read_text() == assemble.assembled()
