from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub_auth import OrgInfo, TokenInfo, UserInfo

SAMPLES = Path(__file__).parent / "data" / "whoami-v2"
SAMPLE_BODIES = {
    "write": {
        "type": "user",
        "id": "65b2c3d4e5f60718293a4b5c",
        "name": "ada-lovelace",
        "fullname": "Ada Lovelace",
        "email": "ada@example.com",
        "emailVerified": True,
        "canPay": False,
        "isPro": False,
        "avatarUrl": "/avatars/0f.svg",
        "orgs": [{"type": "org", "name": "analytical-engines", "roleInOrg": "admin"}],
        "auth": {
            "type": "access_token",
            "accessToken": {
                "displayName": "ada-workstation",
                "role": "write",
                "createdAt": "2026-03-14T15:09:26.535Z",
            },
        },
    },
}


def _load(name: str) -> dict[str, object]:
    return json.loads((SAMPLES / f"{name}.json").read_text())  # type: ignore[no-any-return]


def test_write_token_sample() -> None:
    user = UserInfo.model_validate(SAMPLE_BODIES["write"])
    assert user.username == "ada-lovelace"
    assert user.email == "ada@example.com"
    assert user.organizations == ["analytical-engines"]
    assert user.orgs[0] == OrgInfo(name="analytical-engines", type="org", role_in_org="admin")
    assert user.token is not None
    assert user.token.display_name == "ada-workstation"
    assert user.token.role == "write"
    assert user.token.created_at is not None and user.token.created_at.year == 2026


def test_reference_samples_parse() -> None:
    fine = UserInfo.model_validate(_load("user_fine_grained_token"))
    assert fine.email is None
    assert fine.token is not None and fine.token.role == "fineGrained"
    assert "post.write" in fine.token.global_permissions
    assert fine.token.has_permission("repo.write", entity="charles-b")
    assert not fine.token.has_permission("repo.write", entity="someone-else")
    oauth = UserInfo.model_validate(_load("user_oauth_token"))
    assert oauth.token is not None
    assert oauth.token.display_name is None
    assert oauth.token.expires_at is not None


def test_unknown_fields_are_ignored_and_roundtrip() -> None:
    body = dict(SAMPLE_BODIES["write"], brandNewField={"x": 1}, plan="NO_PLAN")
    user = UserInfo.model_validate_json(json.dumps(body))
    again = UserInfo.model_validate_json(user.model_dump_json())
    assert again == user


def test_classic_roles() -> None:
    assert TokenInfo(role="write").has_permission("repo.write")
    assert TokenInfo(role="read").has_permission("repo.content.read")
    assert not TokenInfo(role="read").has_permission("repo.write")


def test_missing_name_is_a_validation_error() -> None:
    with pytest.raises(ValueError, match="name"):
        UserInfo.model_validate({"type": "user"})


def test_instances_share_their_fields_set_but_copies_stay_independent() -> None:
    first = UserInfo.model_validate(SAMPLE_BODIES["write"])
    second = UserInfo.model_validate(SAMPLE_BODIES["write"])
    assert first.model_fields_set is second.model_fields_set
    changed = first.model_copy(update={"email": "other@example.com"})
    assert changed.email == "other@example.com"
    assert first.model_fields_set == second.model_fields_set
    assert "email" in changed.model_fields_set
    assert first.model_dump(exclude_unset=True)["username"] == "ada-lovelace"


def test_equal_organisations_are_shared_between_users() -> None:
    first = UserInfo.model_validate(SAMPLE_BODIES["write"])
    second = UserInfo.model_validate(dict(SAMPLE_BODIES["write"], name="someone-else"))
    assert first.orgs[0] is second.orgs[0]
    other = dict(SAMPLE_BODIES["write"], orgs=[{"name": "analytical-engines", "roleInOrg": "read"}])
    assert UserInfo.model_validate(other).orgs[0] is not first.orgs[0]
