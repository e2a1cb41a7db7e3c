"""Fetch + prepare in one call, with failures of either step counted by reason."""

from __future__ import annotations

from .errors import ImageError
from .fetch import ImageFetcher
from .prepare import PreparedImage, prepare_image


def load_image(fetcher: ImageFetcher, url: str, *, name: str, settings, metrics=None,
               task_id: int | str | None = None) -> PreparedImage:
    """The task image `url` ready for Gemini. Raises ImageError; fetch failures are counted by
    the fetcher, preparation failures here (same metric, gemini_ls_image_fetch_errors)."""
    raw = fetcher.fetch(url, task_id=task_id)
    try:
        return prepare_image(
            raw, name=name, max_side=settings.image_max_side, max_pixels=settings.image_max_pixels,
            decode_pixels=settings.image_decode_budget,
        )
    except ImageError as exc:
        if metrics is not None:
            metrics.image_fetch_errors.labels(reason=exc.reason).inc()
        raise
