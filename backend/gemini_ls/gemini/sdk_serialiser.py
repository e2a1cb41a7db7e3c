"""The one place that calls the google-genai SDK's private request serialiser.

A Batch API JSONL line must carry the same GenerateContentRequest body as an inlined request and a
synchronous call. The SDK has no public function for that wire JSON: it is built by
`batches._InlinedRequest_to_mldev` (which moves config fields to `generationConfig`,
`systemInstruction`, ...) and `_common.convert_to_dict` / `encode_unserializable_types`. A pydantic
`model_dump` of the public types gives a different shape, so the private path is kept, behind this
one function; tests/integration/test_sdk_serialiser.py pins its output for a representative
request (and checks it against what a synchronous call sends) and fails when an SDK upgrade
renames, removes or reshapes any of it.
"""

from __future__ import annotations

from google import genai
from google.genai import _common, types
from google.genai import batches as genai_batches


def request_json(client: genai.Client, request: types.InlinedRequest) -> dict:
    """The wire JSON of one GenerateContentRequest, exactly as the SDK inlines it in batches.create."""
    wire = genai_batches._InlinedRequest_to_mldev(client._api_client, request)
    return _common.encode_unserializable_types(_common.convert_to_dict(wire["request"]))
