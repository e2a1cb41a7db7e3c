"""`LabelStudioApi`: the one HTTP client for Label Studio's REST API.

Plain `requests`, not label-studio-sdk (a declared dependency, which the tests still use to set up
projects). Why:

* one credential path: the same `LabelStudioAuth` as image downloads, so a personal access token is
  refreshed once per process (not once per SDK client), a /setup key change reaches every caller
  through `CredentialStore`, and a 401 is answered by one refresh and one retry, the same everywhere;
* one retry policy: the SDK retries 429/5xx on its own (`max_retries`), underneath ours, which must
  ask Label Studio which tasks hold the version between two attempts of a write (predictions.py);
* one error type with `status` and `transient`, where the SDK raises per-status classes and
  httpx exceptions;
* less work per task: the SDK validates every task of a page into pydantic models which the callers
  turned back into dicts (review/report.py `_plain`); the API's JSON is what the callers need.

The endpoint methods below are thin: the logic lives in tasks.py (paging, versions held),
predictions.py (reading, import, the check-before-write writer) and annotations.py.

Retries: `request` itself retries only a 401 (after one token refresh): a retry of a write has to
check first, so retrying is the writer's (predictions.py), with the one policy of retry.py
(`WRITE_ATTEMPTS`, the default of WRITEBACK_ATTEMPTS, and `backoff`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests

from . import annotations as _annotations
from . import predictions as _predictions
from . import tasks as _tasks
from .auth import LabelStudioAuth
from .credentials import CredentialStore
from .errors import LabelStudioApiError, LabelStudioAuthError
from .retry import is_transient

READ_TIMEOUT = 20.0  # seconds per read of the review loop: a webhook waits for it (writes: WRITEBACK_TIMEOUT)
NO_CREDENTIALS = ("no Label Studio credentials (set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, "
                  "or connect the model so /setup sends them)")


class LabelStudioApi:
    """Label Studio's REST API with one set of credentials.

    `auth` is either fixed credentials (a command's --url/--api-key, a worker's environment) or the
    server's `CredentialStore`, read at every call so a key that /setup changed is used at once.
    """

    def __init__(self, auth: LabelStudioAuth | CredentialStore, *, timeout: float = 30.0,
                 session: requests.Session | None = None) -> None:
        self._auth = auth
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no .netrc credentials over our header, no environment proxies
        self._session = session

    @property
    def auth(self) -> LabelStudioAuth:
        auth = self._auth.current() if isinstance(self._auth, CredentialStore) else self._auth
        if auth is None:
            raise LabelStudioApiError(NO_CREDENTIALS)
        return auth

    @property
    def base_url(self) -> str:
        return self.auth.base_url

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """One call; its JSON answer (None when empty). LabelStudioApiError for everything else."""
        auth = self.auth
        url = auth.base_url + path
        for attempt in (1, 2):
            try:
                headers = auth.headers()
            except LabelStudioAuthError as exc:
                raise LabelStudioApiError(f"{method} {path}: {exc}",
                                          transient=exc.reason in ("timeout", "connection")) from None
            try:
                resp = self._session.request(method, url, headers=headers, timeout=self.timeout, allow_redirects=False, **kw)
            except requests.Timeout:
                raise LabelStudioApiError(
                    f"{method} {path}: Label Studio did not answer within {self.timeout:g} s", transient=True) from None
            except requests.RequestException as exc:
                raise LabelStudioApiError(f"{method} {path}: cannot reach Label Studio ({type(exc).__name__})", transient=True) from None
            if resp.status_code == 401 and attempt == 1 and auth.kind == "pat":
                auth.invalidate()  # the access token died early: refresh once
                continue
            break
        if resp.status_code >= 300:  # a redirect too: to a login page or another scheme, never JSON
            raise LabelStudioApiError(f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}",
                                      status=resp.status_code, transient=is_transient(resp.status_code))
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise LabelStudioApiError(f"{method} {path}: HTTP {resp.status_code} but not JSON: {resp.text[:100]!r}",
                                      status=resp.status_code) from None

    def get_json(self, path: str) -> Any:
        """GET a path (`/api/...`) as JSON: for readers that name their paths (review/fewshot.py)."""
        return self.request("GET", path)

    # -- projects --------------------------------------------------------------------------------
    def project(self, project: int) -> dict:
        return self.request("GET", f"/api/projects/{int(project)}") or {}

    def label_config(self, project: int) -> str:
        config = self.project(project).get("label_config")
        if not config:
            raise LabelStudioApiError(f"project {project} has no label config")
        return str(config)

    # -- tasks (tasks.py) ------------------------------------------------------------------------
    def task(self, task_id: int) -> dict:
        return self.request("GET", f"/api/tasks/{int(task_id)}") or {}

    def model_versions(self, project: int) -> dict[str, int]:
        return _tasks.model_versions(self, project)

    def iter_tasks(self, project: int, *, view: int | None = None, ids: Sequence[int] | None = None,
                   filters: Mapping[str, Any] | None = None, fields: str = "task_only", only_annotated: bool = False,
                   page_size: int = 100) -> Iterator[dict]:
        return _tasks.iter_tasks(self, project, view=view, ids=ids, filters=filters, fields=fields,
                          only_annotated=only_annotated, page_size=page_size)

    def tasks_holding(self, project: int, model_version: str, ids: Sequence[int] | None = None) -> set[int]:
        return _tasks.tasks_holding(self, project, model_version, ids)

    # -- predictions (predictions.py) -----------------------------------------------------------
    def predictions(self, task_id: int) -> list[dict]:
        return _predictions.predictions_of(self, task_id)

    def import_predictions(self, project: int, items: Sequence[Mapping[str, Any]]) -> int:
        return _predictions.import_predictions(self, project, items)

    def delete_prediction(self, prediction_id: int) -> None:
        self.request("DELETE", f"/api/predictions/{int(prediction_id)}")

    # -- annotations (annotations.py) -----------------------------------------------------------
    def annotation(self, annotation_id: int) -> dict:
        return _annotations.annotation(self, annotation_id)
