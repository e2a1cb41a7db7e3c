"""Few-shot: choosing examples from the review history and rendering them in the prompt's format (pure)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from google.genai import types
from PIL import Image

from gemini_ls.detections import RequestKind
from gemini_ls.emulator.mistakes import Mistakes, apply, shown_labels
from gemini_ls.emulator.understanding import read_task
from gemini_ls.emulator.vision import see
from gemini_ls.gemini.fewshot import example_turns, history_contents, render_answer
from gemini_ls.images.errors import ImageError
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.plan import PlanExample, plan_requests
from gemini_ls.regions import REGISTRY
from gemini_ls.review.fewshot import Candidate, Example, FewShotBook, candidate, example_answer, rank, tag_of_version
from gemini_ls.review.learning import LearnedState
from gemini_ls.review.stats import LabelStats, Tally
from gemini_ls.settings import Settings
from tests.helpers import config, keypoint_control, rect_control

CHOICES = '<Choices name="kind" toName="image"><Choice value="Indoor"/><Choice value="Outdoor"/></Choices>'


def rect(label, x, y, w, h, *, name="rect", to="image", rotation=0.0):
    return {"from_name": name, "to_name": to, "type": "rectanglelabels", "original_width": 640, "original_height": 480,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]}}


def plans_for(*controls, max_objects=None):
    extra = f'model_max_objects="{max_objects}"' if max_objects else ""
    spec = parse_label_config(config(*(c(extra=extra) if callable(c) else c for c in controls)), Settings().defaults)
    return spec, plan_requests(spec)


def render(plan, regions):
    """The example's answer for `plan`, chosen and typed (review/) and rendered for Gemini (gemini/)."""
    return render_answer(plan.kind, example_answer(plan, regions))


def box_of(region):
    """A spatial region's box in percent (x0, y0, x1, y1), as its reverse converter reads it."""
    (det,) = REGISTRY["RectangleLabels"].reverse(region, 0).detections
    return (det.box.xmin / 10, det.box.ymin / 10, det.box.xmax / 10, det.box.ymax / 10)


def test_candidates_need_a_kept_region_and_name_the_annotations_labels():
    t = Tally({"Red": LabelStats(accepted=2), "Blue": LabelStats(deleted=1), "Purple": LabelStats(relabelled=1),
               "Magenta": LabelStats(relabelled_in=1), "Green": LabelStats(missed=1)}, 1)
    c = candidate(7, 70, t)
    assert c == Candidate(7, 70, frozenset({"Red", "Magenta", "Green"}), kept=2, predicted=4)
    assert candidate(8, 80, Tally({"Red": LabelStats(deleted=3, missed=1)}, 1)) is None  # nothing of ours was kept


def test_rank_covers_the_labels_first_then_prefers_kept_share_then_newest():
    a = Candidate(1, 1, frozenset({"Red"}), 5, 5)
    b = Candidate(2, 2, frozenset({"Red", "Blue"}), 1, 4)
    c = Candidate(3, 3, frozenset({"Green"}), 2, 2)
    d = Candidate(4, 4, frozenset({"Red"}), 5, 5)
    order = rank([a, b, c, d])
    assert [x.annotation_id for x in order[:2]] == [2, 3]  # Red+Blue, then the only Green
    assert [x.annotation_id for x in order[2:]] == [4, 1]  # equal quality: the newer first
    assert rank([d, c, b, a]) == order  # deterministic whatever the input order


def test_boxes_render_as_box_2d_in_0_1000_ymin_xmin_ymax_xmax():
    _, (plan,) = plans_for(rect_control)
    answer = json.loads(render(plan, [rect("Red", 10, 20, 30, 40), rect("Unknown", 1, 1, 5, 5),
                                      rect("Blue", 50, 50, 10, 10, to="other")]))
    assert answer == [{"box_2d": [200, 100, 600, 400], "label": "Red", "confidence": 1.0}]
    # a rotated rectangle is answered by the box around it
    assert box_of(rect("Red", 50, 50, 10, 10, rotation=90)) == pytest.approx((40, 50, 50, 60))


