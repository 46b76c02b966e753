"""``hub-auth list`` and ``hub-auth whoami`` show when tokens expire; whoami refreshes first."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from click.testing import CliRunner, Result

from hub_auth._login.store import TokenStore
from hub_auth.cli import main
from hub_auth.testing import FakeHub, FakeUser, make_token

HOUR = 3600
DAY = 24 * HOUR


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.delenv("HF_DEVICE_CODE_OAUTH_CLIENT_ID", raising=False)
    return fake_hub


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output
    return result


def date_of(unix: int) -> str:
    return datetime.fromtimestamp(unix).strftime("%Y-%m-%d")


def test_list_shows_each_expiry_and_which_have_expired(store: TokenStore) -> None:
    later, earlier = int(time.time()) + 10 * DAY, int(time.time()) - DAY
    store.save("classic", make_token("classic")).unwrap()
    store.save("oauth-ada", make_token("ada"), extra={"expires_at": str(later)}).unwrap()
    store.save("oauth-bob", make_token("bob"), extra={"expires_at": str(earlier)}).unwrap()
    lines = run("list").stdout.splitlines()
    assert lines[0].split()[-1] == "expires"
    rows = {line[2:].split()[0]: line for line in lines[1:]}
    assert rows["classic"].rstrip().endswith("****" + make_token("classic")[-4:])
    assert rows["oauth-ada"].endswith(f"  {date_of(later)}")
    assert rows["oauth-bob"].endswith(f"  {date_of(earlier)} (expired)")

    listed = {item["name"]: item for item in json.loads(run("list", "--json").stdout)}
    assert listed["classic"]["expires_at"] is None
    assert listed["oauth-ada"]["expires_at"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(later)
    )


def test_whoami_refreshes_a_due_login_and_says_when_it_expires(
    hub: FakeHub, store: TokenStore
) -> None:
    answer = hub.oauth.issue_login(FakeUser(name="ada", token_name=None), lifetime=HOUR)
    extra = {
        "refresh_token": answer["refresh_token"],
        "expires_at": str(int(time.time()) + HOUR),
        "hub_auth_endpoint": hub.url,
    }
    store.save("oauth-ada", answer["access_token"], extra=extra).unwrap()
    out = run("whoami").stdout
    assert hub.oauth.refresh_requests == 1
    fresh = store.read_entries().unwrap()["oauth-ada"]
    assert fresh["hf_token"] != answer["access_token"]
    expires = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(fresh["expires_at"])))
    assert f"  expires:  {expires} UTC (refreshed automatically before then)\n" in out


def test_whoami_shows_the_hubs_expiry_for_an_environment_token(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = hub.add_token(user=FakeUser(name="ci-bot", expires_at="2030-01-01T00:00:00.000Z"))
    monkeypatch.setenv("HF_TOKEN", token)
    out = run("whoami").stdout
    assert "  expires:  2030-01-01 00:00 UTC\n" in out
    never = hub.add_token(name="no-expiry")
    monkeypatch.setenv("HF_TOKEN", never)
    assert "expires:" not in run("whoami").stdout
