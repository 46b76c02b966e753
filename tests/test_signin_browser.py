"""examples/signin_app.py in a real headless Chromium: sign in, deny, sign out.

Needs Debian's ``chromium`` and ``chromium-driver`` (selenium drives the system browser; no
download). Skipped when they are missing, unless ``HUB_AUTH_REQUIRE_BROWSER=1`` (CI), where
that is a failure. ``HUB_AUTH_UPDATE_SCREENSHOT=1`` also writes the signed-in page to
``docs/signin.png`` (the README shows it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _need_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium")
    if missing:
        message = (
            f"no headless browser: {missing} missing "
            "(apt install chromium chromium-driver; pip install selenium)"
        )
        if os.environ.get("HUB_AUTH_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _load_example():
    spec = importlib.util.spec_from_file_location("signin_app", ROOT / "examples/signin_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "SPACE_HOST"):
        monkeypatch.delenv(name, raising=False)
    example = _load_example()
    port = _free_port()
    hub, oauth = example.fake_hub_oauth(port)
    server = uvicorn.Server(
        uvicorn.Config(example.create_app(oauth), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the example app did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        hub.stop_thread()


@pytest.fixture
def browser(tmp_path: Path):
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=900,640",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def test_sign_in_approve_deny_sign_out(app_url: str, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(app_url + "/")
    browser.find_element(By.ID, "signin").click()
    # The fake Hub's consent page: the app's name, the scopes, Approve / Deny.
    assert browser.find_element(By.ID, "app-name").text == "hub_auth sign-in example"
    assert "read-memberships" in browser.find_element(By.ID, "scopes").text
    browser.find_element(By.ID, "approve").click()
    assert browser.find_element(By.ID, "username").text == "ada-lovelace"
    assert browser.current_url == app_url + "/"
    orgs = browser.find_element(By.ID, "orgs").text
    assert "analytical-engines" in orgs and "difference-engines" in orgs
    cookies = {cookie["name"]: cookie for cookie in browser.get_cookies()}
    session = cookies["hub_oauth_session"]
    assert session["httpOnly"] is True
    assert not session["value"].startswith(("hf_", "ey"))
    avatar_loaded = browser.execute_script(
        "const img = document.querySelector('img'); return img.complete && img.naturalWidth > 0;"
    )
    assert avatar_loaded
    screenshot = tmp_path / "signin.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("HUB_AUTH_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, ROOT / "docs" / "signin.png")

    browser.find_element(By.ID, "signout").click()
    assert browser.find_element(By.ID, "signin").text == "Sign in with Hugging Face"
    assert "hub_oauth_session" not in {cookie["name"] for cookie in browser.get_cookies()}

    browser.find_element(By.ID, "signin").click()
    browser.find_element(By.ID, "deny").click()
    assert "cancelled" in browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "signin").is_displayed()
