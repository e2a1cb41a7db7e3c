"""The configured google-genai client and the per-request generation config.

Choices and why (facts: docs/gemini-facts.md#wire-format and #thinking):

* api_version pinned to v1beta: the SDK defaults to v1, which the real API rejects for some
  payloads (js-genai#1746); every doc and sample uses v1beta.
* vertexai=False: GOOGLE_GENAI_USE_VERTEXAI / _ENTERPRISE in the environment must not turn an API
  key into a Vertex call.
* SDK retries off (attempts=1): the SDK ignores RetryInfo.retryDelay (python-genai#1875) and
  cannot see our deadline; request.GeminiCaller retries instead.
* Thinking per model (the rules are rows of gemini/models.py's table; facts in docs/gemini-models.md):
  the cheapest thinking each model accepts, thinking_budget for the 2.5 generation (0 = off; 2.5
  Pro cannot go below 128), thinking_level for 3.x (MINIMAL where offered, else LOW: 3.x Pro and
  3.7/3.8 Flash cannot turn thinking off), never both (a 400), nothing for 2.0 or a name without
  a version (a wrong config is a 400, a missing one merely slower).
* Media resolution: GEMINI_MEDIA_RESOLUTION goes request-wide on 2.x and per image part on 3.x
  (the only place 3.x reads it); unset, nothing is sent and the model's default applies.
* Temperature: the cookbook's 0.5 for 2.x (a temperature above 0 stops the model repeating
  itself); 1.0 for 3.x, which Google recommends for that generation (lower ones loop).
* max_output_tokens: the kind's room (gemini/kinds.py) plus the expected thinking, which on
  thinking models comes out of the same budget (python-genai#811).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from google import genai
from google.genai import types

from ..detections import RequestKind
from ..settings import Settings
from .errors import GeminiError
from .kinds import KINDS
from .models import MaskFormat, ModelInfo, ThinkingControl, lookup, resolve
from .prompts import Prompt

API_VERSION = "v1beta"

# Output room per kind, before thinking: one table, gemini/kinds.py.
OUTPUT_TOKENS: Mapping[RequestKind, int] = MappingProxyType({kind: spec.output_tokens for kind, spec in KINDS.items()})
THINKING_LEVEL_ALLOWANCE = 4096  # thinking_level has no token number; MINIMAL/LOW stay well below this

TEMPERATURE_2X = 0.5
TEMPERATURE_3X = 1.0


@dataclass(frozen=True)
class ModelFamily:
    """What the model table says about a name's generation: version (major, minor) and tier."""

    major: int | None
    minor: int | None
    tier: str  # "pro" | "flash" | "flash-lite" | "robotics" | "other"

    @property
    def version(self) -> tuple[int, int] | None:
        return (self.major, self.minor or 0) if self.major is not None else None


def model_family(model: str) -> ModelFamily:
    """"gemini-2.5-flash-lite", "models/gemini-3-pro-preview", "gemini-robotics-er-1.5"... (models.py)."""
    info = lookup(model)
    version = info.version
    if info.tier == "robotics" and info.masks is not MaskFormat.POLYGON:
        version = (2, 5)  # Robotics-ER 1.5 is built on 2.5 Flash
    return ModelFamily(version[0] if version else None, version[1] if version else None, info.tier)


def thinking_config(info: ModelInfo) -> tuple[types.ThinkingConfig | None, int]:
    """(config to send or None, thinking tokens to add to max_output_tokens).

    The model's cheapest thinking from the table: a budget for the 2.5 generation (0 = off where
    allowed), a level for 3.x; never both in one request (that is a 400).
    """
    if info.thinking is ThinkingControl.NONE or info.lowest_thinking is None:
        return None, 0
    if info.thinking is ThinkingControl.BUDGET:
        budget = int(info.lowest_thinking)
        return types.ThinkingConfig(thinking_budget=budget), budget
    level = types.ThinkingLevel(str(info.lowest_thinking))
    return types.ThinkingConfig(thinking_level=level), THINKING_LEVEL_ALLOWANCE


def default_temperature(info: ModelInfo) -> float:
    generation = info.generation
    return TEMPERATURE_3X if generation is not None and generation >= 3 else TEMPERATURE_2X


def media_resolution_of(settings: Settings, prompt: Prompt | None) -> str | None:
    """The request's level: the plan's (model_media_resolution), else GEMINI_MEDIA_RESOLUTION."""
    level = (prompt.media_resolution if prompt is not None else None) or settings.media_resolution
    return level.upper() if level else None


def per_part_media_resolution(settings: Settings, model: str, prompt: Prompt | None = None) -> types.PartMediaResolution | None:
    """The media resolution as a per-image-part setting (types.PartMediaResolution, the SDK's way for
    3.x, which has ULTRA_HIGH): 3.x only (2.x has only the request-wide one)."""
    info = resolve(model)
    level = media_resolution_of(settings, prompt)
    if not level or (info.generation or 0) < 3:
        return None
    return types.PartMediaResolution(level=types.PartMediaResolutionLevel(f"MEDIA_RESOLUTION_{level}"))


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


def generation_config(
    settings: Settings, prompt: Prompt, kind: RequestKind, model: str | None = None
) -> types.GenerateContentConfig:
    """The GenerateContentConfig for one request of `kind` with `prompt` on `model` (settings.model)."""
    info = resolve(model or settings.model)
    thinking, thinking_tokens = thinking_config(info)
    temperature = settings.temperature if settings.temperature is not None else default_temperature(info)
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
    level = media_resolution_of(settings, prompt)
    if level and (info.generation or 0) < 3:  # 3.x: per part, see per_part_media_resolution
        # types.MediaResolution (request-wide) has no ULTRA_HIGH: 2.x gets its highest, HIGH
        config.media_resolution = types.MediaResolution(f"MEDIA_RESOLUTION_{'HIGH' if level == 'ULTRA_HIGH' else level}")
    return config
