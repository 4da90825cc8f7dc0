"""A minimal W3C WebDriver client (stdlib only) for Debian's chromium + chromedriver.

Why not selenium: the tests need five verbs (open, find, text, click, screenshot); the protocol
is JSON over HTTP to a chromedriver this module starts on 127.0.0.1 and stops afterwards.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1500"]


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, profile: Path) -> None:
        self.port = free_port()
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}",
                                        "--allowed-ips=127.0.0.1"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline or self.driver.poll() is not None:
                    self.driver.kill()
                    raise RuntimeError("chromedriver did not start")
                time.sleep(0.05)  # polling a real process until it listens
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM, "args": [*BROWSER_ARGS, f"--user-data-dir={profile}"]}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["value"]

    def _s(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self._s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def _retry(self, action):  # noqa: ANN001
        """The page swaps its main part every few seconds, so an element found a moment ago
        may be gone (stale) or not there yet: look it up again, a bounded number of times."""
        for attempt in range(50):
            try:
                return action()
            except urllib.error.HTTPError:
                if attempt == 49:
                    raise
                time.sleep(0.1)  # a real browser replacing its page

    def text(self, css: str) -> str:
        return self._retry(lambda: self._s("GET", f"/element/{self.find(css)}/text"))

    def click(self, css: str) -> None:
        self._retry(lambda: self._s("POST", f"/element/{self.find(css)}/click", {}))

    def page_source(self) -> str:
        return self._s("GET", "/source")

    def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode(self._s("GET", "/screenshot"))
        path.write_bytes(png)
        return png

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            try:
                self.driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
