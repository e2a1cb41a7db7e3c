"""The Label Studio client: every call this backend makes to Label Studio goes through here.

| module | holds |
|---|---|
| `auth.py` | `LabelStudioAuth`: legacy token vs personal access token (refreshed, cached), the header |
| `credentials.py` | `CredentialStore`: LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY, or what /setup sent |
| `client.py` | `LabelStudioApi`: the one HTTP client (requests; why not the SDK is said there) |
| `retry.py` | the one retry policy of writes: `WRITE_ATTEMPTS` (WRITEBACK_ATTEMPTS), backoff |
| `tasks.py` | paged task listing, the versions a task holds, which tasks hold a version |
| `predictions.py` | reading, import, `PredictionWriter` (chunks, check-before-write, retries) |
| `annotations.py` | one annotation; a project's annotated tasks |
| `project.py` | `LabelStudioProject`: a project as a Batch API job reads it |
| `errors.py` | `LabelStudioApiError` (`status`, `transient`), `LabelStudioAuthError` (`reason`) |

It imports nothing of gemini_ls but `urls.py`: the image fetcher (images/) uses its credentials.
"""

from .auth import LabelStudioAuth, key_kind
from .client import LabelStudioApi
from .credentials import CredentialStore
from .errors import LabelStudioApiError, LabelStudioAuthError
from .predictions import PredictionRecord, PredictionWriter, WriteReport
from .project import LabelStudioProject
from .retry import WRITE_ATTEMPTS

__all__ = [
    "WRITE_ATTEMPTS",
    "CredentialStore",
    "LabelStudioApi",
    "LabelStudioApiError",
    "LabelStudioAuth",
    "LabelStudioAuthError",
    "LabelStudioProject",
    "PredictionRecord",
    "PredictionWriter",
    "WriteReport",
    "key_kind",
]
