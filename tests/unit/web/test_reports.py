"""web/reports.py: the project panels from a review ledger (MemoryLedger, the real one without
Redis) and their reuse window."""

from __future__ import annotations

from gemini_ls.review.ledger import Contribution, MemoryLedger
from gemini_ls.review.stats import LabelStats, Tally
from gemini_ls.web.reports import CachedPanels, one_project, project_report, project_views


def _ledger() -> MemoryLedger:
    ledger = MemoryLedger()
    for n, (version, deleted) in enumerate((("v1", 3), ("v2", 1))):
        tally = Tally({"car": LabelStats(accepted=1, deleted=deleted), "bus": LabelStats(accepted=2, missed=1)}, 2)
        ledger.replace(n, Contribution(n, 4, n, version, tally))
    return ledger


def test_panel_rows_are_the_newest_version_with_the_deletion_trend_oldest_first():
    view = one_project(_ledger(), 4)
    assert view is not None and view.project == 4 and view.versions == ("v1", "v2") and view.annotations == 2
    assert view.label_count == 2 and view.chart is not None and [h.version for h in view.history] == ["v1", "v2"]
    assert one_project(_ledger(), 5) is None
    rows = {r.label: r for r in view.rows}
    assert list(rows) == ["bus", "car", "all"]
    assert (rows["car"].kept, rows["car"].deleted, rows["car"].trend) == (1, 1, (0.75, 0.5))
    assert rows["bus"].trend == (0.0, 0.0) and rows["bus"].missed == 1


def test_summary_rows_hold_only_every_label_together():
    (summary,) = project_views(_ledger())
    assert [r.label for r in summary.rows] == ["all"] and summary.label_count == 2 and summary.chart is None
    assert summary.rows[0].trend == (3 / 6, 1 / 4) and summary.rows[0].predicted == 4


def test_report_json_is_the_cli_report_plus_the_trend():
    report = project_report(_ledger(), 4)
    assert report is not None and report["versions"] == ["v1", "v2"]
    assert report["model_versions"]["v2"]["labels"]["car"]["deleted"] == 1
    assert report["deletion_rate_trend"]["all"] == [3 / 6, 1 / 4]  # deleted / predicted over both labels
    assert project_report(_ledger(), 5) is None


def test_panels_are_reused_within_the_window_and_reread_after():
    ledger, now = _ledger(), [0.0]
    panels = CachedPanels(ledger, ttl=10, clock=lambda: now[0])
    assert panels.views()[0].annotations == 2
    ledger.replace(9, Contribution(9, 4, 9, "v2", Tally({"car": LabelStats(accepted=1)}, 1)))
    now[0] = 9.9
    assert panels.views()[0].annotations == 2  # inside the window: not read again
    now[0] = 10.0
    assert panels.views()[0].annotations == 3
