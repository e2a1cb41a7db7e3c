"""Every environment variable Settings reads: parsed, defaulted, and rejected when malformed."""

import re
from pathlib import Path

import pytest

from gemini_ls.settings import NO_GEMINI_MESSAGE, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]

ENV = {
    "GEMINI_API_KEY": "k-gemini-123456",
    "GEMINI_BASE_URL": "http://127.0.0.1:9999",
    "GEMINI_MODEL": "gemini-3-flash",
    "GEMINI_MASK_MODEL": "gemini-robotics-er-1.6-preview",
    "GEMINI_CONCURRENCY": "16",
    "GEMINI_FILES": "always",
    "GEMINI_TIMEOUT": "12.5",
    "GEMINI_MAX_RETRIES": "2",
    "GEMINI_MAX_COOLDOWN": "45",
    "GEMINI_TEMPERATURE": "0.7",
    "GEMINI_MEDIA_RESOLUTION": "high",
    "TILING": "2X3",
    "GEMINI_INLINE_LIMIT_BYTES": "1000000",
    "PREDICT_TIMEOUT": "30",
    "MAX_REQUESTS_PER_TASK": "6",
    "MAX_PAGES": "7",
    "MAX_DYNAMIC_LABELS": "50",
    "MODEL_VERSION_SUFFIX": "exp1",
    "MODEL_SCORE_THRESHOLD": "0.25",
    "MODEL_MAX_OBJECTS": "40",
    "MODEL_MASK_THRESHOLD": "100",
    "MODEL_POLYGON_TOLERANCE": "2",
    "MODEL_MIN_AREA": "9",
    "IMAGE_MAX_SIDE": "1024",
    "IMAGE_MAX_DOWNLOAD_BYTES": "1000",
    "IMAGE_MAX_PIXELS": "5000",
    "IMAGE_DECODE_BUDGET": "7000",
    "IMAGE_FETCH_TIMEOUT": "3",
    "FETCH_ALLOW_PRIVATE": "true",
    "FETCH_ALLOWLIST": "10.0.0.0/8, images.local",
    "LABEL_STUDIO_URL": "http://ls:8080/",
    "LABEL_STUDIO_API_KEY": "tok",
    "REDIS_URL": "redis://r:6379/0",
    "REDIS_PREFIX": "p:",
    "HOST": "127.0.0.1",
    "PORT": "9191",
    "BASIC_AUTH_USER": "u",
    "BASIC_AUTH_PASS": "pw",
    "MAX_REQUEST_BYTES": "2048",
    "LOG_LEVEL": "debug",
    "WORKERS": "3",
    "THREADS": "5",
    "EMULATOR_LATENCY": "0.5",
    "REVIEW_LEARN": "thresholds, Synonyms",
    "REVIEW_LEARN_MIN_SAMPLES": "4",
    "FEW_SHOT_EXAMPLES": "3",
    "FEW_SHOT_MAX_TOKENS": "5000",
    "FEW_SHOT_CACHE": "false",
    "FEW_SHOT_CACHE_TTL": "900",
    "JOB_CHUNK": "8",
    "JOB_TIMEOUT": "120",
    "JOB_RETRIES": "1",
    "JOB_HEARTBEAT": "2",
    "SERVE_WORKER": "false",
    "WRITE_BACK": "false",
    "WRITEBACK_CHUNK": "50",
    "PREDICT_ANSWER_MAX": "30",
    "WRITEBACK_ATTEMPTS": "3",
    "WRITEBACK_TIMEOUT": "5",
    "GEMINI_RPM": "60",
    "GEMINI_TPM": "100000",
    "GEMINI_RATE_WINDOW": "10",
    "GEMINI_BATCH_INLINE_LIMIT_BYTES": "4096",
    "GEMINI_BATCH_POLL_SECONDS": "0.5",
    "GEMINI_BATCH_POLL_MAX": "7",
    "GEMINI_BATCH_DISCOUNT": "0.4",
    "GEMINI_PRICES": "gemini-2.5-flash=1:2",
    "GEMINI_EMULATOR": "embedded",  # with a key: the key wins
}


