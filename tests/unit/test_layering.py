"""The layering the README's architecture section promises, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

from gemini_ls.detections import DROP_REASONS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "backend" / "gemini_ls"


def _imported_modules(path: Path) -> set[str]:
    """Absolute dotted names of everything a module of gemini_ls imports."""
    tree = ast.parse(path.read_text())
    here = path.relative_to(PACKAGE.parent).with_suffix("").parts  # ("gemini_ls", "predict")
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_predict_imports_nothing_from_gemini():
    for name in ("predict.py", "batchrunner.py"):
        imports = _imported_modules(PACKAGE / name)
        assert not {m for m in imports if m.startswith(("gemini_ls.gemini", "google"))}, (name, sorted(imports))


def test_only_the_wiring_and_settings_import_the_gemini_package():
    allowed = {"backend.py", "cli.py", "preview.py"}  # wiring and commands; everything else goes through provider.py
    # settings.py reads GEMINI_MODEL / GEMINI_MASK_MODEL and takes their defaults from the model
    # table, a leaf module (it imports detections only); nothing else of gemini/.
    leaf_only = {"settings.py": {"gemini_ls.gemini.models"}}
    offenders = []
    for path in PACKAGE.glob("*.py"):
        if path.name in allowed:
            continue
        used = {m for m in _imported_modules(path) if m.startswith("gemini_ls.gemini")}
        used = {m for m in used if not any(m == ok or m.startswith(ok + ".") for ok in leaf_only.get(path.name, ()))}
        if used:
            offenders.append(path.name)
    assert not offenders, f"import gemini/ directly instead of going through provider.py: {offenders}"


def test_every_drop_reason_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Why a detection gives no region") :]
    table = table[: table.index("\n## ")]
    missing = [reason for reason in DROP_REASONS if f"`{reason}`" not in table]
    assert not missing, f"README's drop-reason table lacks {missing}"
