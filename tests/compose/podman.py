"""The compose stack on podman: local images (no registry), bring-up, healthchecks, tear-down.

Images, built once and cached (see tests/compose/README.md):

    Debian bookworm rootfs   debootstrap from the host's apt mirror -> <cache>/compose/bookworm-<key>.tar
    base                     `podman import` of it + the host's CAs and pip trust settings
    redis / postgres /       tests/compose/images/*.Containerfile on that base
    label-studio
    gemini-ls                the compose file's own build (backend/Dockerfile), BASE_IMAGE = the base

Every tag carries a hash of what the image is made of (recipe, Containerfile, sources), so an
image that exists under its tag is up to date and a second run builds nothing.

podman here: Debian 12's podman 4.3, runc, cgroupfs, `CONTAINERS_CONF=tests/compose/containers.conf`.
Two gaps of that podman which the harness fills, and only those:
* no systemd, so podman schedules no healthcheck timers: `wait_healthy` runs each container's own
  healthcheck (the compose file's `test`) with `podman healthcheck run` until it passes;
* podman-compose ignores `depends_on: condition: service_healthy` on podman < 4.6 (it says so in
  its log) and would start the services together, Label Studio before its database accepts
  connections: `ComposeProject.up` starts them in the compose file's dependency order instead, each
  wave once the services the next one depends on pass their healthchecks (what Docker Compose does).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.fixtures.labelstudio import cache_dir, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
OVERRIDE_FILE = HERE / "compose.override.yml"
CONTAINERS_CONF = HERE / "containers.conf"
IMAGES_DIR = HERE / "images"
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", ROOT / "artifacts" / "e2e")).parent / "compose"

SUITE = "bookworm"
# Packages of the base root filesystem: what the backend's Dockerfile and the Label Studio image
# need from "a Python image" (python, pip, venv), plus CA handling.
ROOTFS_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
DEBOOTSTRAP_ARGS = ("--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}", SUITE)
IMAGE_REPO = "localhost/gemini-ls-test"
BACKEND_SERVICE = "gemini-ls"  # built once through the compose file; the other backend services share its image

IMAGE_FORMAT = "docker"
BUILD_TIMEOUT = 3600.0
HEALTH_TIMEOUT = 600.0


class ComposeError(AssertionError):
    """A step of bring-up, use or tear-down failed; the message carries the command's output."""


# ----------------------------------------------------------------------------------------------
# podman and podman-compose, configured for this machine
# ----------------------------------------------------------------------------------------------


def podman_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "PODMAN_"))}
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    # Docker's image format, not OCI: OCI images cannot carry the Dockerfile's HEALTHCHECK.
    env["BUILDAH_FORMAT"] = IMAGE_FORMAT
    env.update(extra or {})
    return env


