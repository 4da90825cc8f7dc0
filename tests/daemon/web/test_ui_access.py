"""Only the owner, only from this machine: the page and the metrics listen on 127.0.0.1 alone,
and a request without the secret (or from a hostile page) is refused."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest


def listening(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on ``port`` (IPv4 and IPv6), from /proc."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.append(addr)
    return found


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: str | None = None, host: str = "127.0.0.1") -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    hdrs = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    conn.request(method, path, body=body, headers=hdrs)
    r = conn.getresponse()
    out = (r.status, r.read().decode(), {k.lower(): v for k, v in r.getheaders()})
    conn.close()
    return out


def test_nothing_answers_on_any_address_but_127_0_0_1(daemon):
    for port in (daemon.ui_port, daemon.metrics_port):
        assert listening(port) == ["0100007F"]  # 127.0.0.1, and no IPv6 or wildcard socket
        with pytest.raises(OSError):  # another loopback address of this machine: refused
            socket.create_connection(("127.0.0.2", port), timeout=5).close()


def test_a_request_without_the_secret_is_refused(daemon):
    port = daemon.ui_port
    status, body, _ = request(port, "GET", "/")
    assert status == 401 and "novacron ui" in body
    assert request(port, "GET", "/api/status")[0] == 401
    assert request(port, "GET", "/", {"Authorization": "Bearer " + "0" * 64})[0] == 401
    assert request(port, "POST", "/suspend", body="csrf=x")[0] == 401
    assert request(port, "GET", "/login?token=guess")[0] == 403

    secret = (daemon.data / "ui.secret").read_text().strip()
    assert (daemon.data / "ui.secret").stat().st_mode & 0o777 == 0o600
    bearer = {"Authorization": f"Bearer {secret}"}
    assert request(port, "GET", "/api/status", bearer)[0] == 200
    # DNS rebinding: a hostile site's name pointing at 127.0.0.1 is not our host
    assert request(port, "GET", "/", {**bearer, "Host": f"evil.example:{port}"})[0] == 403
    form = {**bearer, "Content-Type": "application/x-www-form-urlencoded"}
    assert request(port, "POST", "/suspend", form, body="csrf=wrong")[0] == 403
    assert request(port, "POST", "/suspend", {**form, "Origin": "http://evil.example"},
                   body="csrf=x")[0] == 403
    assert daemon.status()["services"]["owner"]["suspended"] is False

    login = daemon.cli("ui").strip()
    path = login.split(str(port), 1)[1]
    status, _, headers = request(port, "GET", path)
    assert status == 303 and headers["set-cookie"].startswith("novacron_session=")
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
    assert request(port, "GET", path)[0] == 403  # a login link works once
    cookie = {"Cookie": headers["set-cookie"].split(";")[0]}
    status, page, headers = request(port, "GET", "/", cookie)
    assert status == 200 and daemon.status()["node_id"] in page
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_metrics_answer_on_127_0_0_1_only_and_name_what_the_docs_list(daemon):
    status, body, headers = request(daemon.metrics_port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    from daemon.web.metrics import METRICS

    docs = (Path(__file__).resolve().parents[3] / "docs" / "volunteer.md").read_text()
    for name in METRICS:
        assert f"# HELP {name.removesuffix('_total')}" in body or f"# HELP {name}" in body, name
        assert f"`{name}`" in docs, f"{name} is not documented in docs/volunteer.md"
    assert f'novacron_info{{network="novacron-local",node_id="{daemon.status()["node_id"]}"' in body
