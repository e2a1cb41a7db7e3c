"""The container's server command, run as it is in the image but straight on this machine.

backend/docker-entrypoint.sh is the Dockerfile's ENTRYPOINT (tests/unit/test_compose.py checks that);
here it runs as a subprocess with the container's environment, only the port and the metrics directory
adapted: two gunicorn workers, /health, /metrics added up across the workers, a clean SIGTERM stop.
No Gemini key is given: with GEMINI_EMULATOR=embedded the app answers from its embedded emulator;
without it (compose's `gemini-ls` with no key) it stays up and healthy and says once why it predicts nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "backend" / "docker-entrypoint.sh"
IMAGE_ENTRYPOINT_PATH = "/usr/local/bin/docker-entrypoint.sh"  # where backend/Dockerfile puts it

STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 35.0  # gunicorn's graceful timeout (30 s) plus a margin; idle workers leave at once

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _post_json(url: str, body: dict, timeout: float = 10.0) -> int:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Connection": "close"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _gunicorn_children(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        try:
            if b"gunicorn" in Path(f"/proc/{child}/cmdline").read_bytes() and _alive(child):
                found.append(child)
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _container_env(tmp_path: Path, port: int, multiproc: Path, emulator: str = "embedded") -> dict[str, str]:
    """The image's environment (backend/Dockerfile ENV) with this machine's port and directories."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "PROMETHEUS_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # the venv's gunicorn
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        HOME=str(tmp_path / "home"),
        HOST="127.0.0.1",  # the image binds 0.0.0.0; a test stays on loopback
        PORT=str(port),
        WORKERS="2",
        THREADS="4",
        LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        GEMINI_EMULATOR=emulator,
    )
    for name in ("REDIS_URL", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
        env.pop(name, None)
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _wait_health(base: str, proc: subprocess.Popen, log_path: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = None
    failing_since = None  # the server answers, but with errors: no point waiting the full minute
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"entrypoint exited with {proc.returncode} before /health answered:\n{log_path.read_text()[-4000:]}")
        try:
            status, _, body = _get(f"{base}/health", timeout=2)
            if status == 200:
                return json.loads(body)
            last = f"HTTP {status}: {body[:300]!r}"
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > 15:
                break
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.25)
    pytest.fail(f"/health did not answer 200 (last: {last}):\n{log_path.read_text()[-4000:]}")


def _per_pid_counter(multiproc: Path, metric: str) -> dict[int, float]:
    """What each worker wrote for `metric` (all label sets), read from the multiprocess files."""
    from prometheus_client.mmap_dict import MmapedDict

    totals: dict[int, float] = {}
    for path in multiproc.glob("counter_*.db"):
        pid = int(path.stem.split("_")[-1])
        for row in MmapedDict.read_all_values_from_file(str(path)):  # (key, value, timestamp[, pos])
            key, value = row[0], row[1]
            name = json.loads(key)[0]
            if name == metric:
                totals[pid] = totals.get(pid, 0.0) + value
    return totals


