"""Prompt wording for labels from the task (dynlabels.py): reference pictures and phrases.

- Reference pictures follow the plan's own images in the request ("Image N:" parts, wire.py): each
  label with one is described as the object "shown in reference image N", and a lead line says
  which images are searched and which are references, so boxes come back for the searched image.
- Phrases (the visual-genome template) are referring expressions: the lead asks for the one region
  each phrase describes, the phrase as its label, and nothing for a phrase the image does not show.

The emulator reads the same wording (emulator/dynamic.py).
"""

from __future__ import annotations

from dataclasses import replace

from ..labelconfig import LabelSpec
from ..plan import PlannedRequest
from .prompts import Prompt

REFERENCE_HINT = "the object shown in reference image {n}"
PHRASE_RULE = (
    "Each label above is a referring expression: a phrase that describes one particular region of the image "
    "(relations such as \"left of\", \"on\" or \"behind\" included). Return exactly one entry per phrase that the "
    "image shows, the single region the whole phrase describes, with the phrase, spelled exactly as given, as its "
    "label; leave out a phrase that nothing in the image matches."
)


def _searched(plan: PlannedRequest, n_images: int) -> int:
    return max(1, n_images - len(plan.references))


def with_reference_hints(plan: PlannedRequest, n_images: int) -> PlannedRequest:
    """The plan whose labels with a reference picture are described by it (numbered as sent)."""
    if not plan.references:
        return plan
    first = _searched(plan, n_images) + 1
    number = {label: first + i for i, label in enumerate(plan.references)}

    def described(label: LabelSpec) -> LabelSpec:
        if label.value not in number:
            return label
        seen = REFERENCE_HINT.format(n=number[label.value])
        return replace(label, hint=f"{label.hint}; {seen}" if label.hint else seen)

    return replace(plan, labels=tuple(described(label) for label in plan.labels))


def lead(plan: PlannedRequest, n_images: int) -> str:
    """What goes before the prompt's own text: which images are searched, which are references."""
    if not plan.references:
        return ""
    searched = _searched(plan, n_images)
    first, last = searched + 1, searched + len(plan.references)
    where = "Image 1 is the image to search" if searched == 1 else f"Images 1 to {searched} are the images to search"
    refs = f"image {first} is a reference picture" if first == last else f"images {first} to {last} are reference pictures"
    return (f"{where}; {refs} of one labelled object each (named below). Find the objects in the image to search "
            "that look like the references, and give coordinates in that image only.\n")


def adapt(prompt: Prompt, plan: PlannedRequest, n_images: int) -> Prompt:
    """`prompt` (built from `with_reference_hints(plan)`) with the lead and the phrase rule."""
    user = lead(plan, n_images) + prompt.user
    if plan.phrases:
        user += "\n" + PHRASE_RULE
    return replace(prompt, user=user) if user != prompt.user else prompt
