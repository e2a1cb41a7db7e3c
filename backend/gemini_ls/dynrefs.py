"""Reference pictures of labels from the task (the inventory template's `html: <img src=...>`).

Each picture goes through the task's own image fetcher (SSRF guard, size and time caps, Label
Studio credentials only for Label Studio) and `prepare_image`, at a small side: a reference shows
one product, it does not need the scene's resolution. The pictures follow the plan's images in the
request, one per label, named by `PlannedRequest.references`; the prompt tells Gemini which label
each shows (gemini/dynprompts.py). They are sent as "used more than once" so that the Files API
policy uploads each once and every later task reuses the upload (its cache key is the bytes' hash).

A picture that cannot be had (404, too large, a blocked address, not an image) costs nothing but
itself: its label is still asked for by name, and the log says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from .detections import RequestKind
from .images.errors import ImageError
from .images.prepare import PreparedImage
from .plan import PlannedRequest

log = logging.getLogger("gemini_ls.dynrefs")

REFERENCE_MAX_SIDE = 512  # pixels, the long side a reference picture is sent at
# per request, and downloads tried per request (a task of 200 dead links must not take 200 timeouts);
# labels past it are asked by name (each picture costs tokens)
MAX_REFERENCE_IMAGES = 16
REFERENCE_USES = 2  # "needed by more than one request": the Files API policy uploads it once

# a picture's URL -> the prepared picture (fetch + prepare_image at REFERENCE_MAX_SIDE), or ImageError
Prepare = Callable[[str], PreparedImage]


@dataclass(frozen=True)
class References:
    plan: PlannedRequest  # with `references` set to the labels whose pictures are in `images`
    images: tuple[PreparedImage, ...]
    skipped: tuple[str, ...] = ()  # "<label>: why", for the log

    @property
    def uses(self) -> dict[str, int]:
        return {image.sha256: REFERENCE_USES for image in self.images}


def with_references(plan: PlannedRequest, prepare: Prepare, task_id: object = None) -> References:
    """`plan` with the reference pictures of its labels that could be had (spatial and point plans only)."""
    if not (plan.kind.spatial or plan.kind is RequestKind.POINTS):
        return References(plan, ())
    wanted = [label for label in plan.labels if label.reference]
    if not wanted:
        return References(plan, ())
    got: dict[str, PreparedImage | None] = {}  # by URL: one download per picture and task
    names: list[str] = []
    images: list[PreparedImage] = []
    skipped: list[str] = []
    for label in wanted:
        url = label.reference or ""
        if url not in got and len(got) >= MAX_REFERENCE_IMAGES:  # downloads tried, failed ones included
            skipped.append(f"{label.value}: more than {MAX_REFERENCE_IMAGES} reference pictures in one request")
            continue
        if url not in got:
            try:
                got[url] = prepare(url)
            except ImageError as exc:
                got[url] = None
                skipped.append(f"{label.value}: {exc}")
        image = got[url]
        if image is not None:
            names.append(label.value)
            images.append(image)
    for why in skipped:
        log.warning("task %s: reference picture not sent, the label is asked for by name (%s)", task_id, why)
    return References(replace(plan, references=tuple(names)), tuple(images), tuple(skipped))

