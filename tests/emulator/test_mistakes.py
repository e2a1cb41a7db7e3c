"""Mistakes at set rates (emulator/mistakes.py), through the real SDK: repeatable per request."""

from __future__ import annotations

import httpx
from google import genai
from google.genai import types

from gemini_ls.emulator.scenes import box_iou, encode_image, make_scene, norm_box_to_pixels
from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.gemini.prompts import detection_prompt
from gemini_ls.labelconfig import LabelSpec

from .helpers import parse_json_text

MODEL = "gemini-2.5-flash"
LABELS = (LabelSpec("Red", "red shapes"), LabelSpec("Blue", "blue shapes"))


def detect(client, data):
    p = detection_prompt(LABELS, 25)
    reply = client.models.generate_content(model=MODEL, contents=[types.Part.from_bytes(data=data, mime_type="image/png"), p.user],
                                           config=types.GenerateContentConfig(response_mime_type="application/json"))
    return parse_json_text(reply.text)


def test_mistakes_at_set_rates(emu, genai_client):
    scenes = [make_scene(320, 240, names=["red square", "blue circle"], seed=s) for s in range(40)]
    images = [encode_image(s.image, "png") for s in scenes]
    clean = [detect(genai_client, d) for d in images]
    assert all(len(items) == 2 for items in clean)
    r = httpx.post(emu.url + "/_emulator/mistakes", json={"false_positive": 0.5, "jitter": 0.5, "swap": 0.25})
    assert r.status_code == 200 and r.json()["mistakes"]["false_positive"] == 0.5
    noisy = [detect(genai_client, d) for d in images]
    fps = jittered = swapped = 0
    for scene, items in zip(scenes, noisy):
        for item in items:
            box = norm_box_to_pixels(item["box_2d"], scene.width, scene.height)
            best = max(scene.objects, key=lambda o: box_iou(o.box, box))
            iou = box_iou(best.box, box)
            if iou == 0:
                fps += 1
                assert 0.3 <= item["confidence"] <= 0.6  # made-up objects are less confident
                continue
            assert item["confidence"] >= 0.9
            jittered += iou < 0.97
            swapped += item["label"] != {"red": "Red", "blue": "Blue"}[best.colour]
    assert 10 <= fps <= 30 and 20 <= jittered <= 60 and 8 <= swapped <= 35, (fps, jittered, swapped)
    # the same request gets the same answer
    assert detect(genai_client, images[0]) == noisy[0]
    # a header overrides the server's setting; DELETE clears it
    quiet = genai.Client(api_key=DEFAULT_API_KEY, http_options=types.HttpOptions(
        base_url=emu.url, api_version="v1beta", headers={"x-emulator-mistakes": "false_positive=0"}))
    assert detect(quiet, images[1]) == clean[1]
    assert httpx.delete(emu.url + "/_emulator/mistakes").json() == {"mistakes": None}
    assert detect(genai_client, images[2]) == clean[2]


def test_bad_mistakes_are_400(emu):
    r = httpx.post(emu.url + "/_emulator/mistakes", json={"hallucinate": 1})
    assert r.status_code == 400 and "unknown mistake" in r.text


def test_overconfident_confidence_is_informative_but_miscalibrated(emu, genai_client):
    """overconfident: right items confident, wrong ones mostly doubtful, a share as sure as the right
    ones; the mistakes themselves are those made without it, and a scene always gets the same answer."""
    scenes = [make_scene(320, 240, names=["red square", "blue circle"], seed=s) for s in range(40)]
    images = [encode_image(s.image, "png") for s in scenes]
    httpx.post(emu.url + "/_emulator/mistakes", json={"false_positive": 0.6, "swap": 0.2, "seed": 4})
    plain = [detect(genai_client, d) for d in images]
    httpx.post(emu.url + "/_emulator/mistakes", json={"false_positive": 0.6, "swap": 0.2, "seed": 4, "overconfident": 0.3})
    noisy = [detect(genai_client, d) for d in images]
    assert detect(genai_client, images[3]) == noisy[3]  # deterministic per scene
    right, wrong = [], []
    for scene, before, items in zip(scenes, plain, noisy):
        assert [{k: v for k, v in i.items() if k != "confidence"} for i in items] == \
            [{k: v for k, v in i.items() if k != "confidence"} for i in before]
        for item in items:
            box = norm_box_to_pixels(item["box_2d"], scene.width, scene.height)
            best = max(scene.objects, key=lambda o: box_iou(o.box, box))
            ok = box_iou(best.box, box) > 0 and item["label"] == {"red": "Red", "blue": "Blue"}[best.colour]
            (right if ok else wrong).append(item["confidence"])
    assert right and all(0.8 <= c <= 0.99 for c in right)
    assert len(wrong) >= 15 and all(0.45 <= c <= 0.99 for c in wrong)
    sure = sum(c > 0.85 for c in wrong)
    assert 0 < sure < len(wrong) / 2  # some wrong items look as sure as right ones, most do not
    assert sum(right) / len(right) > sum(wrong) / len(wrong) + 0.1  # informative
