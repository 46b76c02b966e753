from __future__ import annotations

import asyncio
import gc
import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from hub_auth import (
    HubAuth,
    LogoutInfo,
    MemoryCache,
    OrgInfo,
    SwitchInfo,
    TokenInfo,
    UserInfo,
    _models,
)
from hub_auth.testing import FakeHub, FakeUser, make_token

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
    assert user.organizations == ("analytical-engines",)
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


def _kept(body: dict[str, object]) -> UserInfo:
    """A user as a cache keeps it."""
    return _models.compact(UserInfo.model_validate(body))


def test_kept_users_share_their_fields_set_but_copies_stay_independent() -> None:
    first = _kept(SAMPLE_BODIES["write"])
    second = _kept(SAMPLE_BODIES["write"])
    assert first.model_fields_set is second.model_fields_set
    changed = first.model_copy(update={"email": "other@example.com"})
    assert changed.email == "other@example.com"
    assert first.model_fields_set == second.model_fields_set
    assert "email" in changed.model_fields_set
    assert first.model_dump(exclude_unset=True)["username"] == "ada-lovelace"


def test_equal_organisations_are_shared_between_kept_users() -> None:
    first = _kept(SAMPLE_BODIES["write"])
    second = _kept(dict(SAMPLE_BODIES["write"], name="someone-else"))
    assert first.orgs[0] is second.orgs[0]
    other = dict(SAMPLE_BODIES["write"], orgs=[{"name": "analytical-engines", "roleInOrg": "read"}])
    assert _kept(other).orgs[0] is not first.orgs[0]
    # Validation alone shares nothing: a whoami that is not cached does not pay for it.
    assert UserInfo.model_validate(SAMPLE_BODIES["write"]).orgs[0] is not first.orgs[0]


def test_shared_organisations_are_not_kept_alive() -> None:
    """The sharing table holds organisations weakly: it empties when no user holds them."""
    body = dict(SAMPLE_BODIES["write"], orgs=[{"name": "only-here-once", "roleInOrg": "read"}])
    user = _kept(body)
    again = _kept(body)
    assert again.orgs[0] is user.orgs[0]
    key = tuple(user.orgs[0].__dict__.values())
    assert key in _models._SHARED_ORGS
    del user, again
    gc.collect()
    assert key not in _models._SHARED_ORGS
    # A new user with that organisation gets a fresh one, and it is shared again.
    fresh = _kept(body)
    assert _kept(body).orgs[0] is fresh.orgs[0]


def test_a_memory_cache_keeps_compact_users() -> None:
    from hub_auth._cache.memory import MemoryCache
    from hub_auth._result import Ok

    cache = MemoryCache()

    async def load(token: str) -> Ok[UserInfo]:
        return Ok(UserInfo.model_validate(SAMPLE_BODIES["write"]))

    async def both() -> tuple[object, object]:
        first = await cache.fetch("hf_" + "a" * 34, load, endpoint="https://hub.example")
        second = await cache.fetch("hf_" + "b" * 34, load, endpoint="https://hub.example")
        return first, second

    first, second = asyncio.run(both())
    assert isinstance(first, Ok) and isinstance(second, Ok)
    assert first.value.orgs[0] is second.value.orgs[0]
    assert first.value.model_fields_set is second.value.model_fields_set


def _mutable_parts(annotation: object) -> list[object]:
    """The mutable container types (list, dict, set) anywhere in a field's annotation."""
    origin = typing.get_origin(annotation)
    found: list[object] = (
        [origin or annotation] if (origin or annotation) in (list, dict, set) else []
    )
    for argument in typing.get_args(annotation):
        found += _mutable_parts(argument)
    return found


@pytest.mark.parametrize("name", _models.__all__)
def test_no_model_holds_a_mutable_container(name: str) -> None:
    model = getattr(_models, name)
    assert issubclass(model, BaseModel)
    assert model.model_config.get("frozen") is True
    for field_name, info in model.model_fields.items():
        assert _mutable_parts(info.annotation) == [], f"{name}.{field_name}"


async def test_a_cached_user_cannot_be_changed_by_one_caller_for_the_others(
    fake_hub: FakeHub,
) -> None:
    token = fake_hub.add_token(make_token("ada"), FakeUser(name="ada", orgs=["lab", "looms"]))
    async with HubAuth(endpoint=fake_hub.url, cache=MemoryCache()) as auth:
        first = (await auth.whoami(token)).unwrap()
        assert isinstance(first.orgs, tuple)
        with pytest.raises(AttributeError):
            first.orgs.clear()  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):
            first.orgs.append(first.orgs[0])  # type: ignore[attr-defined]
        with pytest.raises(TypeError):
            first.orgs[0] = first.orgs[1]  # type: ignore[index]
        with pytest.raises(ValidationError):
            first.orgs = ()  # type: ignore[misc]
        with pytest.raises(ValidationError):
            first.orgs[0].name = "someone-elses-org"  # type: ignore[misc]
        with pytest.raises(AttributeError):
            first.organizations.append("lab")  # type: ignore[attr-defined]
        second = (await auth.whoami(token)).unwrap()
    assert second is first  # the cache's own object, handed to every caller...
    assert second.organizations == ("lab", "looms")  # ...and still what the Hub said
    assert fake_hub.request_count == 1


def test_login_logout_and_switch_results_hold_tuples() -> None:
    user = UserInfo(username="ada")
    results = [
        _models.LoginInfo(user=user, token_name="t", notes=["a note"]),  # type: ignore[arg-type]
        LogoutInfo(removed=["t"], notes=["a note"]),  # type: ignore[arg-type]
        SwitchInfo(token_name="t", notes=["a note"]),  # type: ignore[arg-type]
    ]
    for result in results:
        for field_name in ("notes", "removed"):
            value = getattr(result, field_name, ())
            assert isinstance(value, tuple), field_name
    assert UserInfo(username="ada").orgs == ()
