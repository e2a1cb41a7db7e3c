"""The pure parts of the Label Studio client: auth header choice, paging, versions held, the
one retry setting. (The client against the real Label Studio: tests/e2e/test_jobs_writeback.py,
test_jobs_prelabel.py, test_review_loop.py, test_batch_prelabel.py.)"""

from __future__ import annotations

import json

import pytest

from gemini_ls.labelstudio import (
    WRITE_ATTEMPTS,
    CredentialStore,
    LabelStudioApi,
    LabelStudioApiError,
    LabelStudioAuth,
    PredictionRecord,
    PredictionWriter,
    key_kind,
)
from gemini_ls.labelstudio.retry import backoff, is_transient
from gemini_ls.labelstudio.tasks import iter_tasks, page_items, task_query, version_filter, versions_held
from gemini_ls.settings import Settings
from tests.fixtures.servers import make_jwt


def test_the_key_decides_the_header():
    legacy = "0123456789abcdef0123456789abcdef01234567"
    access = make_jwt({"token_type": "access", "exp": 4102444800})
    pat = make_jwt({"token_type": "refresh"})
    assert [key_kind(k) for k in (legacy, access, pat, "a.b", "x.y.z")] == ["legacy", "access", "pat", "legacy", "legacy"]
    assert LabelStudioAuth("http://ls:8080/", legacy).headers() == {"Authorization": f"Token {legacy}"}
    assert LabelStudioAuth("http://ls:8080", access).headers() == {"Authorization": f"Bearer {access}"}
    assert LabelStudioAuth("http://ls:8080/", legacy).base_url == "http://ls:8080"


def test_no_credentials_is_an_api_error_naming_the_settings():
    api = LabelStudioApi(CredentialStore(None, None))
    with pytest.raises(LabelStudioApiError) as e:
        api.request("GET", "/api/projects/1")
    assert "LABEL_STUDIO_URL" in str(e.value) and e.value.status is None and not e.value.transient


def test_credentials_changed_by_setup_are_used_at_the_next_call():
    store = CredentialStore(None, None)
    api = LabelStudioApi(store)
    store.update_from_setup("http://ls-a:8080", "token-a")
    assert api.base_url == "http://ls-a:8080"
    store.update_from_setup("http://ls-b:8080", "token-b")
    assert api.base_url == "http://ls-b:8080" and api.auth.headers() == {"Authorization": "Token token-b"}


def test_page_items_reads_both_answer_shapes():
    assert page_items({"tasks": [{"id": 1}, {"id": 2}], "total": 5}) == ([{"id": 1}, {"id": 2}], 5)
    assert page_items([{"id": 1}]) == ([{"id": 1}], None)  # a bare list: no total
    assert page_items({"tasks": None}) == ([], None)
    assert page_items(None) == ([], None)


def test_versions_held_are_the_predictions_model_versions():
    task = {"id": 1, "predictions": [{"model_version": "gemini-ls-a"}, {"model_version": "yolo"},
                                     {"model_version": "gemini-ls-a"}, {"model_version": None}, "junk"]}
    assert versions_held(task) == frozenset({"gemini-ls-a", "yolo"})
    assert versions_held({"id": 2}) == frozenset() and versions_held({"id": 3, "predictions": None}) == frozenset()


def test_task_query_selects_ids_and_filters():
    assert task_query() is None
    assert json.loads(task_query([3, 1]) or "") == {"selectedItems": {"all": False, "included": [3, 1]}}
    both = json.loads(task_query([7], version_filter("v1")) or "")
    item = both["filters"]["items"][0]
    assert both["selectedItems"]["included"] == [7]
    assert (item["filter"], item["operator"], item["value"]) == ("filter:tasks:predictions_model_versions", "contains", ["v1"])


class Pages:
    """Label Studio's GET /api/tasks as recorded answers: the paging logic alone, no HTTP."""

    def __init__(self, tasks: list[dict], *, total: bool = True, not_found_past_end: bool = True) -> None:
        self.tasks = tasks
        self.total = total
        self.not_found_past_end = not_found_past_end
        self.calls: list[dict] = []

    def request(self, method: str, path: str, **kw):
        params = kw["params"]
        self.calls.append(params)
        size, page = params["page_size"], params["page"]
        items = self.tasks[(page - 1) * size : page * size]
        if not items and page > 1 and self.not_found_past_end:
            raise LabelStudioApiError("GET /api/tasks: HTTP 404", status=404)
        return {"tasks": items, "total": len(self.tasks)} if self.total else {"tasks": items}


def test_paging_stops_at_the_total_without_asking_past_it():
    pages = Pages([{"id": i} for i in range(1, 8)])
    got = list(iter_tasks(pages, 5, page_size=3, view=2, ids=[1, 2, 3, 4, 5, 6, 7]))  # type: ignore[arg-type]
    assert [t["id"] for t in got] == [1, 2, 3, 4, 5, 6, 7]
    assert [c["page"] for c in pages.calls] == [1, 2, 3]
    assert all(c["project"] == 5 and c["view"] == 2 and c["fields"] == "task_only" and "query" in c for c in pages.calls)


def test_paging_without_a_total_and_an_empty_project():
    exact = Pages([{"id": i} for i in range(1, 7)])
    assert [t["id"] for t in iter_tasks(exact, 5, page_size=3)] == [1, 2, 3, 4, 5, 6]  # type: ignore[arg-type]
    assert [c["page"] for c in exact.calls] == [1, 2]
    empty = Pages([])
    assert list(iter_tasks(empty, 5, only_annotated=True, fields="all")) == []  # type: ignore[arg-type]
    assert empty.calls == [{"project": 5, "page": 1, "page_size": 100, "fields": "all", "only_annotated": "true"}]


def test_a_404_on_the_first_page_is_an_error():
    class Gone:
        def request(self, method, path, **kw):
            raise LabelStudioApiError("GET /api/tasks: HTTP 404", status=404)

    with pytest.raises(LabelStudioApiError):
        list(iter_tasks(Gone(), 99))  # type: ignore[arg-type]


def test_one_retry_setting_for_every_write():
    assert Settings().writeback_attempts == WRITE_ATTEMPTS == 6
    assert PredictionWriter(api=None).attempts == WRITE_ATTEMPTS  # type: ignore[arg-type]
    assert Settings.from_env({"WRITEBACK_ATTEMPTS": "3"}).writeback_attempts == 3


def test_backoff_is_full_jitter_capped_and_only_transient_statuses_retry():
    assert backoff(0, rand=lambda: 1.0) == 0.5 and backoff(3, rand=lambda: 1.0) == 4.0
    assert backoff(30, rand=lambda: 1.0) == 20.0 and backoff(5, rand=lambda: 0.0) == 0.0
    assert backoff(2, rand=lambda: 7.0) == 2.0  # a bad random source cannot exceed the bound
    assert [s for s in (400, 401, 403, 404, 408, 429, 500, 502, 503) if is_transient(s)] == [408, 429, 500, 502, 503]


def test_prediction_record_round_trips_a_predict_result_entry():
    entry = {"task": 4, "result": [{"id": "r1", "type": "choices"}], "model_version": "gemini-ls-x", "score": 0.5}
    record = PredictionRecord.from_payload(entry)
    assert record == PredictionRecord(4, ({"id": "r1", "type": "choices"},), "gemini-ls-x", 0.5)
    assert record.payload() == entry
    assert "score" not in PredictionRecord.from_payload({**entry, "score": None}).payload()
