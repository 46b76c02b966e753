"""FakeHub's device page in a real headless browser (chromium + chromedriver + selenium).

Skipped when chromium, chromedriver or selenium is missing, unless HUB_AUTH_REQUIRE_BROWSER=1
(CI sets it, so a missing browser fails there instead of passing silently).
Debian: ``apt-get install -y chromium chromium-driver`` and ``pip install selenium``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub_auth import DeviceCode, Err, ErrorKind, HubAuth, Ok
from hub_auth.testing import FakeHub, FakeUser

REQUIRED = os.environ.get("HUB_AUTH_REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - depends on the machine
    webdriver = None

_MISSING = [
    name
    for name, found in (
        ("chromium", CHROMIUM),
        ("chromedriver", CHROMEDRIVER),
        ("selenium", webdriver),
    )
    if not found
]
if _MISSING and REQUIRED:
    raise RuntimeError(f"HUB_AUTH_REQUIRE_BROWSER=1 but {', '.join(_MISSING)} is missing")
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"needs {', '.join(_MISSING)}")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    # An explicit driver and binary: Selenium Manager never goes to the network.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.oauth.device_interval = 0.05
    hub.oauth.browser_user = FakeUser(name="grace-hopper")
    return hub


def _result_text(driver: Any) -> str:
    WebDriverWait(driver, 15).until(
        expected_conditions.presence_of_element_located((By.ID, "result"))
    )
    return str(driver.find_element(By.ID, "result").text)


async def test_approve_in_the_browser_with_the_prefilled_code(
    browser: Any, auth: HubAuth, hf_home: Path
) -> None:
    device: DeviceCode = (await auth.start_device_login()).unwrap()
    waiting = asyncio.create_task(auth.complete_device_login(device))

    def person() -> str:
        browser.get(device.verification_uri_complete)
        field = browser.find_element(By.ID, "user_code")
        assert field.get_attribute("value") == device.user_code
        assert "grace-hopper" in browser.page_source
        browser.find_element(By.ID, "approve").click()
        return _result_text(browser)

    shown = await asyncio.to_thread(person)
    assert "Device connected" in shown
    result = await asyncio.wait_for(waiting, 20)
    assert isinstance(result, Ok), result
    assert result.value.token_name == "oauth-grace-hopper"
    assert (hf_home / "token").exists()


async def test_deny_in_the_browser_after_typing_the_code(
    browser: Any, auth: HubAuth, hub: FakeHub, hf_home: Path
) -> None:
    device: DeviceCode = (await auth.start_device_login()).unwrap()
    waiting = asyncio.create_task(auth.complete_device_login(device))

    def person() -> str:
        browser.get(device.verification_uri)
        field = browser.find_element(By.ID, "user_code")
        assert field.get_attribute("value") == ""
        field.send_keys(device.user_code.lower())  # typed in lower case: still the same code
        browser.find_element(By.ID, "deny").click()
        return _result_text(browser)

    shown = await asyncio.to_thread(person)
    assert "Access denied" in shown
    result = await asyncio.wait_for(waiting, 20)
    assert isinstance(result, Err) and result.error.kind is ErrorKind.ACCESS_DENIED
    assert not (hf_home / "token").exists()
