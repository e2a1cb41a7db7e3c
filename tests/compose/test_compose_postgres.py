"""docker-compose.yml: Label Studio on the `postgres` service, statically.

The stack test (test_stack.py) shows Label Studio's rows in the compose PostgreSQL; these checks say
why it must: the service, its volume and healthcheck, one set of variables on both sides, and what
Label Studio 1.23.2's own settings make of the environment the compose file gives it (run with the
Label Studio of LS_VENV, as the e2e suite does: a missing Label Studio is a failure, not a skip).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.fixtures.labelstudio import LS_VENV, _require_label_studio

from .podman import start_waves
from .test_compose_file import COMPOSE_FILE, _env, _interpolated_default

SERVICE = "postgres"
VOLUME = "postgres-data"
DATA_DIR = "/var/lib/postgresql/data"  # the official image's PGDATA up to major version 17
# Label Studio's name for each setting -> the official postgres image's name for the same value.
SAME_VALUE = {"POSTGRE_NAME": "POSTGRES_DB", "POSTGRE_USER": "POSTGRES_USER", "POSTGRE_PASSWORD": "POSTGRES_PASSWORD"}


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def _resolved(env: dict[str, str]) -> dict[str, str]:
    """The environment as Compose resolves it with no variables set: every ${X:-default} -> default."""
    return {k: _interpolated_default(v)[1] for k, v in env.items()}


def test_postgres_is_the_official_image_with_a_named_volume_and_no_published_port(services):
    pg = services[SERVICE]
    assert re.fullmatch(r"postgres:\d+(\.\d+)*-alpine", pg["image"]), pg["image"]
    major = int(pg["image"].split(":")[1].split(".")[0].split("-")[0])
    assert major <= 17, "postgres:18 moved PGDATA (and the volume) to /var/lib/postgresql/<major>/docker"
    assert f"{VOLUME}:{DATA_DIR}" in pg["volumes"]
    assert VOLUME in yaml.safe_load(COMPOSE_FILE.read_text())["volumes"]
    # Reached by Label Studio on the compose network only: the password guards nothing else.
    assert "ports" not in pg
    assert not pg.get("profiles"), "Label Studio runs without a profile, so must its database"
    assert pg["restart"] == "unless-stopped"


def test_postgres_credentials_come_from_documented_variables_with_defaults(services):
    env = _env(services[SERVICE])
    header = COMPOSE_FILE.read_text().split("\nx-", 1)[0]
    for name in SAME_VALUE.values():
        var, default = _interpolated_default(env[name])
        assert var == name and default, f"{name}: {env[name]!r} needs a variable and a default"
        # The header comment names each variable with its default.
        assert re.search(rf"{name} \({re.escape(default)}\)", header), f"{name} ({default}) not documented in the header"


def test_the_healthcheck_asks_over_tcp_as_the_configured_role(services):
    test = services[SERVICE]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and test[1].startswith("pg_isready ")
    # TCP: on an empty volume the image's temporary init server listens on the Unix socket only.
    assert "-h 127.0.0.1" in test[1] and "-p 5432" in test[1]
    # $$ is Compose's escape for $: the container's own variables, whatever values they were given.
    assert '-U "$${POSTGRES_USER}"' in test[1] and '-d "$${POSTGRES_DB}"' in test[1]


def test_label_studio_waits_for_postgres_and_logs_in_with_the_same_variables(services):
    ls, pg = _env(services["label-studio"]), _env(services[SERVICE])
    assert services["label-studio"]["depends_on"][SERVICE] == {"condition": "service_healthy"}
    assert ls["DJANGO_DB"] == "default"
    assert (ls["POSTGRE_HOST"], ls["POSTGRE_PORT"]) == (SERVICE, "5432")
    for ls_name, pg_name in SAME_VALUE.items():
        # Same variable and same default on both sides: one value, whichever the user sets.
        assert _interpolated_default(ls[ls_name]) == _interpolated_default(pg[pg_name]), (ls_name, pg_name)


def test_label_studio_settings_select_the_compose_postgres(services, tmp_path):
    """Label Studio 1.23.2's own settings module, given the environment the compose file resolves to."""
    _require_label_studio()
    env = _resolved(_env(services["label-studio"]))
    code = ("import json, os, sys, label_studio; sys.path.insert(0, os.path.dirname(label_studio.__file__)); "
            "from django.conf import settings; db = settings.DATABASES['default']; "
            "print(json.dumps({k: db[k] for k in ('ENGINE', 'HOST', 'PORT', 'NAME', 'USER', 'PASSWORD')}))")
    out = subprocess.run([str(LS_VENV / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
                              "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path / "data"), **env}, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    db = json.loads(out.stdout.strip().splitlines()[-1])
    pg = _resolved(_env(services[SERVICE]))
    assert db == {"ENGINE": "django.db.backends.postgresql", "HOST": SERVICE, "PORT": 5432, "NAME": pg["POSTGRES_DB"],
                  "USER": pg["POSTGRES_USER"], "PASSWORD": pg["POSTGRES_PASSWORD"]}, db


def test_the_harness_starts_label_studio_after_its_database(services):
    """podman-compose on podman < 4.6 ignores service_healthy; tests/compose/podman.py starts waves."""
    for profiles in ((), ("offline",)):
        waves = start_waves(COMPOSE_FILE, profiles)
        position = {name: i for i, wave in enumerate(waves) for name in wave}
        assert set(position) == {n for n, s in services.items() if not s.get("profiles") or set(s["profiles"]) & set(profiles)}
        for name, i in position.items():
            assert all(position[dep] < i for dep in services[name].get("depends_on") or {}), (name, waves)
        assert position[SERVICE] < position["label-studio"], waves