def test_answers_never_hold_more_items_than_the_task_may_return():
    _, (plan,) = plans_for(rect_control, max_objects=2)
    regions = [rect("Red", i, i, 5, 5) for i in range(5)]
    assert len(json.loads(render(plan, regions))) == 2


def test_points_choices_and_masks_use_their_prompts_formats():
    spec, plans = plans_for(keypoint_control, CHOICES)
    by_kind = {p.kind: p for p in plans}
    kp = {"from_name": "kp", "to_name": "image", "type": "keypointlabels", "value": {"x": 25, "y": 75, "keypointlabels": ["Red"]}}
    ch = {"from_name": "kind", "to_name": "image", "type": "choices", "value": {"choices": ["Outdoor"]}}
    assert json.loads(render(by_kind[RequestKind.POINTS], [kp, ch])) == [{"point": [750, 250], "label": "Red", "confidence": 1.0}]
    assert json.loads(render(by_kind[RequestKind.CHOICE], [kp, ch])) == ["Outdoor"]
    _, (masks,) = plans_for('<BrushLabels name="b" toName="image"><Label value="Red"/></BrushLabels>')
    poly = {"from_name": "b", "to_name": "image", "type": "polygonlabels",
            "value": {"points": [[10, 10], [50, 10], [30, 50]], "polygonlabels": ["Red"]}}
    item = json.loads(render(masks, [poly]))[0]
    assert item["box_2d"] == [100, 100, 500, 500] and item["label"] == "Red"
    png = Image.open(io.BytesIO(base64.b64decode(item["mask"].split(",", 1)[1])))
    assert max(png.size) <= 64 and png.getpixel((png.width // 2, png.height // 4)) == 255 and png.getpixel((0, png.height - 1)) == 0


def test_a_brush_example_answers_with_its_own_box_and_mask():
    from gemini_ls.regions.rle import encode_full_mask

    _, (masks,) = plans_for('<BrushLabels name="b" toName="image"><Label value="Red"/></BrushLabels>')
    painted = np.zeros((48, 64), bool)
    painted[12:36, 16:32] = True
    brush = {"from_name": "b", "to_name": "image", "type": "brushlabels", "original_width": 64, "original_height": 48,
             "value": {"format": "rle", "rle": encode_full_mask(painted), "brushlabels": ["Red"]}}
    item = json.loads(render(masks, [brush]))[0]
    assert item["box_2d"] == [250, 250, 750, 500] and item["label"] == "Red"
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(item["mask"].split(",", 1)[1]))))
    assert png.shape == (24, 16) and png.min() == 255  # the painted block fills its box


def test_example_turns_are_user_then_model_turns_with_the_same_prompt():
    _, (plan,) = plans_for(rect_control)
    image = type("Img", (), {"sha256": "x", "data": b"", "mime_type": "image/png"})()
    plan = plan.__class__(**{**plan.__dict__, "examples": (
        PlanExample("a1.x", (image,), example_answer(plan, [rect("Red", 10, 20, 30, 40)])),
        PlanExample("a2.y", (image,), example_answer(plan, [rect("Nope", 10, 20, 30, 40)])),  # nothing for this plan: left out
    )})
    turns = example_turns(plan)
    assert [t.key for t in turns] == ["a1.x"]
    part = types.Part.from_uri(file_uri="https://files/abc", mime_type="image/png")
    contents = history_contents(turns, [part], "Detect things")
    assert [c.role for c in contents] == ["user", "model"]
    assert contents[0].parts[0].file_data.file_uri == "https://files/abc" and contents[0].parts[1].text == "Detect things"
    assert json.loads(contents[1].parts[0].text)[0]["label"] == "Red"


def example(aid, regions, image="http://img/x.png"):
    return Example(aid, aid * 10, {"image": image}, tuple(regions))


