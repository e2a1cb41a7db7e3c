"""The README stays an entry point and the docs stay true: its length, every relative link and
anchor in README.md and docs/*.md, the docs index, and the facts the pages list that the code also
holds (metrics, the control -> request kind -> model table)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from label_studio_sdk.label_interface import control_tags

from gemini_ls.detections import RequestKind
from gemini_ls.labelconfig import CONTROL_KINDS
from gemini_ls.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README_MAX_LINES = 250

# [text](target) and ![alt](target), with an optional "title"; nested brackets are not used here.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced blocks and inline code, where `[x](y)` is not a link."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, spaces and
    hyphens kept), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes for the headings of one Markdown file (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for _, title in _HEADING.findall(_FENCE.sub("", path.read_text())):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in _LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...: not ours to check
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{target}: {_shown(dest)} does not exist")
        elif anchor:
            if dest.suffix != ".md":
                problems.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{target}: no heading with anchor #{anchor} in {_shown(dest)}")
    return problems


def test_slug_matches_github():
    assert slug("Why 1536 px?") == "why-1536-px"
    assert slug("Whole projects: one click, `gemini-ls prelabel`, workers") == "whole-projects-one-click-gemini-ls-prelabel-workers"
    assert slug("Why a detection gives no region (`gemini_ls_items_dropped_total{reason}`)") == (
        "why-a-detection-gives-no-region-gemini_ls_items_dropped_totalreason"
    )


def test_broken_links_are_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [bad](#nope) `[code](x.md)`\n"
                    "```\n[fenced](y.md)\n```\n[web](https://example.com/x)\n")
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert any("missing.md" in p for p in problems) and any("#nope" in p for p in problems)


def test_readme_is_an_entry_point_of_at_most_250_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail to docs/"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    problems = broken_links(page)
    assert not problems, "\n".join(problems)


def test_the_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text()
    linked = {Path(t.partition("#")[0]).name for t in _LINK.findall(_prose(index))}
    missing = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md" and p.name not in linked)
    assert not missing, f"docs/README.md does not link {missing}"


def _registered_metrics() -> set[str]:
    """Every metric family the code registers: the per-process Metrics, plus the collectors that
    read Redis at scrape time (review ledger, Batch jobs)."""
    names = {family.name for family in Metrics().registry.collect()}
    for path in (ROOT / "backend" / "gemini_ls").rglob("*.py"):
        names.update(re.findall(r'MetricFamily\(\s*"(gemini_ls_\w+)"', path.read_text()))
    return {n.removesuffix("_total") for n in names}


def test_every_metric_is_documented_in_operations_and_none_is_stale():
    page = (DOCS / "operations.md").read_text()
    section = page[page.index("## Metrics"):]
    section = section[: section.index("\n## ")]
    documented = {n.removesuffix("_total") for n in re.findall(r"`(gemini_ls_\w+)`", section)}
    registered = _registered_metrics()
    assert len(registered) > 30, sorted(registered)
    assert not registered - documented, f"docs/operations.md's metrics table lacks {sorted(registered - documented)}"
    assert not documented - registered, f"docs/operations.md names metrics the code does not have: {sorted(documented - registered)}"


def _model_of(kind: RequestKind) -> str:
    return "GEMINI_MASK_MODEL" if kind is RequestKind.MASKS else "GEMINI_MODEL"


def test_readme_routing_table_matches_the_code():
    """README's short table names the main tags (docs/label-configs.md has every one, below); each
    row it has must say what the code does."""
    readme = (ROOT / "README.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", readme, re.M)}
    for tag in ("RectangleLabels", "BrushLabels", "PolygonLabels", "KeyPointLabels", "Choices", "TextArea"):
        assert tag in rows, f"README's control table lacks {tag}"
    for tag, row in rows.items():
        if tag not in CONTROL_KINDS:
            continue  # the settings table
        kind = CONTROL_KINDS[tag][1]
        assert f"`{kind.value}`" in row, row
        assert row.split("|")[3].strip().startswith(f"`{_model_of(kind)}`"), row


def test_label_configs_tag_table_lists_every_image_control():
    """docs/label-configs.md's tag table: every tag the code fills with its request and model, and
    every other image control of Label Studio with why not."""
    page = (DOCS / "label-configs.md").read_text()
    section = page[page.index("## Every Label Studio image control"):]
    section = section[: section.index("\n## ")]
    rows = {tag: line for line in section.splitlines() if line.startswith("| `")
            for tag in re.findall(r"`(\w+)`", line.split("|")[1])}
    for tag, (_, kind) in CONTROL_KINDS.items():
        assert tag in rows, f"the tag table lacks {tag}"
        cells = [c.strip() for c in rows[tag].split("|")]
        assert cells[2].startswith("yes"), rows[tag]
        assert f"`{kind.value}`" in cells[3], rows[tag]
        assert cells[4].startswith(f"`{_model_of(kind)}`"), rows[tag]
    for tag in ("Labels", "Number", "Rating", "Pdf", "Taxonomy", "Relations", "MagicWand", "BrushLabels", "Bitmask"):
        assert tag in rows, f"the tag table lacks {tag}"
    # every control tag of the Label Studio SDK this project pins (issue 23 item 6), and the Pdf object
    sdk_tags = {c.model_fields["tag"].default for _, c in inspect.getmembers(control_tags, inspect.isclass)
                if issubclass(c, control_tags.ControlTag) and c is not control_tags.ControlTag}
    assert len(sdk_tags) >= 35 and not sdk_tags - set(rows), f"the tag table lacks {sorted(sdk_tags - set(rows))}"
