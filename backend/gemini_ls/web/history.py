"""A project's `model_version` history with what changed between versions (docs/page.md).

modelversion.py builds a version as `gemini-ls-<model>[-masks-<mask model>]-<prompt>-<digest>
[-emulator][-<suffix>][-<learned tag>]`, where the digest covers the label set with its hints and
per-control settings and the learned tag (`l…` thresholds/synonyms, `e…` few-shot examples) what
the review loop learned. So the version string itself says what moved; the labels each version
was reviewed with (the ledger's tallies) say which labels came or went. Nothing is stored for this.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_VERSION = re.compile(r"^gemini-ls-(?P<model>.+?)-(?P<prompt>p\d+)-(?P<digest>[0-9a-f]{8})(?P<rest>(?:-.+)?)$")
_LEARNED = re.compile(r"^[le][0-9a-f]{6,}$")


@dataclass(frozen=True)
class VersionParts:
    model: str
    prompt: str
    digest: str  # label set, hints and per-control settings
    learned: str  # "" when nothing learned
    other: str  # -emulator, MODEL_VERSION_SUFFIX


def parse_version(version: str) -> VersionParts | None:
    m = _VERSION.match(version)
    if m is None:
        return None
    rest = [p for p in m["rest"].split("-") if p]
    learned = [p for p in rest if _LEARNED.match(p)]
    other = [p for p in rest if not _LEARNED.match(p)]
    return VersionParts(m["model"], m["prompt"], m["digest"], "-".join(learned), "-".join(other))


@dataclass(frozen=True)
class VersionChange:
    version: str
    annotations: int
    changes: tuple[str, ...]  # what differs from the version before (empty for the first)


def _learned_words(before: str, after: str) -> list[str]:
    def kinds(tag: str) -> dict[str, str]:
        return {p[0]: p for p in tag.split("-") if p}

    a, b = kinds(before), kinds(after)
    out = []
    for key, what in (("l", "learned thresholds/synonyms"), ("e", "few-shot examples")):
        if a.get(key) != b.get(key):
            out.append(f"{what} {'changed' if key in a and key in b else 'added' if key in b else 'removed'}")
    return out


def changes(before: str, after: str, labels_before: set[str], labels_after: set[str]) -> tuple[str, ...]:
    a, b = parse_version(before), parse_version(after)
    if a is None or b is None:
        return ("not a gemini-ls version string",)
    out: list[str] = []
    if a.model != b.model:
        out.append(f"model {a.model} → {b.model}")
    if a.prompt != b.prompt:
        out.append(f"prompt {a.prompt} → {b.prompt}")
    added, removed = sorted(labels_after - labels_before), sorted(labels_before - labels_after)
    if added:
        out.append("labels added: " + ", ".join(added))
    if removed:
        out.append("labels removed: " + ", ".join(removed))
    if a.digest != b.digest and not added and not removed:
        out.append(f"label settings or hints changed (digest {a.digest} → {b.digest})")
    out.extend(_learned_words(a.learned, b.learned))
    if a.other != b.other:
        out.append(f"suffix {a.other or '-'} → {b.other or '-'}")
    return tuple(out) or ("same settings",)


def history(versions: Sequence[str], labels: Mapping[str, set[str]], annotations: Mapping[str, int]) -> tuple[VersionChange, ...]:
    """`versions` oldest first; `labels`/`annotations`: per version, from the review ledger."""
    out = []
    for i, v in enumerate(versions):
        what = () if i == 0 else changes(versions[i - 1], v, labels.get(versions[i - 1], set()), labels.get(v, set()))
        out.append(VersionChange(v, annotations.get(v, 0), what))
    return tuple(out)
