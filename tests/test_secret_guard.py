"""No token in any result, error, exception or log record, and the guards that make sure of it.

- Every operation of ``HubAuth`` is driven with real tokens through FakeHub and every fault
  it can inject, including a Hub that echoes the token back in its error texts, bodies and
  redirects; ``repr``/``str`` of every result and every raised exception must not contain it.
- The masking filter of ``hub_auth._logging`` masks what reaches the ``hub_auth`` logger.
- The suite-wide guard (``tests/secret_guard.py``) catches a leak: an inner pytest run
  with leaking tests must fail exactly those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from hub_auth import Err, ErrorKind, HubAuth, HubAuthError, Ok
from hub_auth._logging import TokenMaskingFilter, install
from hub_auth._tokens import mask_token
from hub_auth.testing import FakeHub, FakeUser, make_token
from tests import secret_guard

TOKEN = make_token("secret-guard")
OTHER = make_token("secret-guard-other")
UNKNOWN = make_token("secret-guard-unknown")
SECRETS = (TOKEN, OTHER, UNKNOWN)


def _assert_clean(where: str, *values: object) -> None:
    for value in values:
        for text in (repr(value), str(value)):
            for secret in SECRETS:
                assert secret not in text, f"{where}: {mask_token(secret)} in {text[:200]!r}"


# -- every operation, every fault --------------------------------------------------------------


def _echoing(status: int) -> Callable[[FakeHub], None]:
    """A Hub that quotes the token back in its error header and body."""

    def inject(hub: FakeHub) -> None:
        hub.fail_next(
            status,
            count=9,
            headers={"X-Error-Message": f"token {TOKEN} refused"},
            body=f'{{"error": "bad token {TOKEN}"}}',
        )

    return inject


FAULTS: dict[str, Callable[[FakeHub], None]] = {
    "none": lambda hub: None,
    "401-revoked": lambda hub: hub.revoke(TOKEN),
    "403-forbidden": lambda hub: hub.forbid(TOKEN, message=f"policy refuses {TOKEN}"),
    "429": lambda hub: hub.rate_limit_next(9, retry_after=30),
    "429-no-headers": lambda hub: hub.rate_limit_next(
        9, retry_after=None, send_ratelimit_header=False
    ),
    "500": lambda hub: hub.fail_next(500, 9),
    "503": lambda hub: hub.fail_next(503, 9),
    "echo-400": _echoing(400),
    "echo-401": _echoing(401),
    "echo-500": _echoing(500),
    "echo-503": _echoing(503),
    "reset": lambda hub: hub.drop_next(99),
    "slow": lambda hub: hub.delay_next(5, 2),
    "malformed": lambda hub: hub.malformed_next(9, body=f"{{{TOKEN}"),
    "html": lambda hub: hub.malformed_next(
        9, body=f"<html>{TOKEN}</html>", content_type="text/html"
    ),
    "wrong-shape": lambda hub: hub.malformed_next(9, body=f'{{"{TOKEN}": 1, "orgs": 2}}'),
    "redirect-away": lambda hub: hub.redirect_next(f"http://localhost:9/{TOKEN}?t={TOKEN}", 9),
}


@pytest.fixture
def hub(hub: FakeHub) -> FakeHub:
    """The shared FakeHub (conftest), set up for this module."""
    hub.add_token(TOKEN, FakeUser(name="ada", token_name="laptop"))
    hub.add_token(OTHER, FakeUser(name="bob", token_name="desktop"))
    return hub


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_no_token_in_any_result(
    fault: str, hub: FakeHub, hf_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes: list[object] = []
    # One attempt and short timeouts: retries are test_faults' subject, not this one's.
    async with HubAuth(
        endpoint=hub.url, hf_home=hf_home, max_attempts=1, timeout=0.3, read_env=False
    ) as auth:
        # A login to list, switch and log out of, made before the fault is armed.
        outcomes.append(await auth.login(OTHER))
        FAULTS[fault](hub)
        outcomes.append(await auth.get_token())
        outcomes.append(await auth.set_token(TOKEN))
        outcomes.append(await auth.get_token())
        outcomes.append(await auth.whoami())
        outcomes.append(await auth.whoami(UNKNOWN))
        outcomes.append(await auth.whoami(SecretStr(OTHER)))
        outcomes.append(await auth.validate_token(TOKEN))
        outcomes.append(await auth.validate_token(UNKNOWN))
        outcomes.append(await auth.validate_token(TOKEN + "\r\nX-Evil: 1", remote=False))
        outcomes.append(await auth.login(TOKEN))
        outcomes.append(await auth.login(UNKNOWN))
        outcomes.append(await auth.list_tokens())
        outcomes.append(await auth.switch_token("desktop"))
        outcomes.append(await auth.switch_token("nope"))
        outcomes.append(await auth.logout("laptop"))
        outcomes.append(await auth.logout())
        outcomes.append(await auth.auth_headers(TOKEN + "\n"))
        outcomes.append(auth)
        outcomes.append(auth.store)
    for index, outcome in enumerate(outcomes):
        _assert_clean(f"{fault} #{index}", outcome)
        if isinstance(outcome, Err):
            assert isinstance(outcome.error, HubAuthError)
            with pytest.raises(HubAuthError) as raised:
                outcome.unwrap()
            _assert_clean(f"{fault} #{index} raised", raised.value, *raised.value.args)
    _assert_clean(f"{fault} logs", caplog.text, *(r.getMessage() for r in caplog.records))


async def test_auth_headers_is_the_one_result_that_holds_the_token(hf_home: Path) -> None:
    # Its whole point is to hand the token over; everything else masks it.
    async with HubAuth(endpoint="https://hub.example", token=TOKEN, read_env=False) as auth:
        assert await auth.auth_headers() == Ok([("authorization", f"Bearer {TOKEN}")])


@pytest.mark.parametrize(
    "misuse",
    [
        lambda: HubAuth(token=TOKEN + "\n", read_env=False),
        lambda: HubAuth(token=TOKEN + " " + OTHER, read_env=False),
        lambda: HubAuth(token="api_org_" + TOKEN, read_env=False),
        lambda: HubAuth(token=TOKEN, pool_limit=0, read_env=False),
    ],
)
def test_no_token_in_raised_exceptions(misuse: Callable[[], object]) -> None:
    with pytest.raises((ValueError, TypeError)) as raised:
        misuse()
    message = str(raised.value)
    assert TOKEN not in message
    assert OTHER not in message


@pytest.fixture
def junk_token_file(hf_home: Path) -> Path:
    hf_home.mkdir(parents=True)
    (hf_home / "token").write_text(f"{TOKEN}\x00{OTHER}")
    return hf_home


async def test_no_token_in_error_from_a_token_file_with_junk(junk_token_file: Path) -> None:
    async with HubAuth(endpoint="https://hub.example", hf_home=junk_token_file) as auth:
        outcome = await auth.whoami()
    assert isinstance(outcome, Err)
    assert outcome.error.kind is ErrorKind.INVALID_TOKEN
    _assert_clean("token file", outcome)


# -- the masking filter ------------------------------------------------------------------------


@pytest.fixture
def hub_auth_records() -> Iterator[list[logging.LogRecord]]:
    """Records as a handler on the ``hub_auth`` logger receives them (after its filters)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("hub_auth")
    handler = Keep(logging.DEBUG)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield records
    logger.setLevel(previous)
    logger.removeHandler(handler)


