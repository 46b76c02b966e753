"""The pytest11 plugin: free until its fixture is used, and the fixture still works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

HEAVY = ("aiohttp.web", "aiohttp", "hub_auth.testing", "pydantic")


def run_pytest(
    project: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """pytest in a child process, in ``project`` (its tests written there), warnings as errors."""
    (project / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


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
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_fake_hub_points_the_environment_at_itself(tmp_path: Path) -> None:
    """With ``fake_hub``, code that reads the environment (``hub_auth.sync``'s functions,
    ``HubAuthSync()`` with no arguments) talks to the fake Hub with no setup, and the
    developer's own login (token file, HF_TOKEN, HF_TOKEN_PATH) is neither read nor written."""
    real_home = tmp_path / "real-hf-home"
    real_home.mkdir()
    real_token = "hf_" + "r" * 34  # the developer's own login, which no test may touch
    (real_home / "token").write_text(real_token)
    other_token_file = tmp_path / "elsewhere-token"
    other_token_file.write_text(real_token)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_env.py").write_text(
        textwrap.dedent(
            """
            import os

            from hub_auth import HubAuthSync
            from hub_auth import sync as hf_auth


            def test_1_sync_functions_reach_the_fake_hub(fake_hub, monkeypatch):
                assert os.environ["HF_ENDPOINT"] == fake_hub.url
                assert "HF_TOKEN" not in os.environ and "HF_TOKEN_PATH" not in os.environ
                monkeypatch.setenv("HF_TOKEN", fake_hub.add_token(name="ada"))
                assert hf_auth.whoami().unwrap().username == "ada"
                assert fake_hub.request_count == 1


            def test_2_a_second_test_reaches_its_own_fake_hub(fake_hub, monkeypatch):
                monkeypatch.setenv("HF_TOKEN", fake_hub.add_token(name="bob"))
                assert hf_auth.whoami().unwrap().username == "bob"


            def test_3_nobody_is_logged_in_and_login_stays_in_the_test(fake_hub):
                with HubAuthSync() as auth:
                    assert auth.endpoint == fake_hub.url
                    assert auth.whoami().error.kind == "no_token"
                    token = fake_hub.add_token(name="carol")
                    assert auth.login(token).unwrap().user.username == "carol"
                    assert auth.whoami().unwrap().username == "carol"
            """
        )
    )
    env = {
        **os.environ,
        "HF_HOME": str(real_home),
        "HF_TOKEN": real_token,
        "HF_TOKEN_PATH": str(other_token_file),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there
    }
    result = run_pytest(project, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert real_token not in result.stdout + result.stderr
    assert sorted(path.name for path in real_home.iterdir()) == ["token"]
    assert (real_home / "token").read_text() == real_token
    assert other_token_file.read_text() == real_token
