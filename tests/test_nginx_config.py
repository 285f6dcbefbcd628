"""nginx/parley.conf: nginx accepts it, rejects a broken copy, and proxies the way Parley needs.

The compose upstream (`api:8000`) only resolves inside compose, so each test writes its own
upstream.conf next to a minimal main config that includes parley.conf unchanged. The proxy
test runs nginx for real in front of a small HTTP server that echoes what it received.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.factories.ports import free_port

REPO = Path(__file__).resolve().parent.parent
PARLEY_CONF = REPO / "nginx" / "parley.conf"
UPSTREAM_CONF = REPO / "nginx" / "upstream.conf"
LISTEN = "listen 80;"
WEB_ROOT = "root /srv/parley;"  # where nginx/Dockerfile puts the dashboard (under app/)


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: scripts/test-services.sh install provides it")
        pytest.skip("nginx is not installed (scripts/test-services.sh install provides it)")
    return found


def _main_conf(prefix: Path, upstream: str, parley_conf: Path) -> Path:
    """A main config as a server would have it, with every path inside `prefix`."""
    (prefix / "upstream.conf").write_text(
        f"upstream parley_api {{\n    server {upstream};\n    keepalive 4;\n}}\n"
    )
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
{temp_paths}
    include {prefix / "upstream.conf"};
    include {parley_conf};
}}
"""
    )
    return conf


def _check(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (fixed argv)
        [_nginx(), "-t", "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "e.log")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_shipped_upstream_is_the_compose_api_service() -> None:
    assert "server api:8000;" in UPSTREAM_CONF.read_text()
    assert "upstream parley_api" in UPSTREAM_CONF.read_text()


def test_nginx_accepts_parley_conf(tmp_path: Path) -> None:
    result = _check(_main_conf(tmp_path, "127.0.0.1:8000", PARLEY_CONF))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize(
    ("broken", "replacement"),
    [
        ("client_max_body_size 55m;", "client_max_body_size 55m"),  # a missing semicolon
        ("proxy_pass http://parley_api;", "proxy_pass http://no_such_upstream;"),
        ("gzip on;", "gzip maybe;"),
    ],
)
def test_nginx_rejects_a_broken_copy(tmp_path: Path, broken: str, replacement: str) -> None:
    text = PARLEY_CONF.read_text()
    assert broken in text
    copy = tmp_path / "parley.conf"
    copy.write_text(text.replace(broken, replacement, 1))
    result = _check(_main_conf(tmp_path, "127.0.0.1:8000", copy))
    assert result.returncode != 0, result.stderr
    assert "test failed" in result.stderr


# Proxying for real ----------------------------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    """Answers with the path and headers it received; /big answers with a large JSON body."""

    def do_GET(self) -> None:
        body: dict[str, object] = {"path": self.path, "headers": dict(self.headers.items())}
        if self.path == "/big":
            body = {"items": ["parley"] * 2000}
        self._answer(body)

    def do_POST(self) -> None:
        received = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer({"path": self.path, "received_bytes": len(received)})

    def _answer(self, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _wait_for_port(port: int, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {log.read_text() if log.exists() else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail("nginx did not start listening")


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[str]:
    """nginx running parley.conf on a free port, in front of the echo server."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    text = PARLEY_CONF.read_text()
    assert text.count(LISTEN) == 1
    web = tmp_path / "web"
    (web / "app" / "assets").mkdir(parents=True)
    (web / "app" / "index.html").write_text("<!doctype html><title>Parley</title>")
    (web / "app" / "assets" / "index-abc.js").write_text("export {};")
    (web / "app" / "widget-preview.html").write_text("<!doctype html><p>preview</p>")
    copy = tmp_path / "parley.conf"
    copy.write_text(
        text.replace(LISTEN, f"listen 127.0.0.1:{port};").replace(WEB_ROOT, f"root {web};")
    )
    conf = _main_conf(tmp_path, f"127.0.0.1:{upstream.server_address[1]}", copy)
    log = tmp_path / "error.log"
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [_nginx(), "-p", str(tmp_path), "-c", str(conf), "-e", str(log)], text=True
    )
    try:
        _wait_for_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        upstream.shutdown()
        upstream.server_close()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (a local http URL)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return dict(response.headers.items()), response.read()


def _raw_status(base: str, request: bytes) -> int:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        return int(sock.recv(1024).split(b" ", 2)[1])


def test_security_headers_and_the_strict_policy_on_api_paths(proxy: str) -> None:
    headers, _ = _get(f"{proxy}/api/v1/me")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "Server" not in headers or "nginx/" not in headers["Server"]


def test_docs_get_a_policy_that_lets_swagger_load_from_its_cdn(proxy: str) -> None:
    for path in ("/docs", "/redoc"):
        headers, _ = _get(f"{proxy}{path}")
        assert (
            "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net"
            in (headers["Content-Security-Policy"])
        )
        assert headers["X-Frame-Options"] == "DENY"


def test_forwarded_headers_replace_what_the_client_claims(proxy: str) -> None:
    _, body = _get(f"{proxy}/api/v1/me", {"X-Forwarded-For": "203.0.113.9"})
    received = json.loads(body)["headers"]
    assert received["X-Forwarded-For"] == "127.0.0.1"
    assert received["X-Real-IP"] == "127.0.0.1"
    assert received["X-Forwarded-Proto"] == "http"
    assert received["X-Request-ID"]
    assert "Connection" not in received  # keepalive to the upstream stays usable


def test_websocket_upgrade_headers_reach_the_api(proxy: str) -> None:
    _, body = _get(f"{proxy}/ws/chat", {"Upgrade": "websocket", "Connection": "Upgrade"})
    received = json.loads(body)["headers"]
    assert received["Upgrade"] == "websocket"
    assert received["Connection"] == "upgrade"


def test_bodies_up_to_55_mb_pass_and_larger_ones_are_refused(proxy: str) -> None:
    upload = b"x" * (5 * 1024 * 1024)  # above nginx's 1 MB default, well within 55 MB
    url = f"{proxy}/api/v1/files"
    request = urllib.request.Request(url, data=upload, method="POST")  # noqa: S310 (local)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert json.loads(response.read())["received_bytes"] == len(upload)

    too_big = 55 * 1024 * 1024 + 1
    status = _raw_status(
        proxy,
        f"POST /api/v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: {too_big}\r\n\r\n".encode(),
    )
    assert status == 413


def test_metrics_are_not_exposed_and_json_is_compressed(proxy: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(f"{proxy}/metrics")
    assert error.value.code == 404
    headers, body = _get(f"{proxy}/big", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["items"][0] == "parley"


def test_the_dashboard_is_served_with_index_html_for_its_routes(proxy: str) -> None:
    for path in ("/app/", "/app/assistants/123", "/app/login?next=%2F"):
        headers, body = _get(f"{proxy}{path}")
        assert body == b"<!doctype html><title>Parley</title>", path
        assert headers["Cache-Control"] == "no-cache"
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["X-Frame-Options"] == "DENY"
    headers, body = _get(f"{proxy}/app/assets/index-abc.js")
    assert body == b"export {};"
    assert headers["Cache-Control"] == "max-age=315360000"
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(f"{proxy}/app/assets/gone.js")
    assert missing.value.code == 404


def test_only_the_widget_preview_may_be_framed_and_only_by_parley(proxy: str) -> None:
    headers, _ = _get(f"{proxy}/app/widget-preview.html")
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in headers["Content-Security-Policy"]
