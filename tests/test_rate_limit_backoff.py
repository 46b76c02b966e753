"""HubClient's rate-limit backoff: after a 429 that says when, nobody's token is sent until then."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub_auth import Err, ErrorKind, HubAuth, HubAuthError, MemoryCache, Ok, Result, UserInfo
from hub_auth.testing import FakeHub, FakeUser, make_token

ADA = make_token("ada")
BYRON = make_token("byron")


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_token(ADA, FakeUser(name="ada"))
    fake_hub.add_token(BYRON, FakeUser(name="byron"))
    return fake_hub


def rate_limited(result: Result[UserInfo]) -> HubAuthError:
    assert isinstance(result, Err), result
    assert result.error.kind is ErrorKind.RATE_LIMITED
    return result.error


@pytest.mark.parametrize(
    ("retry_after", "reset"),
    [(30, 120), (None, 30)],
    ids=["retry-after", "ratelimit-header-only"],
)
async def test_after_a_429_whoami_answers_at_once_without_a_request(
    hub: FakeHub, retry_after: int | None, reset: int
) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=1) as auth:
        hub.rate_limit_next(retry_after=retry_after, reset=reset)
        first = rate_limited(await auth.whoami(ADA))
        assert first.status == 429
        started = time.monotonic()
        later = [rate_limited(await auth.whoami(token)) for token in (BYRON, ADA, make_token())]
        assert time.monotonic() - started < 0.1
    assert hub.request_count == 1
    for error in later:
        assert error is not first
        assert error.status is None  # no request was made
        assert error.retry_after is not None
        assert 29 < error.retry_after <= 30
    # A new error object each time: raising one in a task cannot change another's.
    assert len({id(error) for error in later}) == len(later)
    assert "rate limiting" in str(later[0])


async def test_cached_answers_are_still_served(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=1, cache=MemoryCache()) as auth:
        assert (await auth.whoami(ADA)).unwrap().username == "ada"
        hub.rate_limit_next(retry_after=30)
        rate_limited(await auth.whoami(BYRON))
        assert (await auth.whoami(ADA)).unwrap().username == "ada"
        rate_limited(await auth.whoami(BYRON))
    assert hub.request_count == 2


async def test_the_hub_is_asked_again_once_the_wait_is_over(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=1) as auth:
        hub.rate_limit_next(retry_after=0.3, send_ratelimit_header=False)
        rate_limited(await auth.whoami(ADA))
        rate_limited(await auth.whoami(ADA))
        assert hub.request_count == 1
        await asyncio.sleep(0.35)
        assert isinstance(await auth.whoami(ADA), Ok)
    assert hub.request_count == 2


async def test_a_429_that_does_not_say_when_is_not_remembered(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=1) as auth:
        hub.rate_limit_next(retry_after=None, send_ratelimit_header=False)
        assert rate_limited(await auth.whoami(ADA)).retry_after is None
        assert isinstance(await auth.whoami(ADA), Ok)
    assert hub.request_count == 2


async def test_the_wait_is_capped(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=1) as auth:
        hub.rate_limit_next(retry_after=10**9)
        assert rate_limited(await auth.whoami(ADA)).retry_after == 10**9  # as the Hub said
        capped = rate_limited(await auth.whoami(BYRON)).retry_after
    assert capped is not None
    assert 299 < capped <= 300  # the Hub's five-minute window
    assert hub.request_count == 1


async def test_while_one_call_waits_to_retry_the_others_do_not_ask(hub: FakeHub) -> None:
    async with HubAuth(endpoint=hub.url, max_attempts=3, retry_budget=5.0) as auth:
        hub.rate_limit_next(retry_after=1.0, send_ratelimit_header=False)
        waiting = asyncio.create_task(auth.whoami(ADA))
        await asyncio.sleep(0.3)  # the 429 has been read; the first call is backing off
        assert hub.request_count == 1
        others = await asyncio.gather(*(auth.whoami(make_token()) for _ in range(20)))
        assert hub.request_count == 1
        for result in others:
            rate_limited(result)
        # The call that met the 429 retries when told, and gets its answer.
        assert (await waiting).unwrap().username == "ada"
    assert hub.request_count == 2


async def test_each_client_keeps_its_own_wait(hub: FakeHub) -> None:
    """The state is per HubClient (one per HubAuth), not global to the process."""
    async with (
        HubAuth(endpoint=hub.url, max_attempts=1) as limited,
        HubAuth(endpoint=hub.url, max_attempts=1) as other,
    ):
        hub.rate_limit_next(retry_after=30)
        rate_limited(await limited.whoami(ADA))
        assert isinstance(await other.whoami(ADA), Ok)
    assert hub.request_count == 2


async def test_the_cache_hears_the_wait_through_its_protocol(hub: FakeHub) -> None:
    """HubAuth tells its cache (``on_backoff``) the moment the Hub says to wait; the wait is
    counted once, though the 429 the load returns says it again."""

    class Listening(MemoryCache):
        def __init__(self) -> None:
            super().__init__()
            self.heard: list[tuple[str, float]] = []

        def on_backoff(self, endpoint: str, seconds: float) -> None:
            self.heard.append((endpoint, seconds))
            super().on_backoff(endpoint, seconds)

    cache = Listening()
    async with HubAuth(endpoint=hub.url, max_attempts=1, cache=cache) as auth:
        hub.rate_limit_next(retry_after=30, send_ratelimit_header=False)
        rate_limited(await auth.whoami(ADA))
    assert cache.heard == [(hub.url, 30.0)]
    assert cache.stats().backoff_seconds == 30.0
