"""A task with multi-page documents (`<Image valueList="$pages">`), predicted page by page or all pages
in one request (pages.py decides and maps; this module fetches and asks).

Every page is fetched through the same SSRF-guarded fetcher as any image and sent through the same
provider (the Files API cache decides inline or upload per page, by GEMINI_FILES). A page that
cannot be fetched or decoded costs only its own regions: the task goes on with the other pages and
its outcome's `note` (logged with the task) says which page failed and why. Only when no page at
all can be had does the task fail. Pages past MAX_PAGES are not sent, and the note says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .detections import ImageMeta, ParsedAnswer
from .images.prepare import PreparedImage
from .labelconfig import LabelConfigError, ProjectSpec
from .pages import Page, PageList, PageListError, control_modes, on_page, page_plans, read_pages
from .plan import PlannedRequest
from .predict import Fetch, Predictor, TaskFailure, TaskOutcome, image_refs
from .regions import convert_for

log = logging.getLogger("gemini_ls.pages")


def has_pages(spec: ProjectSpec) -> bool:
    return any(image.value_list for image in spec.images)


class PagePredictor(Predictor):
    """The Predictor, with tasks of multi-page images handled here (every other task as before)."""

    def predict_task(
        self,
        task: Mapping[str, Any],
        spec: ProjectSpec,
        plans: Sequence[PlannedRequest],
        fetch: Fetch,
        *,
        deadline: float,
        uses_by_ref: Mapping[str, int] | None = None,
    ) -> TaskOutcome:
        if not has_pages(spec):
            return super().predict_task(task, spec, plans, fetch, deadline=deadline, uses_by_ref=uses_by_ref)
        started = time.monotonic()
        return self.guarded(task.get("id"), started, lambda: self._predict_pages(task, spec, plans, fetch, deadline, started))

    def _page_lists(self, task: Mapping[str, Any], spec: ProjectSpec, needed: set[str]) -> list[PageList]:
        data = task.get("data")
        if not isinstance(data, Mapping):
            raise TaskFailure("task_data", f"task {task.get('id')} has no 'data' object")
        try:
            return [read_pages(data, image, self.settings.max_pages) for image in spec.images
                    if image.value_list and image.name in needed]
        except PageListError as exc:
            raise TaskFailure("task_data", f"task {task.get('id')}: {exc}") from exc

    def _fetch_pages(self, lists: Sequence[PageList], task_id: Any, fetch: Fetch,
                     notes: list[str], raws: dict[str, bytes]) -> tuple[dict[str, list[Page]], dict[str, PreparedImage]]:
        """The pages that could be had, by image, and their prepared images by page name (their bytes
        into `raws`, for tiling); a page that could not adds its reason to `notes`."""
        fetched: dict[str, list[Page]] = {}
        prepared: dict[str, PreparedImage] = {}
        for pages in lists:
            fetched[pages.image] = []
            if pages.note:
                notes.append(pages.note)
            for page in pages.pages:
                if page.ref is None:
                    notes.append(f"<Image name={page.image!r}> {page.problem}: its regions are not predicted")
                    continue
                try:
                    prepared[page.name], raws[page.name] = self.prepare_one(page.name, page.ref, task_id, fetch)
                except TaskFailure as exc:
                    notes.append(f"<Image name={page.image!r}> page {page.index} ({exc.reason}): {exc.message}: "
                                 "its regions are not predicted")
                    continue
                fetched[pages.image].append(page)
        return fetched, prepared

    def _predict_pages(self, task: Mapping[str, Any], spec: ProjectSpec, plans: Sequence[PlannedRequest],
                       fetch: Fetch, deadline: float, started: float) -> TaskOutcome:
        task_id = task.get("id")
        try:
            modes = control_modes(spec)
        except LabelConfigError as exc:
            raise TaskFailure("label_config", str(exc)) from exc
        needed = {name for plan in plans for name in plan.image_names}
        lists = self._page_lists(task, spec, needed)
        notes: list[str] = []
        raws: dict[str, bytes] = {}
        pages, prepared = self._fetch_pages(lists, task_id, fetch, notes, raws)
        if lists and not any(pages.values()):
            raise TaskFailure("no_pages", "no page of the document could be predicted: " + "; ".join(notes or ["it has no pages"]))
        plain = needed - set(pages)
        for name, ref in image_refs(task, spec, sorted(plain)).items():
            prepared[name], raws[name] = self.prepare_one(name, ref, task_id, fetch)
        by_name = {page.name: page for found in pages.values() for page in found}
        sent = [p for plan in plans for p in page_plans(plan, pages, modes)]
        uses: dict[str, int] = {}
        for plan in sent:
            for name in plan.image_names:
                uses[prepared[name].sha256] = uses.get(prepared[name].sha256, 0) + 1
        metas = {n: ImageMeta(n, p.width, p.height) for n, p in prepared.items()}
        results: list[dict] = []
        for plan in sent:
            if time.monotonic() >= deadline:
                raise TaskFailure("timeout", "the task ran out of time before all its Gemini requests were made")
            plan = plan.for_task(task_id)
            images = [prepared[n] for n in plan.image_names]
            plan_uses = {im.sha256: uses[im.sha256] for im in images}
            grid = self.grid_for(plan, [(im.width, im.height) for im in images])
            if grid is None:
                answer = self._ask(plan, images, plan_uses, deadline, task_id)
            else:  # model_tiling: a page asked on its own (pages.choose_mode), tile by tile
                answer = self._ask_tiles(plan, images[0], raws[plan.image_names[0]], grid, plan_uses, deadline, task_id)
            results.extend(on_page(r, by_name, region=not plan.kind.per_task) for r in self._page_regions(plan, metas, answer))
        outcome = self.finish(spec, task_id, results, started)
        if notes:
            log.warning("task %s: %s", task_id, "; ".join(notes))
            outcome = replace(outcome, note="; ".join(notes))
        return outcome

    def _page_regions(self, plan: PlannedRequest, metas: Mapping[str, ImageMeta], answer: ParsedAnswer) -> list[dict]:
        """Every control's results: its controls are bound to exactly the plan's images, so a detection's
        image_index is its page's position (pages.page_plans)."""
        results: list[dict] = []
        for control in plan.controls:
            conversion = convert_for(control, {n: metas[n] for n in plan.image_names}, answer)
            for reason, count in conversion.dropped.items():
                self.metrics.items_dropped.labels(reason).inc(count)
            results.extend(conversion.results)
        return results
