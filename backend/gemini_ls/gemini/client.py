"""The configured google-genai client and the per-request generation config.

Choices and why (facts: docs/gemini-facts.md#wire-format and #thinking):

* api_version pinned to v1beta: the SDK defaults to v1, which the real API rejects for some
  payloads (js-genai#1746); every doc and sample uses v1beta.
* vertexai=False: GOOGLE_GENAI_USE_VERTEXAI / _ENTERPRISE in the environment must not turn an API
  key into a Vertex call.
* SDK retries off (attempts=1): the SDK ignores RetryInfo.retryDelay (python-genai#1875) and
  cannot see our deadline; request.GeminiCaller retries instead.
* Thinking per model family (docs/gemini-facts.md#thinking):
    - 1.x / 2.0: no thinking; no thinking config is sent (it would be an error).
    - 2.5 Flash, 2.5 Flash-Lite, other 2.5 (e.g. Robotics-ER): thinking_budget=0, i.e. off,
      the cookbook's setting for spatial tasks (thinking adds latency, not accuracy).
    - 2.5 Pro: thinking cannot be disabled; its minimum, 128.
    - 3.x Flash / Flash-Lite: thinking_level MINIMAL (thinking_budget=0 is a 400 on 3.x).
    - 3.x Pro: thinking_level LOW. Gemini 3 Pro only offers LOW and HIGH, so MINIMAL would be
      rejected; LOW is the cheapest it accepts.
    - an unrecognised name (no version number): no thinking config, the model's default, since
      a wrong one is a 400 and a missing one is merely slower.
* Temperature: the cookbook's 0.5 for 2.x (a temperature above 0 stops the model repeating
  itself); 1.0 for 3.x, which Google recommends for that generation (lower ones loop).
* max_output_tokens: the kind's room (gemini/kinds.py) plus the expected thinking, which on
  thinking models comes out of the same budget (python-genai#811).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from google import genai
from google.genai import types

from ..detections import RequestKind
from ..settings import Settings
from .errors import GeminiError
from .kinds import KINDS
from .prompts import Prompt

API_VERSION = "v1beta"

# Output room per kind, before thinking: one table, gemini/kinds.py.
OUTPUT_TOKENS: Mapping[RequestKind, int] = MappingProxyType({kind: spec.output_tokens for kind, spec in KINDS.items()})
THINKING_LEVEL_ALLOWANCE = 4096  # thinking_level has no token number; MINIMAL/LOW stay well below this

TEMPERATURE_2X = 0.5
TEMPERATURE_3X = 1.0


@dataclass(frozen=True)
class ModelFamily:
    """What the model name says about its generation: version (major, minor) and tier."""

    major: int | None
    minor: int | None
    tier: str  # "pro" | "flash" | "flash-lite" | "robotics" | "other"

    @property
    def version(self) -> tuple[int, int] | None:
        return (self.major, self.minor or 0) if self.major is not None else None


_VERSION = re.compile(r"(?<![\d.])(\d+)(?:\.(\d+))?(?![\d])")


def model_family(model: str) -> ModelFamily:
    """Parse "gemini-2.5-flash-lite", "models/gemini-3-pro-preview", "gemini-robotics-er-1.5"..."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if "robotics" in name:
        return ModelFamily(2, 5, "robotics")  # Robotics-ER 1.5 is built on 2.5 Flash: budget 0 works
    tier = "flash-lite" if "flash-lite" in name else "flash" if "flash" in name else "pro" if "-pro" in name else "other"
    for match in _VERSION.finditer(name):
        major = int(match.group(1))
        if 1 <= major <= 9:  # skip dates and sizes like "-001", "-8b"
            return ModelFamily(major, int(match.group(2)) if match.group(2) else 0, tier)
    return ModelFamily(None, None, tier)


def thinking_config(family: ModelFamily) -> tuple[types.ThinkingConfig | None, int]:
    """(config to send or None, thinking tokens to add to max_output_tokens)."""
    version = family.version
    if version is None or version < (2, 5):
        return None, 0
    if version < (3, 0):
        if family.tier == "pro":
            return types.ThinkingConfig(thinking_budget=128), 128
        return types.ThinkingConfig(thinking_budget=0), 0
    level = types.ThinkingLevel.LOW if family.tier == "pro" else types.ThinkingLevel.MINIMAL
    return types.ThinkingConfig(thinking_level=level), THINKING_LEVEL_ALLOWANCE


def default_temperature(family: ModelFamily) -> float:
    version = family.version
    return TEMPERATURE_3X if version is not None and version >= (3, 0) else TEMPERATURE_2X


def make_client(settings: Settings, *, headers: dict[str, str] | None = None) -> genai.Client:
    """A genai.Client for the Gemini Developer API (or the emulator at settings.base_url)."""
    if not settings.api_key or not settings.api_key.strip():
        raise GeminiError("no Gemini API key is configured (set GEMINI_API_KEY)", reason="no_api_key")
    http_options = types.HttpOptions(
        api_version=API_VERSION,
        base_url=settings.base_url or None,
        timeout=max(1, int(round(settings.request_timeout * 1000))),  # milliseconds
        headers=dict(headers) if headers else None,
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=settings.api_key, vertexai=False, http_options=http_options)


def generation_config(settings: Settings, prompt: Prompt, kind: RequestKind) -> types.GenerateContentConfig:
    """The GenerateContentConfig for one request of `kind` with `prompt` on settings.model."""
    family = model_family(settings.model)
    thinking, thinking_tokens = thinking_config(family)
    temperature = settings.temperature if settings.temperature is not None else default_temperature(family)
    config = types.GenerateContentConfig(
        system_instruction=prompt.system or None,
        temperature=temperature,
        max_output_tokens=OUTPUT_TOKENS[RequestKind(kind)] + thinking_tokens,
        thinking_config=thinking,
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT,
                threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
            )
        ],
    )
    if prompt.json_mode or prompt.response_schema is not None:
        config.response_mime_type = "application/json"
    if prompt.response_schema is not None:
        config.response_schema = prompt.response_schema
    if settings.media_resolution:
        config.media_resolution = types.MediaResolution(f"MEDIA_RESOLUTION_{settings.media_resolution.upper()}")
    return config
