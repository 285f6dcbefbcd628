"""`parley run` from an empty data dir: embedded PostgreSQL and Redis come up, the API answers
/readyz, and one SIGINT (Ctrl-C) stops the API, the worker and both services cleanly.

The second run in the same data dir checks that the data survives and the demo login is stable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.factories.ports import free_port

pytestmark = pytest.mark.slow

READY_TIMEOUT = 120.0
EXIT_TIMEOUT = 30.0


def _child_env(data_dir: Path, port: int) -> dict[str, str]:
    # No PARLEY_* from this pytest process (its database and Redis URLs above all): the run must
    # start its own services.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PARLEY_")}
    env.update(
        PARLEY_DATA_DIR=str(data_dir),
        PARLEY_API_HOST="127.0.0.1",
        PARLEY_API_PORT=str(port),
        PARLEY_LOG_JSON="false",
    )
    return env


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """/readyz answers 200, and `parley run` has printed where the docs are (it polls too)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"parley run exited with {process.returncode}:\n{log.read_text()}")
        if _ready(port) and "API docs:" in log.read_text():
            return
        time.sleep(0.5)
    pytest.fail(f"parley run was not ready within {READY_TIMEOUT:.0f} s:\n{log.read_text()}")


def _service_pids(data_dir: Path) -> dict[str, int]:
    postmaster = data_dir / "postgres" / "postmaster.pid"
    redis = data_dir / "redis" / "redis.pid"
    return {
        "postgres": int(postmaster.read_text().splitlines()[0]),
        "redis": int(redis.read_text().strip()),
    }


def _running(pid: int) -> bool:
    """True if `pid` runs; a zombie (exited, not yet reaped by its new parent) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and _running(int(entry.name)):
            found.append(f"{entry.name}: {cmdline}")
    return found


def _kill_leftovers(process: subprocess.Popen[bytes], data_dir: Path) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in _service_pids_if_any(data_dir):
        if _running(pid):
            os.kill(pid, signal.SIGTERM)


def _service_pids_if_any(data_dir: Path) -> list[int]:
    try:
        return list(_service_pids(data_dir).values())
    except (OSError, ValueError, IndexError):
        return []


def _call(
    port: int, method: str, path: str, body: object = None, token: str = "", tenant: str = ""
) -> Any:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if tenant:
        headers["x-parley-tenant"] = tenant
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


def _answer_offline(port: int, password: str) -> None:
    """The offline default end to end on the embedded services: the demo owner adds a text to a
    knowledge base, the worker ingests it with the local model, and search finds it."""
    token = _call(
        port, "POST", "/api/v1/auth/login", {"email": "demo@example.com", "password": password}
    )["access_token"]
    tenant = _call(port, "GET", "/api/v1/me", token=token)["workspaces"][0]["tenant_id"]
    kb = _call(port, "POST", "/api/v1/knowledge-bases", {"name": "Smoke"}, token, tenant)["id"]
    _call(
        port,
        "POST",
        f"/api/v1/knowledge-bases/{kb}/sources",
        {"kind": "text", "text": "# Opening hours\n\nThe shop opens at nine every day."},
        token,
        tenant,
    )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        documents = _call(
            port, "GET", f"/api/v1/knowledge-bases/{kb}/documents", None, token, tenant
        )["items"]
        if documents and documents[0]["status"] in ("ready", "failed"):
            break
        time.sleep(0.5)
    assert documents[0]["status"] == "ready", documents
    hits = _call(
        port,
        "POST",
        f"/api/v1/knowledge-bases/{kb}/search",
        {"query": "when does the shop open?"},
        token,
        tenant,
    )["hits"]
    assert hits, "the ingested text was not found"
    assert "nine" in hits[0]["text"]
    _ask_the_demo_assistant(port, token, tenant)


def _ask_the_demo_assistant(port: int, token: str, tenant: str) -> None:
    """The seeded demo assistant answers offline from its handbook, and /demo shows its widget."""
    (assistant,) = _call(port, "GET", "/api/v1/assistants", None, token, tenant)["items"]
    (kb,) = assistant["knowledge_base_ids"]
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        documents = _call(
            port, "GET", f"/api/v1/knowledge-bases/{kb}/documents", None, token, tenant
        )["items"]
        if documents and documents[0]["status"] in ("ready", "failed"):
            break
        time.sleep(0.5)
    assert documents[0]["status"] == "ready", documents
    conversation = _call(
        port, "POST", "/api/v1/conversations", {"assistant_id": assistant["id"]}, token, tenant
    )["id"]
    reply = _call(
        port,
        "POST",
        f"/api/v1/conversations/{conversation}/messages",
        {"content": "When are you open on Saturday?"},
        token,
        tenant,
    )
    assert reply["answer"]["metadata"]["generator"] == "extractive", reply
    assert "10:00" in reply["answer"]["content"], reply
    assert reply["answer"]["citations"][0]["title"] == "Shop handbook"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/demo", timeout=30) as page:
        html = page.read().decode()
    assert f'data-assistant="{assistant["public_key"]}"' in html


def _run_once(data_dir: Path, log: Path, exercise: Callable[[int, str], None] | None = None) -> str:
    """Start `parley run`, wait for /readyz, run `exercise(port, printed)`, press Ctrl-C;
    return what it printed."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "run"],
            cwd=data_dir.parent,  # away from the repository's .env
            env=_child_env(data_dir, port),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, port, log)
        pids = _service_pids(data_dir)
        assert all(_running(pid) for pid in pids.values()), pids
        if exercise is not None:
            exercise(port, log.read_text())

        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"parley run did not exit within {EXIT_TIMEOUT:.0f} s:\n{log.read_text()}")
        printed = log.read_text()
        assert code == 0, printed
        assert not [name for name, pid in pids.items() if _running(pid)], printed
        assert _processes_mentioning(str(data_dir)) == [], printed
        assert f"API docs: http://127.0.0.1:{port}/docs" in printed
        return printed
    finally:
        _kill_leftovers(process, data_dir)


def _demo_password(printed: str) -> str:
    lines = [line for line in printed.splitlines() if line.strip().startswith("password:")]
    assert lines, printed
    return lines[-1].split(":", 1)[1].strip()


def test_parley_run_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    # Run as root, pgserver's PostgreSQL runs as the `pgserver` user: it must reach the dir.
    tmp_path.chmod(0o755)
    data_dir = tmp_path / "data"

    first = _run_once(
        data_dir,
        tmp_path / "first.log",
        exercise=lambda port, printed: _answer_offline(port, _demo_password(printed)),
    )
    assert "email:    demo@example.com" in first
    assert (data_dir / "demo-login.txt").is_file()

    demo_key = (data_dir / "demo.json").read_text()
    second = _run_once(data_dir, tmp_path / "second.log")
    assert _demo_password(second) == _demo_password(first)
    assert (data_dir / "demo.json").read_text() == demo_key  # seeded once, not again