def _metric_total(text: str, sample_name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == sample_name
    )


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    stale = multiproc / "counter_4242424.db"
    stale.write_bytes(b"not a metrics file: must be removed at start")
    log_path = tmp_path / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(ENTRYPOINT)],
        env=_container_env(tmp_path, port, multiproc),
        cwd=str(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield {"proc": proc, "base": f"http://127.0.0.1:{port}", "multiproc": multiproc,
               "stale": stale, "log": log_path}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def test_entrypoint_is_executable_posix_sh():
    assert os.access(ENTRYPOINT, os.X_OK), f"{ENTRYPOINT} must be executable (the image runs it directly)"
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


def test_entrypoint_passes_other_commands_through(tmp_path):
    """`docker run IMAGE CMD...` (the compose emulator service) runs CMD instead of the server."""
    out = subprocess.run(
        [str(ENTRYPOINT), "sh", "-c", 'echo "ran:$0:$1"', "a b", "c"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ran:a b:c\n"


def test_worker_timeout_stays_above_predict_timeout(monkeypatch):
    from gemini_ls import gunicorn_conf

    assert gunicorn_conf._timeout({}) == 120
    assert gunicorn_conf._timeout({"PREDICT_TIMEOUT": "90"}) == 120
    assert gunicorn_conf._timeout({"PREDICT_TIMEOUT": "200.5"}) == 231
    assert gunicorn_conf._timeout({"PREDICT_TIMEOUT": "200", "GUNICORN_TIMEOUT": "600"}) == 600
    assert gunicorn_conf.control_socket_disable is True


def test_entrypoint_serves_two_workers_metrics_and_stops_on_sigterm(server):
    proc, base, multiproc = server["proc"], server["base"], server["multiproc"]

    health = _wait_health(base, proc, server["log"])
    assert health["status"] == "UP"

    # The stale file from "an earlier run" was cleared before the workers started.
    assert not server["stale"].exists()

    # `exec gunicorn`: the entrypoint's pid is gunicorn's master, and it has exactly two workers.
    assert "gunicorn" in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while time.monotonic() < deadline:
        workers = _gunicorn_children(proc.pid)
        if len(workers) == 2:
            break
        time.sleep(0.2)
    assert len(workers) == 2, f"expected 2 gunicorn workers, found {workers}"

    # Each /predict adds 1 to gemini_ls_predict_requests in the worker that took it (the empty label
    # config is refused afterwards, which does not matter here).
    metric = "gemini_ls_predict_requests"
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        code = _post_json(f"{base}/predict", {"tasks": []})
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=one) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sent = len(statuses)
    assert sent == 24 and all(code < 500 for code in statuses), f"/predict answered {sorted(set(statuses))}"
    per_pid = _per_pid_counter(multiproc, metric)
    assert set(per_pid) <= set(workers), f"metric files from unknown pids {set(per_pid) - set(workers)}"
    assert sum(per_pid.values()) == sent, per_pid

    # Which worker takes a connection is up to the kernel, so make it certain that the worker answering
    # /metrics did not count these requests itself: stop every worker that did (SIGTERM to a worker:
    # gunicorn replaces it and runs child_exit). Their files stay; a /metrics that only knew its own
    # process would now say 0, one that adds the multiprocess files up says `sent`.
    counted = [pid for pid, value in per_pid.items() if value > 0]
    for pid in counted:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = [p for p in _gunicorn_children(proc.pid) if p not in counted]
        if len(workers) == 2 and not any(_alive(p) for p in counted):
            break
        time.sleep(0.2)
    assert len(workers) == 2 and not any(_alive(p) for p in counted), (
        f"workers {counted} were not replaced: now {workers}"
    )
    _wait_health(base, proc, server["log"])
    for _ in range(6):  # a new connection each time, to whichever worker takes it
        status, headers, body = _get(f"{base}/metrics")
        assert status == 200
        assert headers.get("Content-Type", "").startswith("text/plain")
        assert _metric_total(body.decode(), f"{metric}_total") == sent
    now = _per_pid_counter(multiproc, metric)
    assert not any(now.get(p) for p in workers), f"the new workers counted requests: {now}"
    assert {p: now.get(p) for p in counted} == {p: per_pid[p] for p in counted}, "a dead worker's counts were lost"

    # Access log goes to stdout (merged into the log file here) and names the requests.
    log_text = server["log"].read_text()
    assert '"GET /health HTTP/1.1" 200' in log_text
    assert '"GET /metrics HTTP/1.1" 200' in log_text

    # SIGTERM (what `docker stop` sends to PID 1): graceful stop, exit status 0, workers gone.
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gunicorn still running {STOP_TIMEOUT}s after SIGTERM:\n{log_text[-3000:]}")
    assert code == 0, f"exit status {code} after SIGTERM:\n{server['log'].read_text()[-3000:]}"
    assert time.monotonic() - started < STOP_TIMEOUT
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a worker outlived the master"
    with pytest.raises(OSError):
        _get(f"{base}/health", timeout=2)


def test_entrypoint_without_a_key_stays_healthy_and_says_once_why_it_predicts_nothing(tmp_path):
    """The compose `gemini-ls` with no key and no GEMINI_EMULATOR: two workers, one start-up error, the
    image's healthcheck (HTTP 200) passes, /health says NOT_CONFIGURED."""
    from gemini_ls.settings import NO_GEMINI_MESSAGE

    port = _free_port()
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(ENTRYPOINT)], env=_container_env(tmp_path, port, multiproc, emulator=""),
                                cwd=str(tmp_path), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        health = _wait_health(f"http://127.0.0.1:{port}", proc, log_path)
        assert health["status"] == "NOT_CONFIGURED" and health["gemini"]["configured"] is False
        assert health["error"] == NO_GEMINI_MESSAGE
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_gunicorn_children(proc.pid)) < 2:
            time.sleep(0.2)
        assert len(_gunicorn_children(proc.pid)) == 2
        text = log_path.read_text()
        assert text.count("Gemini is not configured") == 1, text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(STOP_TIMEOUT)


def test_compose_emulator_service_command_and_healthcheck(tmp_path):
    """docker-compose.yml's gemini-emulator: its command through this entrypoint serves, its
    healthcheck passes against it and fails once it is gone (port adapted to a free one)."""
    import yaml

    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["gemini-emulator"]
    port = _free_port()
    command = [("127.0.0.1" if arg == "0.0.0.0" else str(port) if arg == "8765" else arg)
               for arg in service["command"]]
    assert command != service["command"]
    check = [arg.replace("8765", str(port)) for arg in service["healthcheck"]["test"]]
    assert check[:2] == ["CMD", "python"]
    check = [sys.executable, *check[2:]]
    env = _container_env(tmp_path, port, tmp_path / "unused")

    def healthy() -> bool:
        return subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0

    assert not healthy(), "healthcheck passes with nothing listening"
    log_path = tmp_path / "emulator.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(ENTRYPOINT), *command], env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None and not healthy():
                time.sleep(0.3)
            assert proc.poll() is None, f"emulator exited {proc.returncode}:\n{log_path.read_text()}"
            assert healthy(), f"emulator healthcheck never passed:\n{log_path.read_text()}"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(STOP_TIMEOUT) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    assert not healthy()
