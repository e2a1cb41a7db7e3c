"""Multi-page documents, `<Image valueList="$pages">`: the pure part (which pages, which requests, where
each result goes).

Label Studio stores a region drawn on page i of such an image with `to_name` the image's name and
`"item_index": i` beside it (its multi-image `Image` tag; 0-based, the position in the task's list).
The backend sends each page as an image of its own, named `page_name(image, i)` inside the task, so
every step below (fetching, the Files API cache, converting, region ids) works on pages as on
images; `on_page` puts the results back on the document.

One request or one per page (`choose_mode`, per-control override `model_pages`):
- `separate` when a request must see one image: tiling is on (a tile grid cuts one image), or the
  document has a single page;
- `together` when all the pages fit one request: at most PAGES_TOGETHER_MAX images, and the answer
  for all of them fits the kind's output room (pages x model_max_objects x the tokens one item
  takes, per-region attributes included). Input tokens are the same either way (each page is sent
  once), but together sends the prompt once instead of once per page, and makes one call;
- `separate` otherwise (a dense document would be cut off at the output limit).
Choices and TextArea on the document are always one request with every page (they are about the
whole document), their result on the image without `item_index`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .detections import RequestKind
from .labelconfig import ControlSpec, ImageSpec, LabelConfigError, ProjectSpec
from .plan import PlannedRequest

PAGE_MODES = ("auto", "together", "separate")
PAGES_TOGETHER_MAX = 16  # images in one request before `auto` asks page by page (attention spreads thin)
# Output tokens one answer item takes (box + label + confidence + image_index, as Gemini writes them),
# each per-region attribute on top, and the output room of each kind (gemini/kinds.py KINDS, kept
# equal by tests/unit/test_pages.py).
ITEM_TOKENS: Mapping[RequestKind, int] = {RequestKind.BOXES: 32, RequestKind.POINTS: 28, RequestKind.MASKS: 400}
ATTRIBUTE_TOKENS = 40
OUTPUT_ROOM: Mapping[RequestKind, int] = {RequestKind.BOXES: 8192, RequestKind.POINTS: 4096, RequestKind.MASKS: 32768}
_SEP = "#page"


class PageListError(ValueError):
    """The task's field of a valueList image is not a list of pages: the task fails with this message."""


@dataclass(frozen=True)
class Page:
    """Page `index` (0-based, Label Studio's item_index) of `image`: its reference, or why it has none."""

    image: str
    index: int
    ref: str | None
    problem: str | None = None

    @property
    def name(self) -> str:
        return page_name(self.image, self.index)


@dataclass(frozen=True)
class PageList:
    image: str
    pages: tuple[Page, ...]  # the pages sent (at most MAX_PAGES)
    total: int  # pages in the task

    @property
    def note(self) -> str | None:
        """What the task's note says of pages not sent at all (MAX_PAGES)."""
        if self.total <= len(self.pages):
            return None
        return (f"<Image name={self.image!r}>: {self.total} pages, only the first {len(self.pages)} predicted "
                f"(MAX_PAGES={len(self.pages)})")


def page_name(image: str, index: int) -> str:
    return f"{image}{_SEP}{index}"


def read_pages(data: Mapping[str, Any], image: ImageSpec, max_pages: int) -> PageList:
    """The pages of `image` in a task's data, capped at `max_pages`. An entry that is not a usable
    reference is a page with a `problem` (that page fails, the others do not); a field that is not
    a list fails the task (PageListError)."""
    raw = data.get(image.value_key)
    if not isinstance(raw, list):
        got = "missing" if raw is None else f"a {type(raw).__name__}"
        raise PageListError(f"<Image name={image.name!r} valueList=\"${image.value_key}\"> needs data[{image.value_key!r}] "
                            f"to be a list of page image URLs; it is {got}")
    pages = []
    for index, entry in enumerate(raw[:max_pages]):
        if isinstance(entry, str) and entry.strip():
            pages.append(Page(image.name, index, entry.strip()))
        else:
            pages.append(Page(image.name, index, None, f"page {index} is not an image URL ({type(entry).__name__})"))
    return PageList(image.name, tuple(pages), len(raw))


def control_modes(spec: ProjectSpec) -> dict[str, str]:
    """Each control's `model_pages` (auto when absent). LabelConfigError on a value not in PAGE_MODES."""
    modes: dict[str, str] = {}
    for control in spec.interface.controls if spec.interface is not None else ():
        raw = str((control.attr or {}).get("model_pages") or "auto").strip().lower()
        if raw not in PAGE_MODES:
            raise LabelConfigError(f"{control.name}: model_pages={raw!r}: one of {', '.join(PAGE_MODES)}")
        modes[control.name] = raw
    return modes


def requested_mode(controls: Sequence[ControlSpec], modes: Mapping[str, str]) -> str:
    """The mode the controls sharing a request ask for: separate wins (the safe one), then together."""
    asked = {modes.get(c.name, "auto") for c in controls}
    return "separate" if "separate" in asked else "together" if "together" in asked else "auto"


def choose_mode(requested: str, plan: PlannedRequest, n_pages: int) -> str:
    """`together` (one request with every page) or `separate` (one per page) for a spatial or
    pointing plan over `n_pages` pages; the rule is the module docstring's."""
    if n_pages <= 1 or plan.tiling != "off":
        return "separate"
    if requested != "auto":
        return requested
    per_item = ITEM_TOKENS[plan.kind] + ATTRIBUTE_TOKENS * len(plan.attributes)
    fits = n_pages * plan.max_objects * per_item <= OUTPUT_ROOM[plan.kind]
    return "together" if n_pages <= PAGES_TOGETHER_MAX and fits else "separate"


def _on(controls: Sequence[ControlSpec], names: tuple[str, ...]) -> tuple[ControlSpec, ...]:
    return tuple(replace(c, to_names=names) for c in controls)


def _expanded(names: Sequence[str], pages: Mapping[str, Sequence[Page]]) -> tuple[str, ...]:
    return tuple(n for name in names for n in ([p.name for p in pages[name]] if name in pages else [name]))


def page_plans(plan: PlannedRequest, pages: Mapping[str, Sequence[Page]], modes: Mapping[str, str]) -> list[PlannedRequest]:
    """`plan` as sent for a task whose valueList images have `pages` (the fetched ones, by image): its
    images replaced by their pages, its controls bound to exactly the images it sends (a detection's
    image_index is then its page's position). A plan of no multi-page image stays as it is."""
    if not any(name in pages for name in plan.image_names):
        return [plan]
    if plan.kind.per_task:
        names = _expanded(plan.image_names, pages)
        return [replace(plan, image_names=names, controls=_on(plan.controls, names))] if names else []
    (image,) = plan.image_names  # spatial and pointing plans are per image (plan.py)
    names = tuple(p.name for p in pages[image])
    if not names:
        return []
    if choose_mode(requested_mode(plan.controls, modes), plan, len(names)) == "together" and len(names) > 1:
        return [replace(plan, image_names=names, controls=_on(plan.controls, names), max_objects=plan.max_objects * len(names))]
    return [replace(plan, image_names=(n,), controls=_on(plan.controls, (n,))) for n in names]


def on_page(result: Mapping[str, Any], pages: Mapping[str, Page], *, region: bool) -> dict:
    """A result converted on a page, as Label Studio stores it on the document: `to_name` the image,
    and for a region `item_index` its page. Results on other images pass unchanged."""
    page = pages.get(str(result.get("to_name")))
    if page is None:
        return dict(result)
    moved = {**result, "to_name": page.image}
    if region:
        moved["item_index"] = page.index
    return moved