def _formatted(record: logging.LogRecord) -> str:
    return logging.Formatter("%(message)s").format(record)


@pytest.mark.parametrize(
    ("message", "args"),
    [
        (f"token {TOKEN} in the message", ()),
        ("token %s in the arguments", (TOKEN,)),
        ("token %r in a repr", (TOKEN,)),
        ("tokens %s and %s", (TOKEN, OTHER)),
        ("mapping %(token)s", ({"token": TOKEN},)),
        ("a list %s", ([TOKEN, {"nested": OTHER}],)),
        ("a bad format string %d", (TOKEN,)),
        ("too few arguments %s %s", (TOKEN,)),
    ],
)
def test_filter_masks_message_and_arguments(
    message: str, args: tuple[object, ...], hub_auth_records: list[logging.LogRecord]
) -> None:
    logging.getLogger("hub_auth").warning(message, *args)
    (record,) = hub_auth_records
    text = _formatted(record)
    assert TOKEN not in text
    assert OTHER not in text
    assert mask_token(TOKEN) in text
    assert record.args is None


def test_filter_masks_tracebacks_and_stacks(hub_auth_records: list[logging.LogRecord]) -> None:
    logger = logging.getLogger("hub_auth")
    try:
        raise RuntimeError(f"the Hub echoed {TOKEN}")
    except RuntimeError:
        logger.exception("call failed")
    logger.debug("here", stack_info=True, extra={"note": "x"})
    traceback_record, stack_record = hub_auth_records
    assert TOKEN not in _formatted(traceback_record)
    assert "RuntimeError: the Hub echoed hf_****" in _formatted(traceback_record)
    assert stack_record.stack_info is not None


def test_filter_keeps_ordinary_messages(hub_auth_records: list[logging.LogRecord]) -> None:
    logging.getLogger("hub_auth").info("retrying in %.1fs (attempt %d of %d)", 0.25, 2, 3)
    assert _formatted(hub_auth_records[0]) == "retrying in 0.2s (attempt 2 of 3)"


def test_filter_is_installed_once_on_the_package_logger() -> None:
    logger = logging.getLogger("hub_auth")
    masking = [f for f in logger.filters if isinstance(f, TokenMaskingFilter)]
    assert len(masking) == 1
    assert install() is masking[0]
    assert len([f for f in logger.filters if isinstance(f, TokenMaskingFilter)]) == 1