def test_every_variable_is_read():
    s = Settings.from_env(ENV)
    assert s.api_key == "k-gemini-123456" and not s.uses_emulator and s.gemini_emulator == "embedded"
    assert s.base_url == "http://127.0.0.1:9999" and s.model == "gemini-3-flash"
    assert s.mask_model == "gemini-robotics-er-1.6-preview"
    assert s.concurrency == 16 and s.files_policy == "always" and s.request_timeout == 12.5
    assert s.max_retries == 2 and s.temperature == 0.7 and s.media_resolution == "HIGH"
    assert s.inline_limit_bytes == 1_000_000 and s.predict_timeout == 30 and s.model_version_suffix == "exp1"
    d = s.defaults
    assert (d.score_threshold, d.max_objects, d.mask_threshold, d.polygon_tolerance, d.min_area) == (0.25, 40, 100, 2.0, 9)
    assert (d.tiling, d.media_resolution) == ("2x3", "HIGH")
    assert s.image_max_side == 1024 and s.image_max_download_bytes == 1000 and s.image_max_pixels == 5000
    assert s.image_decode_budget == 7000 and s.max_requests_per_task == 6 and s.max_cooldown == 45 and s.max_pages == 7
    assert s.max_dynamic_labels == 50
    assert s.image_fetch_timeout == 3 and s.fetch_allow_private is True
    assert s.fetch_allowlist == ("10.0.0.0/8", "images.local")
    assert s.label_studio_url == "http://ls:8080" and s.label_studio_api_key == "tok"
    assert s.redis_url == "redis://r:6379/0" and s.redis_prefix == "p:"
    assert s.review_learn == ("thresholds", "synonyms") and s.review_min_samples == 4
    assert s.few_shot_examples == 3 and s.few_shot_max_tokens == 5000
    assert s.few_shot_cache is False and s.few_shot_cache_ttl == 900.0
    assert s.host == "127.0.0.1" and s.port == 9191
    assert s.basic_auth_user == "u" and s.basic_auth_pass == "pw" and s.max_request_bytes == 2048
    assert s.log_level == "DEBUG" and s.workers == 3 and s.threads == 5 and s.emulator_latency == 0.5
    assert (s.job_chunk, s.job_timeout, s.job_retries, s.job_heartbeat) == (8, 120, 1, 2)
    assert s.serve_worker is False and s.write_back is False
    assert (s.writeback_chunk, s.predict_answer_max, s.writeback_attempts, s.writeback_timeout) == (50, 30, 3, 5)
    assert (s.gemini_rpm, s.gemini_tpm, s.gemini_rate_window) == (60, 100000, 10)
    assert s.batch_inline_limit_bytes == 4096 and s.batch_poll_seconds == 0.5 and s.batch_poll_max == 7
    assert s.batch_discount == 0.4 and s.prices == (("gemini-2.5-flash", 1.0, 2.0),)


def test_defaults_with_an_empty_environment():
    s = Settings.from_env({})
    assert s.api_key is None and s.gemini_emulator == "off"
    assert not s.uses_emulator and not s.gemini_configured  # no silent stand-in for Gemini
    assert s.model == "gemini-3.6-flash" and s.mask_model == "gemini-2.5-flash-lite"
    assert s.files_policy == "auto" and s.port == 9090
    assert s.predict_timeout < 100  # below Label Studio's ML_TIMEOUT_PREDICT
    assert s.redis_url is None and s.redis_prefix == "gemini-ls:"


def test_google_api_key_wins_like_the_sdk():
    assert Settings.from_env({"GEMINI_API_KEY": "a-123456", "GOOGLE_API_KEY": "b-123456"}).api_key == "b-123456"


@pytest.mark.parametrize(
    "env, emulated, configured",
    [({}, False, False), ({"GEMINI_EMULATOR": ""}, False, False), ({"GEMINI_EMULATOR": "off"}, False, False),
     ({"GEMINI_EMULATOR": "embedded"}, True, True), ({"GEMINI_EMULATOR": " Embedded "}, True, True),
     ({"GEMINI_EMULATOR": "embedded", "GEMINI_API_KEY": "k-123456"}, False, True),
     ({"GEMINI_EMULATOR": "embedded", "GOOGLE_API_KEY": "k-123456"}, False, True),
     ({"GEMINI_API_KEY": "k-123456"}, False, True), ({"GEMINI_API_KEY": "  "}, False, False)],
)
def test_the_emulator_only_when_asked_for_and_a_key_always_wins(env, emulated, configured):
    s = Settings.from_env(env)
    assert (s.uses_emulator, s.gemini_configured) == (emulated, configured)


