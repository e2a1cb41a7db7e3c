"""Reading request bodies: camelCase or snake_case at every level, lenient base64."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from . import errors

IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
_FILE_ID = re.compile(r"files/([a-z0-9][a-z0-9-]*)")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def get(obj, camel: str, default=None):
    """obj[camel] or obj[snake_case(camel)]: the real server is proto-JSON and takes both."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    return obj.get(snake(camel), default)


def json_body(raw: bytes):
    """A request body as JSON ({} when empty), or the service's INVALID_ARGUMENT."""
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise errors.invalid_argument(
            "Invalid JSON payload received. Unexpected token."
        ) from None


def b64decode(data: str) -> bytes:
    """URL-safe or standard alphabet, padding optional, whitespace ignored."""
    if not isinstance(data, str):
        raise errors.invalid_argument("Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES).")
    cleaned = re.sub(r"\s+", "", data).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_argument(
            "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 decoding failed."
        ) from None


def file_id_from_uri(uri: str) -> str:
    m = _FILE_ID.search(uri or "")
    if not m:
        raise errors.invalid_argument(f"Invalid file uri: {uri!r}.")
    return m.group(1)


@dataclass(frozen=True)
class ImagePart:
    mime_type: str
    data: bytes | None = None  # inline bytes
    file_id: str | None = None  # or a Files API reference


@dataclass(frozen=True)
class ParsedRequest:
    """A generateContent body. The request is its LAST turn (`user_text`, `images`); earlier turns
    are conversation history, e.g. few-shot examples (a user turn, then the model's answer)."""

    system_text: str
    user_text: str
    images: tuple[ImagePart, ...]
    json_mode: bool
    max_output_tokens: int | None
    media_resolution: str | None
    history_text: str = ""
    history_images: tuple[ImagePart, ...] = ()
    example_answers: tuple[str, ...] = ()  # the texts of the history's model turns


def _turn(content) -> tuple[list[str], list[ImagePart]]:
    texts: list[str] = []
    images: list[ImagePart] = []
    for part in _parts(content):
        if not isinstance(part, dict):
            raise errors.invalid_argument()
        text = get(part, "text")
        inline = get(part, "inlineData")
        file_data = get(part, "fileData")
        if isinstance(text, str):
            texts.append(text)
        if isinstance(inline, dict):
            mime = get(inline, "mimeType", "")
            images.append(ImagePart(mime, data=b64decode(get(inline, "data", ""))))
        if isinstance(file_data, dict):
            mime = get(file_data, "mimeType", "")
            images.append(ImagePart(mime, file_id=file_id_from_uri(get(file_data, "fileUri", ""))))
    return texts, images


def _parts(content) -> list:
    parts = get(content, "parts", []) if isinstance(content, dict) else []
    if not isinstance(parts, list):
        raise errors.invalid_argument()
    return parts


def parse_generate(body: dict) -> ParsedRequest:
    if not isinstance(body, dict):
        raise errors.invalid_argument()
    contents = get(body, "contents")
    if contents is None and isinstance(get(body, "generateContentRequest"), dict):  # countTokens wrapper
        return parse_generate(get(body, "generateContentRequest"))
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise errors.invalid_argument("* GenerateContentRequest.contents: contents is not specified")
    history_texts: list[str] = []
    history_images: list[ImagePart] = []
    answers: list[str] = []
    for content in contents[:-1]:
        t, im = _turn(content)
        history_texts.extend(t)
        history_images.extend(im)
        if isinstance(content, dict) and get(content, "role") == "model":
            answers.append("".join(t))
    texts, images = _turn(contents[-1])
    system = get(body, "systemInstruction")
    system_texts = []
    if isinstance(system, str):
        system_texts.append(system)
    elif isinstance(system, dict):
        system_texts.extend(t for p in _parts(system) if isinstance(t := get(p, "text"), str))
    config = get(body, "generationConfig") or {}
    max_tokens = get(config, "maxOutputTokens")
    return ParsedRequest(
        system_text="\n".join(system_texts),
        user_text="\n".join(texts),
        images=tuple(images),
        json_mode=str(get(config, "responseMimeType", "")).lower() == "application/json",
        max_output_tokens=int(max_tokens) if max_tokens else None,
        media_resolution=get(config, "mediaResolution"),
        history_text="\n".join(history_texts),
        history_images=tuple(history_images),
        example_answers=tuple(answers),
    )


def check_image_mime(mime: str) -> None:
    if mime.lower() not in IMAGE_MIME_TYPES:
        raise errors.invalid_argument(f"Unsupported MIME type: {mime}")
