"""The import rules docs/architecture.md states ("Import rules", numbered as there), checked on the source."""

from __future__ import annotations

import ast
import sys
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
    imports = _imported_modules(PACKAGE / "predict.py")
    assert not {m for m in imports if m.startswith(("gemini_ls.gemini", "google"))}, sorted(imports)


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


def test_every_drop_reason_is_documented_in_operations():
    page = (ROOT / "docs" / "operations.md").read_text()
    table = page[page.index("## Why a detection gives no region") :]
    table = table[: table.index("\n## ")]
    missing = [reason for reason in DROP_REASONS if f"`{reason}`" not in table]
    assert not missing, f"docs/operations.md's drop-reason table lacks {missing}"


def _unit_of(path: Path) -> str:
    """The layer a file belongs to: its subpackage (`gemini`, `regions`, ...) or its module (`plan`)."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _layer_imports() -> dict[str, set[str]]:
    """layer -> the other gemini_ls layers its files import (`gemini_ls.x.y` counts as `x`)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = _unit_of(path)
        used = {m.split(".")[1] for m in _imported_modules(path) if m.startswith("gemini_ls.")}
        found.setdefault(unit, set()).update(used - {unit})
    return found


# Rules 1-5 of docs/architecture.md: the lower layers and everything they may import.
ALLOWED: dict[str, set[str]] = {
    "detections": set(),
    "urls": set(),
    "labelstudio": {"urls"},
    "images": {"labelstudio", "urls"},
    "labelconfig": {"detections"},
    "plan": {"detections", "labelconfig"},
    "provider": {"detections", "images", "plan"},
    "regions": {"detections", "labelconfig"},
    "predict": {"detections", "images", "labelconfig", "metrics", "plan", "provider", "regions", "settings"},
    "emulator": set(),
}


def test_lower_layers_import_only_what_the_architecture_page_allows():
    imports = _layer_imports()
    assert set(ALLOWED) <= set(imports), sorted(set(ALLOWED) - set(imports))
    extra = {unit: sorted(imports[unit] - allowed) for unit, allowed in ALLOWED.items() if imports[unit] - allowed}
    assert not extra, f"imports beyond docs/architecture.md's rules: {extra}"


def test_only_labelstudio_talks_to_label_studio():
    """Rule 9: label-studio-sdk's config parser and RLE decoder are used anywhere; its REST client
    nowhere (labelstudio/client.py says why)."""
    allowed = ("label_studio_sdk.label_interface", "label_studio_sdk.converter")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for module in sorted(_imported_modules(path)):
            if module.startswith("label_studio_sdk") and not module.startswith(allowed):
                offenders.append(f"{path.relative_to(PACKAGE)}: {module}")
    assert not offenders, offenders


def test_gemini_never_sees_label_studio_results_or_the_wiring():
    """Rule 6: from review/ only review.match (few-shot examples decode the annotator's brush RLE)."""
    forbidden = {"regions", "predict", "interactive", "jobs", "batch", "backend", "server", "cli", "emulator"}
    offenders = []
    for path in (PACKAGE / "gemini").rglob("*.py"):
        for module in sorted(_imported_modules(path)):
            layer = module.split(".")[1] if module.startswith("gemini_ls.") else None
            review_ok = module == "gemini_ls.review.match" or module.startswith("gemini_ls.review.match.")
            if layer in forbidden or (layer == "review" and not review_ok):
                offenders.append(f"gemini/{path.name}: {module}")
    assert not offenders, offenders


def test_only_the_entry_points_import_the_server_and_nothing_imports_the_cli():
    """Rule 8."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        used = {m.split(".")[1] for m in _imported_modules(path) if m.startswith("gemini_ls.")}
        if "server" in used and path.relative_to(PACKAGE).as_posix() not in ("cli.py", "wsgi.py"):
            offenders.append(f"{path.relative_to(PACKAGE)} imports server")
        if "cli" in used and path.relative_to(PACKAGE).as_posix() != "cli.py":
            offenders.append(f"{path.relative_to(PACKAGE)} imports cli")
    assert not offenders, offenders


def test_the_rules_fail_on_a_forbidden_import(tmp_path, monkeypatch):
    """The checks see a violation: a regions/ module importing gemini/ is reported."""
    fake = tmp_path / "gemini_ls"
    (fake / "regions").mkdir(parents=True)
    (fake / "regions" / "bad.py").write_text("from ..gemini.parse import parse_answer\nfrom ..detections import Box\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _layer_imports() == {"regions": {"gemini", "detections"}}


def test_every_module_is_in_the_architecture_page():
    page = (ROOT / "docs" / "architecture.md").read_text()
    table = page[page.index("## Modules") :]
    names = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    names |= {f"{p.name}/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    missing = sorted(n for n in names if f"`{n}`" not in table)
    assert not missing, f"docs/architecture.md's module table lacks {missing}"