def run(argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None, check: bool = True,
        cwd: Path | None = None, log: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command; with `log`, its output is appended there (and still returned)."""
    started = time.monotonic()
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env or podman_env(),
                             stdin=subprocess.DEVNULL, cwd=str(cwd or ROOT))
    except subprocess.TimeoutExpired as exc:
        partial = "\n".join(x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (exc.stdout, exc.stderr))
        raise ComposeError(f"{' '.join(argv)}: no answer within {timeout:.0f} s\n{partial}") from exc
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"\n$ {' '.join(argv)}   # rc={out.returncode}, {time.monotonic() - started:.1f} s\n{out.stdout}{out.stderr}")
    if check and out.returncode != 0:
        raise ComposeError(f"{' '.join(argv)} -> exit {out.returncode}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


def podman(*args: str, timeout: float = 120, check: bool = True, log: Path | None = None) -> subprocess.CompletedProcess:
    return run(["podman", *args], timeout=timeout, check=check, log=log)


def compose_argv() -> list[str]:
    """podman-compose from our own virtualenv (test extras), run by this interpreter."""
    return [sys.executable, "-m", "podman_compose"]


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def _digest(*parts: bytes | str | Path) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            h.update(part.as_posix().encode() + b"\0" + part.read_bytes())
        else:
            h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0\0")
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# The local base: debootstrap rootfs (cached tarball) + the host's trust settings
# ----------------------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror apt on this host uses (debootstrap needs one; none is written in the repo)."""
    if os.environ.get("GEMINI_LS_DEBIAN_MIRROR"):
        return os.environ["GEMINI_LS_DEBIAN_MIRROR"]
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + sorted(Path("/etc/apt").glob("sources.list*"))
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        # deb822 stanzas ("URIs: ...", "Suites: bookworm ...") and one-line entries ("deb URI bookworm main").
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", text, re.M):
            if m.group(2) == SUITE and "security" not in m.group(1):
                return m.group(1)
    raise ComposeError(f"no apt source for Debian {SUITE} in /etc/apt (set GEMINI_LS_DEBIAN_MIRROR)")


def rootfs_tarball(cache: Path, log: Path) -> Path:
    """Debian bookworm with python3/pip/venv, as a tarball for `podman import`; built once per recipe."""
    key = _digest(repr(DEBOOTSTRAP_ARGS))
    tarball = cache / f"{SUITE}-rootfs-{key}.tar"
    if tarball.is_file():
        return tarball
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        target = work / "root"
        run(["debootstrap", *DEBOOTSTRAP_ARGS, str(target), debian_mirror()], timeout=BUILD_TIMEOUT, env=dict(os.environ), log=log)
        run(["chroot", str(target), "apt-get", "clean"], timeout=120, env=dict(os.environ), log=log)
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for p in (target / leftover).glob("*"):
                if p.is_file():
                    p.unlink()
        part = tarball.with_suffix(".part")
        run(["tar", "--numeric-owner", "-C", str(target), "-cf", str(part), "."], timeout=600, env=dict(os.environ), log=log)
        part.replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def _host_pip_conf() -> str:
    """pip settings for image builds: trust the system CA bundle; reuse the host's http(s) indexes."""
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60)
    for raw in out.stdout.splitlines():
        name, _, value = raw.partition("=")
        option = name.rsplit(".", 1)[-1]
        if option in ("index-url", "extra-index-url", "trusted-host"):
            urls = [u for u in value.strip().strip("'\"").split() if option == "trusted-host" or u.startswith(("http://", "https://"))]
            if urls:
                lines.append(f"{option} = {' '.join(urls)}")
    return "\n".join(lines) + "\n"


def base_image(cache: Path, log: Path) -> str:
    tarball = rootfs_tarball(cache, log)
    rootfs_ref = f"{IMAGE_REPO}/{SUITE}-rootfs:{tarball.stem.rsplit('-', 1)[-1]}"
    cas = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
    pip_conf = _host_pip_conf()
    containerfile = IMAGES_DIR / "base.Containerfile"
    ref = f"{IMAGE_REPO}/base:{_digest(rootfs_ref, containerfile, pip_conf, *cas)}"
    if image_exists(ref):
        return ref
    if not image_exists(rootfs_ref):
        podman("import", str(tarball), rootfs_ref, timeout=600, log=log)
    context = Path(tempfile.mkdtemp(prefix="base-context-", dir=cache))
    try:
        (context / "ca").mkdir()
        for i, ca in enumerate(cas):
            shutil.copyfile(ca, context / "ca" / f"host-{i}-{ca.name}")
        (context / "pip.conf").write_text(pip_conf)
        podman("build", "--build-arg", f"ROOTFS_IMAGE={rootfs_ref}", "-f", str(containerfile), "-t", ref, str(context),
               timeout=BUILD_TIMEOUT, log=log)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return ref


# Files of images/ an image's Containerfile copies besides itself (they are part of its tag's key).
CONTEXT_FILES = {"postgres": ("postgres-entrypoint.sh",)}
LOCAL_IMAGES = ("redis", "postgres", "label-studio")