def test_the_no_gemini_message_names_every_way_out():
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_EMULATOR=embedded"):
        assert name in NO_GEMINI_MESSAGE


def test_key_never_in_repr_and_fingerprint_is_not_the_key():
    s = Settings.from_env({"GEMINI_API_KEY": "secret-key-value", "LABEL_STUDIO_API_KEY": "ls-secret", "BASIC_AUTH_PASS": "pw-secret"})
    text = repr(s)
    assert "secret-key-value" not in text and "ls-secret" not in text and "pw-secret" not in text
    assert "secret" not in s.key_fingerprint and len(s.key_fingerprint) == 16
    assert s.key_fingerprint != Settings.from_env({"GEMINI_API_KEY": "other-key-value"}).key_fingerprint


@pytest.mark.parametrize(
    "name, value",
    [("GEMINI_FILES", "sometimes"), ("GEMINI_CONCURRENCY", "0"), ("GEMINI_CONCURRENCY", "many"),
     ("PREDICT_TIMEOUT", "-1"), ("FETCH_ALLOW_PRIVATE", "maybe"), ("GEMINI_MEDIA_RESOLUTION", "ULTRA"), ("TILING", "3"), ("TILING", "9x9"),
     ("GEMINI_TEMPERATURE", "warm"), ("GEMINI_TEMPERATURE", "nan"), ("GEMINI_TEMPERATURE", "5"), ("LOG_LEVEL", "LOUD"),
     ("MAX_REQUESTS_PER_TASK", "0"), ("MAX_PAGES", "0"), ("MAX_DYNAMIC_LABELS", "0"),
     ("IMAGE_DECODE_BUDGET", "lots"), ("GEMINI_MAX_COOLDOWN", "0"),
     ("REVIEW_LEARN", "thresholds,telepathy"), ("REVIEW_LEARN_MIN_SAMPLES", "0"),
     ("FEW_SHOT_EXAMPLES", "-1"), ("FEW_SHOT_MAX_TOKENS", "0"), ("FEW_SHOT_CACHE_TTL", "60"),
     ("GEMINI_EMULATOR", "yes"), ("GEMINI_EMULATOR", "external")],
)
def test_malformed_values_are_rejected_with_the_variable_name(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def _variables_read() -> set[str]:
    source = (ROOT / "backend/gemini_ls/settings.py").read_text()
    return set(re.findall(r'_(?:get|str|int|float|bool|csv|choice)\(env, "([A-Z_]+)"', source))


def test_every_variable_read_is_tested_here_and_documented_in_the_configuration_page():
    read = _variables_read()
    assert read, "no env var found in settings.py"
    assert read - {"GOOGLE_API_KEY"} <= set(ENV), f"untested: {sorted(read - set(ENV))}"
    table = (ROOT / "docs/configuration.md").read_text()
    table = table[table.index("## Environment variables"):]
    missing = sorted(v for v in read if f"`{v}`" not in table)
    assert not missing, f"docs/configuration.md does not document: {missing}"


def test_the_readme_settings_are_real_and_their_defaults_match_the_configuration_page():
    """The README's short table is a copy of rows of docs/configuration.md: same variables, same defaults."""
    readme = (ROOT / "README.md").read_text()
    readme = readme[readme.index("## The ten settings that matter"):]
    readme = readme[: readme.index("\n## ")]
    config = (ROOT / "docs/configuration.md").read_text()
    full = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in config.splitlines() if row.startswith("| `")}
    rows = [row for row in readme.splitlines() if row.startswith("| `")]
    assert len(rows) == 10, rows
    read = _variables_read()
    for row in rows:
        names, default = row.split("|")[1].strip(), row.split("|")[2].strip()
        assert set(re.findall(r"`([A-Z_]+)`", names)) <= read, row
        assert full.get(names) == default, f"README: {names} = {default}; docs/configuration.md: {full.get(names)}"
