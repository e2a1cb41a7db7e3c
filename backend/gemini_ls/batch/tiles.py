"""Tiled plans in a Batch API job: one request per tile, keyed "task/plan:tile", merged when the
batch's results are read (tiling/tiled.py, the synchronous path's merge). Which plans tile and how
follows from the image sizes the job recorded (Predictor.grid_for), so the reader knows how many
results a task has without keeping the request list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ..detections import ParsedAnswer
from ..plan import PlannedRequest
from ..predict import Predictor, TaskFailure
from ..tiling.tiled import merge_answers

WHOLE = -1  # the tile number of an untiled request
T = TypeVar("T")


def request_key(task_id: Any, index: int, tile: int | None = None) -> str:
    """A request's key in the batch: task id / plan index, and ":tile" for a tile of a tiled plan."""
    return f"{task_id}/{index}" if tile is None else f"{task_id}/{index}:{tile}"


def split_key(key: str) -> tuple[str, tuple[int, int]]:
    """(task id, (plan index, tile or WHOLE)) of a request key."""
    task_id, _, rest = key.rpartition("/")
    index, _, tile = rest.partition(":")
    return task_id, (int(index), int(tile) if tile else WHOLE)


def by_plan(results: Mapping[tuple[int, int], T]) -> dict[int, dict[int, T]]:
    """A task's results keyed (plan index, tile) -> plan index -> tile -> result, plans in order."""
    out: dict[int, dict[int, T]] = {}
    for (index, tile), result in sorted(results.items()):
        out.setdefault(index, {})[tile] = result
    return out


def expected_results(plans: Sequence[PlannedRequest], sizes: Mapping[str, Sequence[int]]) -> int:
    """How many results a task has among `plans` (one batch's): one per plan, one per tile of a
    tiled one. `sizes`: the task's recorded image sizes, <Image> name -> (width, height)."""
    total = 0
    for plan in plans:
        known = [(int(sizes[n][0]), int(sizes[n][1])) for n in plan.image_names if n in sizes]
        grid = Predictor.grid_for(plan, known) if len(known) == len(plan.image_names) else None
        total += 1 if grid is None else len(grid.tiles)
    return total


def merged_answer(plan: PlannedRequest, answers: Mapping[int, ParsedAnswer], size: tuple[int, int]) -> ParsedAnswer:
    """A plan's answer from its results: the whole image's, or its tiles' (tile -> answer) merged."""
    if WHOLE in answers:
        return answers[WHOLE]
    grid = Predictor.grid_for(plan, [size])
    if grid is None or sorted(answers) != list(range(len(grid.tiles))):
        raise TaskFailure("internal", "the batch's tile answers do not match the image's tiles")
    return merge_answers([answers[k] for k in range(len(grid.tiles))], grid, text=plan.text_unit is not None)