def _containerfile_image(name: str, base: str) -> tuple[str, Path]:
    """(tag, Containerfile) of one of images/*.Containerfile built on `base`."""
    containerfile = IMAGES_DIR / f"{name}.Containerfile"
    copied = [IMAGES_DIR / f for f in CONTEXT_FILES.get(name, ())]
    return f"{IMAGE_REPO}/{name}:{_digest(base, containerfile, *copied)}", containerfile


def backend_inputs() -> list[Path]:
    """What backend/Dockerfile copies (the .dockerignore allow-list), in a stable order."""
    files = [ROOT / "backend" / "Dockerfile", ROOT / ".dockerignore", ROOT / "pyproject.toml", ROOT / "README.md",
             ROOT / "backend" / "docker-entrypoint.sh"]
    files += sorted(p for p in (ROOT / "backend" / "gemini_ls").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo", ".tmp"))
    return files


@dataclass(frozen=True)
class Images:
    base: str
    redis: str
    postgres: str
    label_studio: str
    backend_tag: str  # GEMINI_LS_TAG: the compose file names the backend image gemini-ls:${GEMINI_LS_TAG}
    seconds: float  # time spent making sure they exist (≈0 when all were cached)

    def environment(self) -> dict[str, str]:
        """The variables tests/compose/compose.override.yml and docker-compose.yml read."""
        return {"GEMINI_LS_TEST_BASE_IMAGE": self.base, "GEMINI_LS_TEST_REDIS_IMAGE": self.redis,
                "GEMINI_LS_TEST_POSTGRES_IMAGE": self.postgres, "GEMINI_LS_TEST_LABEL_STUDIO_IMAGE": self.label_studio,
                "GEMINI_LS_TAG": self.backend_tag}


# ----------------------------------------------------------------------------------------------
# The container network, checked before minutes of image builds depend on it
# ----------------------------------------------------------------------------------------------

PROBE_IMAGE = f"{IMAGE_REPO}/netprobe"
PROBE_TIMEOUT = 60.0


def _probe_image() -> str:
    """A two-file image (the host's `true` and the libraries it loads), imported, never built: it
    exists before any registry, mirror or Containerfile is involved."""
    true = shutil.which("true") or "/usr/bin/true"
    ldd = subprocess.run(["ldd", true], capture_output=True, text=True, timeout=30).stdout
    paths = [true, *re.findall(r"(/\S+) \(0x", ldd)]
    ref = f"{PROBE_IMAGE}:{_digest(*(Path(p) for p in paths))}"
    if image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "probe.tar"
        with tarfile.open(tarball, "w", dereference=True) as tar:
            for path in paths:
                tar.add(path, arcname=path.lstrip("/"))
        podman("import", "--quiet", str(tarball), ref, timeout=PROBE_TIMEOUT)
    return ref


def check_container_network() -> float:
    """One `podman run --network` on a fresh bridge network, as compose makes one per project.

    Fails in seconds with podman's reason and what usually causes it, instead of a build's first RUN
    failing minutes later (a machine without iptables: "netavark: No such file or directory")."""
    started = time.monotonic()
    network = f"gemini-ls-probe-{os.getpid()}"
    try:
        image = _probe_image()
        podman("network", "create", network, timeout=PROBE_TIMEOUT)
        try:
            podman("run", "--rm", "--network", network, image, shutil.which("true") or "/usr/bin/true", timeout=PROBE_TIMEOUT)
        finally:
            podman("network", "rm", "-f", network, timeout=PROBE_TIMEOUT, check=False)
    except ComposeError as exc:
        raise ComposeError(
            "the container network does not work, so no compose image can be built or run "
            "(podman run --network on a fresh bridge network failed). On Debian 12 netavark needs iptables; "
            f"`.ci/install-system-deps` installs and checks it.\n{exc}") from exc
    return time.monotonic() - started


def ensure_images() -> Images:
    """Every image the stack needs, built where missing; one builder at a time per machine."""
    started = time.monotonic()
    cache = cache_dir() / "compose"
    cache.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "build.log"
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base = base_image(cache, log)
        local = {name: _containerfile_image(name, base) for name in LOCAL_IMAGES}
        tag = "test-" + _digest(base, IMAGE_FORMAT, *backend_inputs())
        images = Images(base, local["redis"][0], local["postgres"][0], local["label-studio"][0], tag, 0.0)
        # The compose file's own build section (context, dockerfile), BASE_IMAGE from the override.
        compose_build = ComposeProject(f"gemini-ls-build-{os.getpid()}", images.environment())
        builds = {ref: ["podman", "build", "--build-arg", f"BASE_IMAGE={base}", "-f", str(file), "-t", ref, str(IMAGES_DIR)]
                  for ref, file in local.values()}
        builds[f"gemini-ls:{tag}"] = compose_build.argv("build", BACKEND_SERVICE)
        missing = {ref: argv for ref, argv in builds.items() if not image_exists(ref)}
        # Independent builds on one base, mostly waiting on downloads: side by side.
        with ThreadPoolExecutor(max_workers=len(builds)) as pool:
            futures = [pool.submit(run, argv, timeout=BUILD_TIMEOUT, env=podman_env(images.environment()),
                                   log=ARTIFACTS / f"build-{ref.rsplit('/', 1)[-1].split(':')[0]}.log")
                       for ref, argv in missing.items()]
            for future in futures:
                future.result()
        for ref, argv in missing.items():
            if not image_exists(ref):
                raise ComposeError(f"{' '.join(argv)} did not produce {ref}")
    return Images(base, images.redis, images.postgres, images.label_studio, tag, time.monotonic() - started)


# ----------------------------------------------------------------------------------------------
# One compose project: the real compose file + the image-only override
# ----------------------------------------------------------------------------------------------


@dataclass
class ComposeProject:
    name: str
    variables: dict[str, str]
    compose_file: Path = COMPOSE_FILE
    override_file: Path = OVERRIDE_FILE
    profiles: tuple[str, ...] = ()
    healthy_after: dict[str, float] = field(default_factory=dict)  # seconds until each service was healthy
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = ARTIFACTS / f"{self.name}.log"
        # A developer's .env next to the compose file must not change what the tests run.
        self._env_file = cache_dir() / "compose" / "empty.env"
        self._env_file.parent.mkdir(parents=True, exist_ok=True)
        self._env_file.write_text("")

    def argv(self, *args: str) -> list[str]:
        profiles = [a for p in self.profiles for a in ("--profile", p)]
        return [*compose_argv(), "--in-pod", "false", "--env-file", str(self._env_file), "-p", self.name,
                "-f", str(self.compose_file), "-f", str(self.override_file), *profiles, *args]

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.argv(*args), timeout=timeout, check=check, env=podman_env(self.variables),
                   cwd=self.compose_file.parent, log=self.log)

    # -- what podman made of it ------------------------------------------------------------------

    def _label_filter(self) -> str:
        return f"label=io.podman.compose.project={self.name}"

    def containers(self) -> list[dict]:
        out = podman("ps", "-a", "--filter", self._label_filter(), "--format", "json")
        return json.loads(out.stdout or "[]")

    def container(self, service: str) -> str:
        names = [c["Names"][0] for c in self.containers() if c.get("Labels", {}).get("com.docker.compose.service") == service]
        if len(names) != 1:
            raise ComposeError(f"service {service}: containers {names}")
        return names[0]

    def services(self) -> set[str]:
        return {c["Labels"]["com.docker.compose.service"] for c in self.containers()}

    def volumes(self) -> list[str]:
        out = podman("volume", "ls", "--filter", self._label_filter(), "--format", "{{.Name}}")
        return out.stdout.split()

    def networks(self) -> list[str]:
        out = podman("network", "ls", "--filter", self._label_filter(), "--format", "{{.Name}}")
        return out.stdout.split()

    def exec(self, service: str, *argv: str, timeout: float = 60) -> str:
        return podman("exec", self.container(service), *argv, timeout=timeout).stdout

    # -- lifecycle -------------------------------------------------------------------------------

    def up(self) -> None:
        """`up -d`, wave by wave in depends_on order (podman-compose on podman < 4.6 ignores the
        service_healthy conditions): each wave starts once the services it waits for are healthy."""
        waves = start_waves(self.compose_file, self.profiles)
        for i, wave in enumerate(waves):
            if i:
                needed = {dep for name in wave for dep in self._depends_on(name)}
                self.wait_healthy(needed)
            # --no-build: the images exist (ensure_images); a missing one is an error, not a pull.
            self.compose("up", "-d", "--no-build", *wave, timeout=600)

    def _depends_on(self, service: str) -> set[str]:
        return set(compose_services(self.compose_file)[service].get("depends_on") or {})

    def wait_healthy(self, services: Iterable[str], timeout: float = HEALTH_TIMEOUT) -> dict[str, float]:
        """Run each service's compose healthcheck (`podman healthcheck run`) until all pass.

        Returns seconds until each one was first healthy. Fails at once when a container exits.
        """
        wanted = set(services)
        started = time.monotonic()
        healthy: dict[str, float] = {}
        last: dict[str, str] = {}
        while True:
            by_service = {c["Labels"]["com.docker.compose.service"]: c for c in self.containers()}
            missing = wanted - set(by_service)
            if missing:
                raise ComposeError(f"no container for {sorted(missing)}; project has {sorted(by_service)}\n{self.logs()}")
            for service in sorted(wanted - set(healthy)):
                c = by_service[service]
                if c["State"] != "running":
                    raise ComposeError(f"{service} is {c['State']} (exit {c.get('ExitCode')})\n{self.logs(service)}")
                out = podman("healthcheck", "run", c["Names"][0], check=False, timeout=60)
                if out.returncode == 0:
                    healthy[service] = round(time.monotonic() - started, 1)
                else:
                    last[service] = (out.stdout + out.stderr).strip()
            if wanted <= set(healthy):
                return healthy
            if time.monotonic() - started > timeout:
                pending = {s: last.get(s) for s in wanted - set(healthy)}
                raise ComposeError(f"not healthy within {timeout:.0f} s: {pending}\n{self.logs()}")
            time.sleep(2)

    def logs(self, service: str | None = None, tail: int = 60) -> str:
        names = [c["Names"][0] for c in self.containers()
                 if service is None or c["Labels"]["com.docker.compose.service"] == service]
        parts = []
        for name in names:
            out = podman("logs", "--tail", str(tail), name, check=False, timeout=60)
            parts.append(f"---- {name}\n{out.stdout}{out.stderr}")
        text = "\n".join(parts)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as f:
            f.write(f"\n==== container logs\n{text}\n")
        return text[-8000:]

    def down(self) -> None:
        """Containers, network and named volumes go (`down -v`)."""
        self.compose("down", "-v", "-t", "10", timeout=300, check=False)


def compose_services(compose_file: Path) -> dict[str, dict]:
    return yaml.safe_load(compose_file.read_text())["services"]


def start_waves(compose_file: Path, profiles: tuple[str, ...]) -> list[list[str]]:
    """The services `--profile ...` runs, in waves: each service after every one it depends on."""
    services = {n: s for n, s in compose_services(compose_file).items()
                if not s.get("profiles") or set(s["profiles"]) & set(profiles)}
    waves: list[list[str]] = []
    placed: set[str] = set()
    while len(placed) < len(services):
        wave = sorted(n for n, s in services.items() if n not in placed and set(s.get("depends_on") or {}) <= placed)
        if not wave:
            raise ComposeError(f"depends_on cycle among {sorted(set(services) - placed)}")
        waves.append(wave)
        placed |= set(wave)
    return waves


def published_ports() -> dict[str, str]:
    """Free host ports for the compose file's port variables (the defaults may be in use here)."""
    return {"BIND_ADDRESS": "127.0.0.1", "LABEL_STUDIO_PORT": str(free_port()),
            "GEMINI_LS_PORT": str(free_port()), "GEMINI_LS_OFFLINE_PORT": str(free_port())}
