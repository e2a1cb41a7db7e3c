"""web/history.py and web/chart.py: what changed between model_versions, and the chart geometry,
on versions as modelversion.py builds them."""

from __future__ import annotations

from gemini_ls.labelconfig import parse_label_config
from gemini_ls.modelversion import model_version
from gemini_ls.web.chart import HEIGHT, deletion_chart
from gemini_ls.web.history import changes, history, parse_version

CFG = '<View><Image name="i" value="$image"/><RectangleLabels name="r" toName="i">{}</RectangleLabels></View>'


def _version(labels: str, model: str = "gemini-2.5-flash", suffix: str | None = None) -> str:
    return model_version(model, parse_label_config(CFG.format(labels)), prompt_version="p1", emulated=True, suffix=suffix)


def test_parse_a_real_version_string():
    v = _version('<Label value="car"/>') + "-l0123abcd-e89abcdef"
    parts = parse_version(v)
    assert parts is not None and parts.model == "gemini-2.5-flash" and parts.prompt == "p1"
    assert parts.learned == "l0123abcd-e89abcdef" and parts.other == "emulator"
    assert parse_version("my-own-model") is None


def test_changes_name_model_labels_hints_and_learned_state():
    a = _version('<Label value="car"/>')
    hinted = _version('<Label value="car" hint="cars and vans"/>')
    assert changes(a, hinted, {"car"}, {"car"})[0].startswith("label settings or hints changed")
    b = _version('<Label value="car"/><Label value="bus"/>', model="gemini-2.5-pro")
    assert changes(a, b, {"car"}, {"car", "bus"}) == ("model gemini-2.5-flash → gemini-2.5-pro", "labels added: bus")
    assert changes(a, a + "-e12345678", {"car"}, {"car"}) == ("few-shot examples added",)
    assert changes(a + "-l11111111", a + "-l22222222", set(), set()) == ("learned thresholds/synonyms changed",)
    assert changes(a, "custom", set(), set()) == ("not a gemini-ls version string",)
    h = history([a, b], {a: {"car"}, b: {"car", "bus"}}, {a: 3, b: 4})
    assert [x.changes for x in h][0] == () and h[1].annotations == 4


def test_chart_plots_rates_top_down_and_says_them_in_text():
    chart = deletion_chart(["v1", "v2"], [("car", 10, (0.5, 0.25)), ("bus", 2, (None, 1.0)), ("all", 12, (0.5, 0.4))])
    assert chart is not None
    lines = {line.label: line for line in chart.lines}
    assert set(lines) == {"car", "bus", "all"} and lines["all"].colour == "#000000"
    assert len(lines["bus"].dots) == 1 and lines["bus"].dots[0][1] < lines["car"].dots[1][1]  # 100% is higher up
    assert all(0 <= y <= HEIGHT for line in chart.lines for _, y in line.dots)
    assert "car 25%" in chart.summary and "bus 100%" in chart.summary
    assert deletion_chart(["v1"], [("car", 0, (None,))]) is None
