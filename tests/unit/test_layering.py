"""The import rules docs/architecture.md states ("Import rules", numbered as there), checked on the source."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
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
    for name in ("predict.py", "selectionrunner.py", "pagepredict.py"):
        imports = _imported_modules(PACKAGE / name)
        assert not {m for m in imports if m.startswith(("gemini_ls.gemini", "google"))}, (name, sorted(imports))


def test_only_the_wiring_and_settings_import_the_gemini_package():
    allowed = {"backend.py", "pipeline.py", "cli.py", "preview.py"}  # wiring and commands; everything else goes through provider.py
    # settings.py reads GEMINI_MODEL / GEMINI_MASK_MODEL and takes their defaults from the model
    # table, and parses GEMINI_PRICES against the price table: leaf modules (the model table imports
    # detections only, the price table nothing); nothing else of gemini/.
    # modelversion.py names the provider's prompt wording in model_version (PROMPT_VERSION; the
    # prompt module imports labelconfig only).
    leaf_only = {"settings.py": {"gemini_ls.gemini.models", "gemini_ls.gemini.pricing"},
                 "modelversion.py": {"gemini_ls.gemini.prompts"}}
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
    "textunits": set(),
    "labelstudio": {"urls"},
    "images": {"labelstudio", "urls"},
    "imagequestions": set(),
    "controlsettings": {"textunits", "tiling"},
    "labelconfig": {"controlsettings", "detections", "imagequestions", "scoremap", "textunits", "tiling"},
    "plan": {"detections", "labelconfig", "textunits"},
    "provider": {"detections", "images", "plan"},
    "regions": {"detections", "imagequestions", "labelconfig"},
    "taskquestions": {"labelconfig", "plan"},
    "dynlabels": {"labelconfig", "plan"},
    "dynrefs": {"detections", "images", "plan"},
    "predict": {"detections", "dynlabels", "dynrefs", "images", "labelconfig", "metrics", "plan", "provider", "regions",
                "settings", "taskquestions", "tiling"},
    "pages": {"detections", "labelconfig", "plan"},
    "pagepredict": {"detections", "images", "labelconfig", "metrics", "pages", "plan", "predict", "provider", "regions",
                    "settings", "taskquestions", "tiling"},
    "tiling": {"detections", "images"},
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
    """Rule 6: nothing of review/ (few-shot examples reach gemini/ typed) nor of regions/."""
    forbidden = {"regions", "review", "predict", "interactive", "jobs", "batch", "backend", "server", "cli", "emulator"}
    offenders = []
    for path in (PACKAGE / "gemini").rglob("*.py"):
        for module in sorted(_imported_modules(path)):
            layer = module.split(".")[1] if module.startswith("gemini_ls.") else None
            if layer in forbidden:
                offenders.append(f"gemini/{path.name}: {module}")
    assert not offenders, offenders


def test_review_never_imports_gemini():
    """Rule 6, the other way: few-shot flows one way, review/ chooses and types the examples. The one
    exception is the leaf price table, which `evaluate` (a command) prices its variants with."""
    offenders = [f"review/{path.name}: {module}" for path in (PACKAGE / "review").rglob("*.py")
                 for module in sorted(_imported_modules(path))
                 if module.startswith("gemini_ls.gemini") and not module.startswith("gemini_ls.gemini.pricing")]
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


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node` but those under `if TYPE_CHECKING:` (its `else:` runs, so it counts)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def _import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the modules of the package it imports when run, at the top or inside a function
    (`from .x import y` is the module x.y when that is one, else x; a package is its __init__)."""
    modules = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[: len(here) - node.level + 1]) if node.level else ""
                module = ".".join(p for p in (base, node.module or "") if p)
                for alias in node.names:
                    target = f"{module}.{alias.name}"
                    found.add(target if target in modules else module)
        graph[name] = {m for m in found if m in modules} - {name}
    return graph


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None (depth-first, iterative)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_no_module_imports_itself_through_others():
    """The package's import graph is acyclic (imports under `if TYPE_CHECKING:` aside): wiring
    builds from the bottom up, and any module can be imported first."""
    cycle = _a_cycle(_import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_cycle_check_sees_a_function_level_cycle_and_skips_type_checking(tmp_path):
    pkg = tmp_path / "gemini_ls"
    (pkg / "jobs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs" / "__init__.py").write_text("")
    (pkg / "wiring.py").write_text("from .jobs.queue import Queue\n")
    (pkg / "jobs" / "queue.py").write_text("def build():\n    from ..wiring import make\n")
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .wiring import make\n")
    (pkg / "plain.py").write_text("from . import typed\n")
    graph = _import_graph(pkg)
    assert graph["gemini_ls.typed"] == set() and graph["gemini_ls.plain"] == {"gemini_ls.typed"}
    assert _a_cycle(graph) == ["gemini_ls.jobs.queue", "gemini_ls.wiring", "gemini_ls.jobs.queue"]
    (pkg / "jobs" / "queue.py").write_text("def build():\n    pass\n")
    assert _a_cycle(_import_graph(pkg)) is None
