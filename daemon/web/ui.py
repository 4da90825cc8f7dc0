"""The owner's web page: state, tasks, contribution, availability, attestation, and controls.

Served by the daemon on 127.0.0.1 only (``[ui] port``, 7681 by default, 0 turns it off).
``novacron ui`` prints a one-time login link (see ``auth``). The page is plain server-rendered
HTML (``page``); a small script refreshes its main part every few seconds. Controls are plain
HTML forms posting to ``/suspend``, ``/resume`` and ``/settings``; they call the same
``OwnerService`` methods as the command line, so a change applies at once and is kept.

If the port is taken (another daemon on this machine has it) the node still runs: the page is
off, ``status`` and ``novacron ui`` say why and which setting to change.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import trio

from daemon.control.jsonrpc import UNAVAILABLE, RpcError
from daemon.control.params import only
from daemon.owner.service import OwnerService
from daemon.owner.settings import SettingsError
from daemon.web import http, page
from daemon.web.auth import Gate, load_or_create_secret

log = logging.getLogger("novacron.ui")

HOURS_SHOWN = 48
TASKS_SHOWN = 25
STATIC = {"/static/page.js": ("page.js", "text/javascript; charset=utf-8"),
          "/static/page.css": ("page.css", "text/css; charset=utf-8")}


class UiService:
    name = "ui"

    def __init__(self, port: int, data_dir: Path, owner: OwnerService,
                 status: Callable[[], dict[str, Any]],
                 availability: Callable[[], list[tuple[float, float]]],
                 attestation: Callable[[], dict[str, Any]]) -> None:
        self.port = port
        self.data_dir = data_dir
        self.owner = owner
        self.node_status = status
        self.availability = availability
        self.attestation = attestation
        self.bound: int | None = None
        self.problem: str | None = None if port else "off ([ui] port = 0 in the config)"
        self.gate: Gate | None = None
        self.requests = self.refused = 0
        self._error: str | None = None

    def bind(self) -> None:
        if not self.port:
            return
        try:
            self._sock = http.bind(self.port, "[ui] port")
        except http.PortTaken as err:
            self.problem = f"off: {err}"
            log.warning("web page %s", self.problem)
            return
        self.bound = self._sock.getsockname()[1]
        self.gate = Gate(load_or_create_secret(self.data_dir), self.bound)

    @property
    def url(self) -> str | None:
        return f"http://{http.LOOPBACK}:{self.bound}/" if self.bound else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.bound is None:
            self.bind()
        if self.bound is None:
            task_status.started()
            return
        log.info("web page on %s (`novacron ui` prints a login link)", self.url)
        await http.serve(self._sock, self._handle, task_status=task_status)

    # -- requests -------------------------------------------------------------------------------

    async def _handle(self, req: http.Request) -> http.Response:
        self.requests += 1
        gate = self.gate
        assert gate is not None
        if not gate.host_ok(req.header("host")):
            return self._refuse(403, "this page answers only as 127.0.0.1 or localhost")
        if req.path in STATIC and req.method == "GET":
            name, kind = STATIC[req.path]
            return http.Response(200, resources.files("daemon.web").joinpath("static", name)
                                 .read_bytes(), kind)
        if req.path == "/login" and req.method == "GET":
            token = req.query.get("token", [""])[0]
            if not gate.use_login(token, time.monotonic()):
                return self._refuse(403, "this login link is used or expired; run `novacron ui` "
                                         "for a new one")
            return http.Response(303, b"", headers=[("Location", "/"),
                                                    ("Set-Cookie", gate.cookie())])
        if not gate.authorised(req.header("cookie"), req.header("authorization")):
            return self._refuse(401, "open the login link that `novacron ui` prints on this "
                                     "machine")
        if req.method == "GET" and req.path == "/":
            part = req.query.get("part", [""])[0]
            view = self.view()
            body = page.render_main(view) if part == "main" else page.render(view)
            return http.Response(200, body.encode())
        if req.method == "GET" and req.path == "/api/status":
            view = self.view()
            view.pop("csrf")
            return http.Response(200, json.dumps(view).encode(), "application/json")
        if req.method == "POST" and req.path in ("/suspend", "/resume", "/settings"):
            origin = req.header("origin")
            if origin and not gate.host_ok(origin.removeprefix("http://")):
                return self._refuse(403, "a form from another site")
            form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
            if not gate.csrf_ok(form.get("csrf", [""])[0]):
                return self._refuse(403, "the form is stale: reload the page")
            self._act(req.path, form)
            return http.Response(303, b"", headers=[("Location", "/")])
        return http.Response(404 if req.method in ("GET", "POST") else 405, b"not here\n",
                             "text/plain; charset=utf-8")

    def _refuse(self, code: int, why: str) -> http.Response:
        self.refused += 1
        return http.Response(code, f"{why}\n".encode(), "text/plain; charset=utf-8")

    def _act(self, path: str, form: dict[str, list[str]]) -> None:
        self._error = None
        if path == "/suspend":
            self.owner.suspend("web page")
        elif path == "/resume":
            self.owner.resume("web page")
        else:
            try:
                changes = {"cpu_share": float(form.get("cpu_share", [""])[0]),
                           "max_memory_mb": int(form.get("max_memory_mb", [""])[0]),
                           "hours": form.get("hours", [""])[0],
                           "idle_only": form.get("idle_only", [""])[0] == "yes"}
                self.owner.change(changes, "web page")
            except ValueError as err:  # SettingsError is a ValueError, with the one line
                self._error = str(err) if isinstance(err, SettingsError) else (
                    "CPU share must be a number like 0.25 and memory whole megabytes")

    def view(self) -> dict[str, Any]:
        """Everything the page shows (also ``/api/status``)."""
        assert self.gate is not None
        now = time.time()
        return {"status": self.node_status(), "owner": self.owner.status(),
                "tasks": [asdict(r) for r in self.owner.tasks.recent(TASKS_SHOWN)],
                "running": self.owner.pool.running_tasks(),
                "hours": self.owner.tasks.hourly(HOURS_SHOWN, now),
                "availability": self.availability(), "attestation": self.attestation(),
                "now": now, "csrf": self.gate.csrf, "error": self._error}

    # -- status and control socket ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        summary = f"{self.url} (`novacron ui` prints a login link)" if self.url else self.problem
        return {"health": "ok", "summary": summary, "url": self.url,
                "requests": self.requests, "refused": self.refused}

    def register_rpc(self, server: Any) -> None:
        server.register("ui.login", self.rpc_login)

    async def rpc_login(self, params: dict[str, Any]) -> dict[str, Any]:
        """A one-time login link for the page (the control socket is the owner's proof)."""
        only(params)
        if self.gate is None or self.url is None:
            raise RpcError(UNAVAILABLE, f"the web page is {self.problem}")
        token = self.gate.new_login(time.monotonic())
        return {"url": f"{self.url}login?token={token}", "expires_in_s": 300}
