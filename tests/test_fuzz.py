"""Fuzzing (hypothesis): whatever comes in, hub_auth answers with a value, never a crash.

Three inputs come from outside the program: tokens (typed, pasted, read from the
environment), the ``stored_tokens`` file (written by other tools, or damaged), and the Hub's
whoami body. Each is fed random and adversarial data: the answer is a ``bool``/reason or a
typed ``Err``, never an exception, and nothing that could inject a header gets through.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub_auth import Err, ErrorKind, HubAuth, Ok, UserInfo
from hub_auth._http import parse_retry_after, parse_whoami
from hub_auth._login.store import TokenStore
from hub_auth._tokens import MAX_TOKEN_LENGTH, check_format, scrub
from hub_auth.testing import FakeUser, make_token

FUZZ = settings(
    max_examples=200,
    deadline=None,
    # The autouse environment fixture is shared by the examples on purpose: it only points
    # HF_HOME at a temporary folder.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
TOKEN = make_token("fuzz")
_INJECTION = ("\r", "\n", "\x00", "\r\n", "\u2028", "\x85", " ", "\t", "\x7f")

# -- tokens ------------------------------------------------------------------------------------

_printable_ascii = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
tokens = st.one_of(
    st.text(),  # any unicode, control characters included
    st.text(alphabet=st.characters(codec="ascii")),
    # Almost valid: a good token with something spliced in.
    st.builds(
        lambda head, bad, tail: f"hf_{head}{bad}{tail}",
        st.text(alphabet=_printable_ascii, max_size=40),
        st.sampled_from(_INJECTION) | st.characters(exclude_categories=["Cs"]),
        st.text(max_size=40),
    ),
    # Header injection attempts.
    st.builds(
        lambda body, header: f"hf_{body}\r\n{header}",
        st.text(alphabet=_printable_ascii, min_size=5, max_size=40),
        st.sampled_from(["X-Evil: 1", "Host: evil.example", "", "\r\nGET / HTTP/1.1"]),
    ),
    # Huge, valid-looking or not.
    st.builds(
        lambda n, tail: "hf_" + "a" * n + tail,
        st.integers(min_value=0, max_value=3 * MAX_TOKEN_LENGTH),
        st.sampled_from(["", "\n", "é", "\x00"]),
    ),
    st.builds(make_token, st.text(max_size=10)),
)


def _is_header_safe(token: str) -> bool:
    return all(0x21 <= ord(char) <= 0x7E for char in token)


@FUZZ
@given(tokens)
@example("hf_abcdefgh\r\nX-Evil: 1")
@example("hf_abcdefgh\x00")
@example("hf_" + "a" * (MAX_TOKEN_LENGTH - 3))
@example("hf_" + "a" * (MAX_TOKEN_LENGTH - 2))
def test_check_format_never_raises_and_lets_no_injection_through(token: str) -> None:
    reason = check_format(token)
    if reason is None:
        assert _is_header_safe(token)
        assert token.startswith("hf_")
        assert len(token) <= MAX_TOKEN_LENGTH
    else:
        assert isinstance(reason, str)
        assert reason
        if len(token) >= 16:
            assert token not in reason


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # One loop for all the examples of a test: a new one per example would cost more than
    # the calls it runs.
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@FUZZ
@given(token=tokens)
@example(token=TOKEN + "\r\nX-Evil: 1")
@example(token=TOKEN)
def test_set_token_and_auth_headers_never_raise(
    token: str, loop: asyncio.AbstractEventLoop
) -> None:
    async def drive() -> None:
        async with HubAuth(endpoint="https://hub.example", read_env=False) as auth:
            for outcome in (
                await auth.set_token(token),
                await auth.auth_headers(token),
                await auth.validate_token(token, remote=False),
            ):
                match outcome:
                    case Ok(None):
                        assert check_format(token) is None
                    case Ok(headers):
                        assert headers == [("authorization", f"Bearer {token}")]
                        assert _is_header_safe(token)
                    case Err(error):
                        assert error.kind is ErrorKind.INVALID_TOKEN
                        assert check_format(token) is not None
                        if len(token) >= 16:
                            assert token not in str(error)
                            assert token not in repr(error)
            # Whatever was refused, the header built from the slot is safe.
            match await auth.auth_headers():
                case Ok([(_, value)]):
                    assert _is_header_safe(value.removeprefix("Bearer "))
                case Err(error):
                    assert error.kind is ErrorKind.NO_TOKEN

    loop.run_until_complete(drive())


@FUZZ
@given(st.text(), st.text(alphabet=st.characters(codec="ascii"), max_size=30))
def test_scrub_never_lets_a_token_through(before: str, after: str) -> None:
    token = make_token(before[:8])
    assert token not in scrub(before + token + after)


# -- stored_tokens -----------------------------------------------------------------------------

_ini_lines = st.one_of(
    st.sampled_from(
        [
            "[default]",
            "[DEFAULT]",
            "[laptop]",
            "[laptop]",  # a duplicate section
            "[]",
            "[unclosed",
            f"hf_token = {TOKEN}",
            f"hf_token={TOKEN}",
            "hf_token =",
            f"  continued {TOKEN}",
            "expires_at = 1790000000",
            "expires_at = soon",
            "refresh_token = %(oops)s",
            "no equals sign here",
            "= no key",
            "; comment",
            "# comment",
            "",
        ]
    ),
    st.text(max_size=30).map(lambda text: text.replace("\n", "")),
)
ini_files = st.lists(_ini_lines, max_size=12).map(lambda lines: "\n".join(lines).encode())
stored_files = st.one_of(
    ini_files,
    st.binary(max_size=300),
    st.builds(lambda good, junk: good + junk, ini_files, st.binary(max_size=20)),
)


@FUZZ
@given(content=stored_files, active=st.binary(max_size=60) | st.just(TOKEN.encode()))
@example(content=b"[laptop]\nhf_token = x\n[laptop]\n", active=b"")
@example(content=b"\xff\xfe[laptop]", active=b"\xff")
@example(
    content=f"[laptop]\nhf_token = {TOKEN}\nhf_token = {TOKEN}\n".encode(), active=TOKEN.encode()
)
def test_stored_tokens_parsing_never_raises(content: bytes, active: bytes, hf_home: Path) -> None:
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "stored_tokens").write_bytes(content)
    (hf_home / "token").write_bytes(active)
    store = TokenStore(hf_home / "token")
    for outcome in (
        store.read_entries(),
        store.read_active(),
        store.list_tokens(),
        store.get_token_by_name("laptop"),
    ):
        match outcome:
            case Ok(value):
                if isinstance(value, dict):
                    assert all(isinstance(v, dict) for v in value.values())
            case Err(error):
                assert error.kind in (ErrorKind.STORAGE, ErrorKind.NOT_FOUND)
                assert TOKEN not in str(error)
                assert TOKEN not in repr(error)
            case other:
                pytest.fail(f"not a Result: {other!r}")


# -- whoami bodies -----------------------------------------------------------------------------

_keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["name", "email", "fullname", "orgs", "auth", "type", "id", TOKEN]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.just(TOKEN),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=25,
)
# Bodies close to the real shape reach deeper into the model than random values would.
user_like = st.fixed_dictionaries(
    {"name": json_values},
    optional={
        "email": json_values,
        "fullname": json_values,
        "orgs": st.lists(st.fixed_dictionaries({"name": json_values}) | json_values, max_size=3),
        "auth": st.fixed_dictionaries(
            {},
            optional={
                "type": json_values,
                "expiresAt": json_values,
                "accessToken": st.fixed_dictionaries(
                    {},
                    optional={
                        "displayName": json_values,
                        "role": json_values,
                        "createdAt": json_values,
                        "fineGrained": json_values,
                    },
                ),
            },
        ),
        TOKEN: json_values,
    },
)


def _check_whoami(body: bytes) -> None:
    match parse_whoami(body, request_id="Root=1-fuzz"):
        case Ok(user):
            assert isinstance(user, UserInfo)
            assert isinstance(user.username, str)
        case Err(error):
            assert error.kind is ErrorKind.BAD_RESPONSE
            assert error.status == 200
            assert error.request_id == "Root=1-fuzz"
            assert TOKEN not in str(error)
            assert TOKEN not in repr(error)
        case other:
            pytest.fail(f"not a Result: {other!r}")


@FUZZ
@given(json_values | user_like)
@example({"name": "ada"})
@example({"name": TOKEN, TOKEN: {TOKEN: [TOKEN]}})
@example({"name": "ada", "orgs": [{"name": 1}], "auth": {"accessToken": {TOKEN: 1}}})
def test_whoami_body_parsing_never_raises(value: Any) -> None:
    _check_whoami(json.dumps(value).encode())


@FUZZ
@given(st.binary(max_size=200))
@example(b"[" * 100_000)
@example(b'{"name": "ada"' + b"," * 10)
@example(b"\xef\xbb\xbf{}")
def test_whoami_raw_bytes_never_raise(body: bytes) -> None:
    _check_whoami(body)


def test_whoami_real_body_parses() -> None:
    body = json.dumps(FakeUser(name="ada-lovelace", orgs=["lab"]).body()).encode()
    user = parse_whoami(body).unwrap()
    assert user.username == "ada-lovelace"
    assert user.organizations == ("lab",)


# -- rate-limit headers ------------------------------------------------------------------------


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["Retry-After", "RateLimit"]),
        st.text(max_size=40)
        | st.floats().map(str)
        | st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT"))
        | st.integers().map(lambda n: f'"api";r=0;t={n}'),
    )
)
@example({"Retry-After": "1e400"})
@example({"Retry-After": "Mon, 01 Jan 0001 00:00:00 GMT"})
@example({"RateLimit": '"api";r=0;t=' + "9" * 400})
def test_parse_retry_after_is_total(headers: dict[str, str]) -> None:
    seconds = parse_retry_after(headers)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


# -- whole HTTP answers ------------------------------------------------------------------------

_statuses = st.sampled_from([200, 204, 301, 302, 303, 307, 308, 400, 401, 403, 404, 429, 500, 503])
_header_lines = st.one_of(
    st.sampled_from(
        [
            b"Content-Type: application/json",
            b"Content-Type: text/html",
            b"Content-Length: 0",
            b"Content-Length: 5",
            b"Content-Length: 99999999",
            b"Content-Length: -1",
            b"Content-Length: x",
            b"Transfer-Encoding: chunked",
            b"Content-Encoding: gzip",
            b"Content-Encoding: deflate",
            b"Content-Encoding: br",
            b"Location: /api/whoami-v2",
            b"Location: http://localhost:1/",
            b"Location: http://[::1",
            b"Location: http://u:p@127.0.0.1/",
            b"Location: ",
            b"Retry-After: 0.01",
            b"Retry-After: 99999",
            b"Retry-After: Wed, 21 Oct 2015 07:28:00 GMT",
            b'RateLimit: "api";r=0;t=0',
            b"X-Error-Message: " + TOKEN.encode(),
            b"Connection: keep-alive",
        ]
    ),
    st.builds(
        lambda name, value: name + b": " + value,
        st.binary(min_size=1, max_size=12),
        st.binary(max_size=30),
    ),
)
_bodies = st.one_of(
    st.just(json.dumps(FakeUser(name="ada").body()).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.just(b"5\r\nhello\r\n0\r\n\r\n"),
    st.just(b"zz\r\nbroken chunk"),
)
http_answers = st.one_of(
    st.builds(
        lambda status, headers, body: (
            b"HTTP/1.1 %d X\r\n" % status + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body
        ),
        _statuses,
        st.lists(_header_lines, max_size=6),
        _bodies,
    ),
    st.binary(max_size=300),  # not HTTP at all
    st.builds(lambda junk: b"HTTP/1.1 200 OK\r\n" + junk, st.binary(max_size=100)),
)


@pytest.fixture
def raw_server(loop: asyncio.AbstractEventLoop) -> Iterator[tuple[str, list[bytes]]]:
    """A TCP server that answers every request with the bytes in ``answer[0]``, then closes."""
    answer = [b""]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer[0])
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", answer
    server.close()
    loop.run_until_complete(server.wait_closed())


@settings(FUZZ, max_examples=150)
@given(response=http_answers)
@example(response=b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n")
@example(response=b"HTTP/1.1 307 X\r\nLocation: http://u:p@127.0.0.1/\r\nContent-Length: 0\r\n\r\n")
@example(response=b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc")
def test_whoami_never_raises_whatever_the_server_answers(
    response: bytes, raw_server: tuple[str, list[bytes]], loop: asyncio.AbstractEventLoop
) -> None:
    url, answer = raw_server
    answer[0] = response

    async def call() -> object:
        async with HubAuth(
            endpoint=url, token=TOKEN, read_env=False, max_attempts=2, retry_budget=0.3
        ) as auth:
            return await auth.whoami()

    match loop.run_until_complete(call()):
        case Ok(user):
            assert isinstance(user, UserInfo)
        case Err(error):
            assert error.kind in {
                ErrorKind.BAD_RESPONSE,
                ErrorKind.NETWORK,
                ErrorKind.TIMEOUT,
                ErrorKind.UNAUTHORIZED,
                ErrorKind.FORBIDDEN,
                ErrorKind.NOT_FOUND,
                ErrorKind.RATE_LIMITED,
                ErrorKind.SERVER_ERROR,
            }
            assert TOKEN not in str(error)
            assert TOKEN not in repr(error)
        case other:
            pytest.fail(f"not a Result: {other!r}")
