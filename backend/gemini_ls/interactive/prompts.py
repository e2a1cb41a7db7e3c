"""The annotator's prompt as an instruction added to the usual segmentation/detection prompt.

The base prompt (gemini/prompts.py) names the labels and the output shape; these lines narrow it to
what the annotator pointed at. Points are [y, x] in 0-1000 like everything else Gemini reads and
writes. The emulator (emulator/interactive.py) reads the same lines.
"""

from __future__ import annotations

import json

from ..detections import NORM
from .context import Click

POINTS_HEADER = "The annotator pointed at one object. Points as [y, x] normalized to 0-1000:"
POSITIVE = "- on the object:"
NEGATIVE = "- not on the object:"
BOX_LINE = "The annotator drew a box around one object; this image is a crop around that box. The box in this image is"
PHRASE_LINE = "The annotator asked for every object matching this description:"


def click_instruction(clicks: tuple[Click, ...], label: str) -> str:
    lines = [POINTS_HEADER]
    for click in clicks:
        point = [round(click.y / 100 * NORM), round(click.x / 100 * NORM)]
        lines.append(f"{POSITIVE if click.positive else NEGATIVE} {point}")
    lines.append(
        "Return exactly ONE entry: the single object under the points marked on the object, excluding what "
        f"is under the points marked not on it, with the label {json.dumps(label)}."
    )
    return "\n".join(lines)


def box_instruction(box_in_crop: list[int], label: str) -> str:
    return (
        f"{BOX_LINE} [ymin, xmin, ymax, xmax] = {box_in_crop}.\n"
        f"Return exactly ONE entry: the object inside that box, with the label {json.dumps(label)}."
    )


def phrase_instruction(phrase: str) -> str:
    return (
        f"{PHRASE_LINE} {json.dumps(phrase, ensure_ascii=False)}\n"
        "Return only the objects that match the description, each with the label (from the list) it fits best; "
        "return an empty list when nothing matches."
    )
