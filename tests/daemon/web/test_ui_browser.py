"""The owner's page in a real headless browser (Debian's chromium): what it shows agrees with
``novacron status``, and its suspend control suspends the node. A screenshot is kept with the
test's output (``owner-page.png`` in the test's tmp directory, path printed)."""

from __future__ import annotations

import time
from urllib.error import HTTPError

import pytest

from tests.daemon.web.webdriver import Browser, available

pytestmark = pytest.mark.skipif(not available(), reason="needs chromium and chromium-driver "
                                                        "(scripts/setup.sh installs them)")


def wait_text(browser: Browser, css: str, want: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        try:
            text = browser.text(css)
        except HTTPError:  # the page is being replaced (a form's answer, or the live refresh)
            pass
        if want in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)  # polling what a real browser shows


def test_the_page_shows_what_status_says_and_suspends_the_node(daemon, tmp_path):
    login = daemon.cli("ui").strip()
    assert login.startswith(f"http://127.0.0.1:{daemon.ui_port}/login?token=")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(login)
        status = daemon.status()
        assert browser.text('[data-test="state.node"]') == status["node_id"]
        assert browser.text('[data-test="state.network"]') == status["network"]
        assert browser.text('[data-test="state.version"]') == status["version"]
        assert browser.text('[data-test="state.pid"]') == str(status["pid"])
        assert browser.text('[data-test="state.health"]') == status["health"]
        assert browser.text('[data-test="work"]') == status["services"]["owner"]["work"]
        committees = browser.text("#committees")
        assert status["services"]["consensus"]["summary"] in committees
        assert browser.text('[data-test="contrib.tasks run"]') == str(
            status["services"]["owner"]["totals"]["tasks"])
        assert "evidence" in browser.text("#attestation")
        assert browser.text('[data-test="running-none"]') == "no task running now"

        assert browser.text('[data-test="suspend-toggle"]') == "Suspend"
        browser.click('[data-test="suspend-toggle"]')
        work = wait_text(browser, '[data-test="work"]', "suspended by the owner")
        assert work.startswith("taking no tasks: suspended by the owner since")
        assert browser.text('[data-test="suspend-toggle"]') == "Resume"
        owner = daemon.status()["services"]["owner"]
        assert owner["suspended"] is True and owner["work"] == work
        shot = tmp_path / "owner-page.png"
        png = browser.screenshot(shot)
        print(f"screenshot: {shot}")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

        browser.click('[data-test="suspend-toggle"]')  # and back
        assert wait_text(browser, '[data-test="work"]', "taking tasks") == "taking tasks"
    finally:
        browser.close()
    assert daemon.status()["services"]["owner"]["suspended"] is False