def test_the_example_set_is_learned_state_with_a_stable_digest():
    one, two = example(1, [rect("Red", 1, 1, 5, 5)]), example(2, [rect("Blue", 1, 1, 5, 5)])
    tag = LearnedState(examples=(one, two)).tag()
    assert tag and tag.startswith("e") and len(tag) == 9
    assert LearnedState(examples=(two, one)).tag() == tag  # the order does not matter
    assert LearnedState(examples=(one,)).tag() != tag
    edited = example(2, [rect("Blue", 2, 1, 5, 5)])  # the annotator moved a box: a new example
    assert LearnedState(examples=(one, edited)).tag() != tag
    both = LearnedState(thresholds={"Red": 0.5}, examples=(one, two)).tag()
    assert both.startswith("l") and both.endswith("-" + tag)
    assert tag_of_version(f"gemini-ls-gemini-2.5-flash-p1-abcd1234-{both}") == tag
    assert tag_of_version(f"gemini-ls-gemini-2.5-flash-p1-abcd1234-{both}-emulator") == tag
    assert tag_of_version("gemini-ls-gemini-2.5-flash-p1-abcd1234-emulator") is None
    assert LearnedState().tag() is None and LearnedState(examples=(one,)).empty is False


def png_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (255, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


def test_book_attaches_examples_to_spatial_plans_and_skips_an_unfetchable_image(caplog):
    spec, plans = plans_for(rect_control, '<TextArea name="cap" toName="image"/>')
    fetched = []

    def fetch(ref, task_id):
        fetched.append(ref)
        if "gone" in ref:
            raise ImageError("not_found", "HTTP 404")
        return png_bytes()

    book = FewShotBook(Settings(), fetch)
    good, bad = example(1, [rect("Red", 1, 1, 5, 5)]), example(2, [rect("Blue", 1, 1, 5, 5)], image="http://img/gone.png")
    tag = book.remember([good, bad])
    version = f"gemini-ls-m-p1-abcd1234-{tag}"
    attached = book.attach(plans, spec, version)
    by_kind = {p.kind: p for p in attached}
    assert [e.key for e in by_kind[RequestKind.BOXES].examples] == [good.key]
    assert by_kind[RequestKind.TEXT].examples == ()  # captions take no examples
    assert "example image of task 20 (annotation 2) left out" in caplog.text
    book.attach(plans, spec, version)
    assert len(fetched) == 2  # each example image fetched once per process, failures included
    assert book.attach(plans, spec, "gemini-ls-m-p1-abcd1234") == tuple(plans)  # a version without examples


def test_emulator_swaps_labels_shown_by_examples_less():
    from gemini_ls.emulator.scenes import make_scene

    scene = make_scene(640, 480, 6, seed=3)
    seen = see(np.asarray(scene.image))
    task = read_task("", "Detect every object ... labels:\n- \"Red\"\n- \"Blue\"\n- \"Green\"\n- \"Yellow\"\nOutput a JSON list")
    items = [{"box_2d": [0, 0, 10, 10], "label": lab} for lab in ("Red", "Blue", "Green", "Yellow") for _ in range(50)]
    swaps = Mistakes(swap=0.5)

    def swapped(shown):
        out = apply(items, task, [seen], swaps, "k", shown=shown)
        return sum(1 for a, b in zip(items, out) if a["label"] == "Red" and b["label"] != "Red")

    shown = shown_labels(['[{"box_2d": [1, 2, 3, 4], "label": "Red"}]', "not json"])
    assert shown == frozenset({"Red"})
    assert swapped(frozenset()) > 15 and swapped(shown) < 10  # 50 Reds at 0.5 vs 0.1


def test_evaluate_few_shot_variant_takes_examples_out_of_the_graded_tasks():
    from gemini_ls.review.evaluate import VariantError, parse_variant, split_examples

    base = Settings()
    k0, k3 = parse_variant("name=k0", base, 0), parse_variant("name=k3,few_shot=3", base, 1)
    assert (k0.settings.few_shot_examples, k3.settings.few_shot_examples) == (0, 3)
    with pytest.raises(VariantError, match="few_shot"):
        parse_variant("few_shot=-1", base, 0)
    ours = {"id": 1, "model_version": "gemini-ls-x"}

    def task(tid, labels, keep=True):
        regions = [rect(lab, 10 * i, 10, 5, 5) for i, lab in enumerate(labels)]
        pred = regions if keep else [rect("Red", 80, 80, 5, 5)]
        return {"id": tid, "data": {"image": f"http://img/{tid}.png"}, "predictions": [{**ours, "result": pred}],
                "annotations": [{"id": tid * 10, "result": regions}]}

    tasks = [task(1, ["Red"]), task(2, ["Red", "Blue"]), task(3, ["Green"]), task(4, ["Yellow"], keep=False), task(5, ["Red"])]
    examples, held_out = split_examples(tasks, [k0, k3])
    assert [e.task_id for e in examples] == [2, 3, 5]  # Red+Blue, Green, then the newest Red; task 4 kept nothing
    assert held_out == {2, 3, 5}
    assert split_examples(tasks, [k0]) == ([], set())


def test_usage_per_example_set_reads_as_a_report_line():
    from gemini_ls.review.fewshot import MemoryUsage, describe_usage

    usage = MemoryUsage()
    for _ in range(4):
        usage.add("e12345678", requests=1, tokens=900, prompt_tokens=1500, examples=3)
    line = describe_usage("e12345678", usage.get("e12345678"))
    assert line.startswith("few-shot e12345678: 3 examples, +900 input tokens per request, 60 % of 1500 (over 4 requests")
    assert "needs REDIS_URL" in describe_usage("e0", usage.get("e0"))


def test_learner_keeps_its_example_set_while_label_studio_does_not_answer():
    from gemini_ls.review.fewshot import ExampleSource
    from gemini_ls.review.learning import Learner
    from gemini_ls.review.ledger import Contribution, MemoryLedger

    ledger = MemoryLedger()
    store = {f"/api/annotations/{i}": {"id": i, "result": [rect("Red", i, 1, 5, 5)]} for i in (1, 2, 3)}
    store.update({f"/api/tasks/{i * 10}": {"id": i * 10, "data": {"image": f"http://img/{i}.png"}} for i in (1, 2, 3)})
    down = {"now": False}

    def get(path):
        if down["now"]:
            raise ConnectionError("Label Studio is restarting")
        return store[path]

    def add(i):
        ledger.replace(i, Contribution(i, 5, i * 10, "gemini-ls-x", Tally({"Red": LabelStats(accepted=1)}, 1)))

    learner = Learner(ledger, (), few_shot=2, source=ExampleSource(get), refit_seconds=0)
    add(1), add(2)
    first = learner.state(5)
    assert [e.annotation_id for e in first.examples] == [2, 1] and first.tag().startswith("e")
    down["now"] = True
    add(3)  # a newer candidate the learner cannot read now
    assert learner.state(5).tag() == first.tag()
    down["now"] = False
    assert [e.annotation_id for e in learner.state(5).examples] == [3, 2]
    assert Learner(ledger, (), few_shot=0, source=ExampleSource(get)).state(5).empty  # FEW_SHOT_EXAMPLES=0: off


def test_usage_is_shared_through_redis(redis_url, redis_prefix):
    from gemini_ls.review.fewshot import make_usage

    a, b = make_usage(redis_url, redis_prefix), make_usage(redis_url, redis_prefix)  # two workers
    a.add("eabcdef01", requests=1, tokens=100, prompt_tokens=300, examples=2)
    b.add("eabcdef01", requests=1, tokens=100, prompt_tokens=300, examples=2)
    assert a.get("eabcdef01") == {"requests": 2, "tokens": 200, "prompt_tokens": 600, "examples": 2}
    assert b.get("e00000000") is None
