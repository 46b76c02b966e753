"""The pytest11 plugin: free until its fixture is used, and the fixture still works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("aiohttp.web", "aiohttp", "hub_auth.testing", "pydantic")


def test_importing_the_plugin_imports_no_aiohttp_nor_fakehub() -> None:
    code = f"import sys, hub_auth.pytest_plugin\nprint(sorted(set({HEAVY!r}) & set(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_fake_hub_fixture_in_another_projects_suite(tmp_path: Path) -> None:
    """A suite outside this repository gets ``fake_hub`` from the installed entry point, and
    ``aiohttp.web`` is imported only once a test asks for the fixture."""
    (tmp_path / "test_uses_fake_hub.py").write_text(
        textwrap.dedent(
            """
            import json
            import sys
            import urllib.request


            def test_1_a_test_without_the_fixture_pays_nothing():
                assert "aiohttp.web" not in sys.modules
                assert "hub_auth.testing" not in sys.modules


            def test_2_the_fixture_serves_whoami(fake_hub):
                token = fake_hub.add_token(name="ada-lovelace", orgs=["lab"])
                request = urllib.request.Request(
                    fake_hub.url + "/api/whoami-v2",
                    headers={"Authorization": "Bearer " + token},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    body = json.load(response)
                assert body["name"] == "ada-lovelace"
                assert [org["name"] for org in body["orgs"]] == ["lab"]
                assert fake_hub.request_count == 1
                assert "aiohttp.web" in sys.modules
            """
        )
    )
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
