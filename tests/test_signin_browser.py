"""examples/signin_app.py in a real headless Chromium: sign in, deny, sign out, and another
site's auto-submitted form refused.

Needs Debian's ``chromium`` and ``chromium-driver`` (selenium drives the system browser; no
download). Skipped when they are missing, unless ``HUB_AUTH_REQUIRE_BROWSER=1`` (CI), where
that is a failure. ``HUB_AUTH_UPDATE_SCREENSHOT=1`` also writes the signed-in page to
``docs/signin.png`` (the README shows it).
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def _serve_example(
    monkeypatch: pytest.MonkeyPatch,
    extend: Callable[[Any, Any], None] | None = None,
    **options: Any,
) -> Iterator[str]:
    """The example app (``options`` for its ``HubOAuth``; ``extend(app, oauth)`` adds to it
    before it starts) under uvicorn on 127.0.0.1, signing in at a FakeHub: yields its URL."""
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "SPACE_HOST"):
        monkeypatch.delenv(name, raising=False)
    example = _load_example()
    port = _free_port()
    hub, oauth = example.fake_hub_oauth(port, **options)
    app = example.create_app(oauth)
    if extend is not None:
        extend(app, oauth)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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
def app_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with _serve_example(monkeypatch) as url:
        yield url


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


# -- a cross-site form post (CSRF) -------------------------------------------------------------


@dataclass
class _Seen:
    """What the app received on its POST route: the cookie's presence and the browser's
    headers, and whether the route ran."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _attacker_site(target: str) -> Iterator[str]:
    """Another site (``localhost``, another port): a page whose form posts itself to
    ``target`` as soon as it loads."""
    page = (
        "<!doctype html><html><body><h1>Cute cats</h1>"
        f"<form id='csrf' method='post' action='{target}'>"
        "<input type='hidden' name='confirm' value='yes'></form>"
        "<script>document.getElementById('csrf').submit()</script></body></html>"
    ).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def space_like_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, _Seen]]:
    """The example app with SameSite=None cookies (as in a Space's iframe: the cookie rides on
    cross-site requests) and a POST route behind ``oauth.user``."""
    from fastapi import Depends, Request

    seen = _Seen()

    def extend(app: Any, oauth: Any) -> None:
        user = Depends(oauth.user)

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Any:
            if request.method == "POST" and request.url.path == "/delete-everything":
                seen.requests.append(
                    {
                        "cookie": "__Host-hub_oauth_session" in request.cookies,
                        "origin": request.headers.get("origin"),
                        "sec-fetch-site": request.headers.get("sec-fetch-site"),
                    }
                )
            return await call_next(request)

        @app.post("/delete-everything")
        async def delete(info: Any = user) -> dict[str, str]:
            seen.deleted.append(info.user.username)
            return {"deleted_by": info.user.username}

    with _serve_example(monkeypatch, extend, same_site="none") as url:
        yield url, seen


def test_a_cross_site_form_post_is_refused(space_like_app: tuple[str, _Seen], browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app_url, seen = space_like_app
    browser.get(app_url + "/")
    browser.find_element(By.ID, "signin").click()
    browser.find_element(By.ID, "approve").click()
    assert browser.find_element(By.ID, "username").text == "ada-lovelace"
    names = {cookie["name"] for cookie in browser.get_cookies()}
    assert "__Host-hub_oauth_session" in names  # Secure (loopback is a secure context)

    # The attack: another site's page auto-submits a form to the app's POST route.
    with _attacker_site(app_url + "/delete-everything") as attacker:
        browser.get(attacker)
        WebDriverWait(browser, 10).until(lambda driver: len(seen.requests) == 1)
        body = WebDriverWait(browser, 10).until(
            lambda driver: driver.find_element(By.TAG_NAME, "body").text or None
        )
    assert "from another site refused" in body
    [attack] = seen.requests
    assert attack["cookie"] is True  # the browser did send the session cookie...
    assert attack["sec-fetch-site"] == "cross-site"
    assert attack["origin"] == attacker.rstrip("/")
    assert seen.deleted == []  # ...and the route never ran

    # The same form on the app's own origin works (same-origin POST, Origin sent).
    browser.get(app_url + "/")
    browser.execute_script(
        "const form = document.createElement('form');"
        "form.method = 'post'; form.action = '/delete-everything';"
        "document.body.appendChild(form); form.submit();"
    )
    WebDriverWait(browser, 10).until(lambda driver: seen.deleted == ["ada-lovelace"])
    assert seen.requests[-1]["sec-fetch-site"] == "same-origin"

    # The app's own sign-out button (a form that POSTs) still signs out.
    browser.get(app_url + "/")
    browser.find_element(By.ID, "signout").click()
    assert browser.find_element(By.ID, "signin").is_displayed()
    assert "__Host-hub_oauth_session" not in {c["name"] for c in browser.get_cookies()}