def test_install_on_a_child_logger(caplog: pytest.LogCaptureFixture) -> None:
    # Python does not apply a parent logger's filters to its children's records.
    child = logging.getLogger("hub_auth.test_child")
    masking = install(child)
    try:
        with caplog.at_level(logging.INFO):
            child.info("child %s", TOKEN)
        assert TOKEN not in caplog.text
        assert mask_token(TOKEN) in caplog.text
    finally:
        child.removeFilter(masking)


# -- the suite-wide guard catches leaks --------------------------------------------------------

LEAKY_TESTS = """
import logging
import sys

import click
import pytest
from click.testing import CliRunner

from hub_auth.testing import FakeHub

TOKEN = "hf_" + "Ab1" * 10
ODD = "hf_jwt_eyJhbGciOi.eyJzdWIi-c2ln"


def test_clean_passes():
    logging.getLogger("app").warning("token hf_****Ab1 refused")
    print("hf_****Ab1")


def test_log_message_leaks():
    logging.getLogger("app").warning("token " + TOKEN)


def test_debug_argument_leaks():
    logging.getLogger("app").debug("token %s", TOKEN)


def test_extra_leaks():
    logging.getLogger("app").info("login", extra={"auth": TOKEN})


def test_traceback_leaks():
    try:
        raise ValueError(TOKEN)
    except ValueError:
        logging.getLogger("app").exception("failed")


def test_stdout_leaks():
    print(TOKEN)


def test_stderr_leaks():
    sys.stderr.write(TOKEN + "\\n")


@pytest.mark.prints_token
def test_marked_may_print():
    print(TOKEN)


@pytest.mark.prints_token
def test_marked_still_checks_logs():
    print(TOKEN)
    logging.getLogger("app").error(TOKEN)


def test_registered_token_of_any_shape_leaks():
    FakeHub().add_token(ODD)
    print("using", ODD)


def test_package_logger_masks():
    import hub_auth._logging  # noqa: F401

    logging.getLogger("hub_auth").warning("token %s", TOKEN)


def test_already_failing_keeps_failing():
    print(TOKEN)
    assert False


@click.command()
@click.argument("what")
def echo(what):
    click.echo(TOKEN if what == "token" else "hf_****Ab1")


def test_cli_output_leaks():
    assert CliRunner().invoke(echo, ["token"]).exit_code == 0


def test_cli_output_clean():
    assert CliRunner().invoke(echo, ["masked"]).exit_code == 0


@pytest.mark.prints_token
def test_cli_marked_may_print():
    assert TOKEN in CliRunner().invoke(echo, ["token"]).output


@pytest.fixture
def leaks_at_teardown():
    yield
    logging.getLogger("app").warning(TOKEN)


def test_teardown_leak(leaks_at_teardown):
    pass
"""


@pytest.mark.prints_token  # the inner run's output, leaked tokens included, is printed here
def test_guard_fails_the_tests_that_leak(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    # In-process, the inner tests' records would reach this test's own recorder too.
    with secret_guard.paused(request.node):
        result = pytester.runpytest_inprocess(
            "-p", "tests.secret_guard", "-p", "no:asyncio", "-p", "no:cacheprovider", "-rA"
        )
    outcomes = {
        (line.split(" ", 1)[0], line.split(" ", 2)[1].split("::")[-1])
        for line in result.outlines
        if line.startswith(
            ("PASSED test_leaky.py::", "FAILED test_leaky.py::", "ERROR test_leaky.py::")
        )
    }
    assert outcomes == {
        ("PASSED", "test_clean_passes"),
        ("FAILED", "test_log_message_leaks"),
        ("FAILED", "test_debug_argument_leaks"),
        ("FAILED", "test_extra_leaks"),
        ("FAILED", "test_traceback_leaks"),
        ("FAILED", "test_stdout_leaks"),
        ("FAILED", "test_stderr_leaks"),
        ("PASSED", "test_marked_may_print"),
        ("FAILED", "test_marked_still_checks_logs"),
        ("FAILED", "test_registered_token_of_any_shape_leaks"),
        ("PASSED", "test_package_logger_masks"),
        ("FAILED", "test_already_failing_keeps_failing"),
        ("FAILED", "test_cli_output_leaks"),
        ("PASSED", "test_cli_output_clean"),
        ("PASSED", "test_cli_marked_may_print"),
        # Passes its call, then fails at teardown.
        ("PASSED", "test_teardown_leak"),
        ("ERROR", "test_teardown_leak"),
    }
    text = result.stdout.str()
    assert "secret guard: a token leaked during this test" in text
    assert "Captured stdout call: hf_****1Ab1" in text
    assert "log record app:WARNING (teardown)" in text
    assert "CLI output of token (call): hf_****1Ab1" in text
    assert "hf_****c2ln" in text  # the registered token, masked in the guard's own message
