"""TokenStore against real files, real processes and the real huggingface_hub."""

from __future__ import annotations

import configparser
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from filelock import FileLock

from hub_auth import LogoutInfo
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._login.store import TokenStore
from hub_auth._result import Err, Ok

ROOT = Path(__file__).resolve().parents[1]
TOKEN_A = "hf_" + "a" * 30 + "AAAA"
TOKEN_B = "hf_" + "b" * 30 + "BBBB"
TOKEN_C = "hf_" + "c" * 30 + "CCCC"
SECRET = "hf_SECRETSECRETSECRET9876"
FAR_FUTURE = 4_102_444_800  # 2100-01-01: huggingface_hub must not try to refresh


def _modes_are_enforced() -> bool:
    """False for root (or CAP_DAC_OVERRIDE), where a mode-0 file can still be read."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            probe.read_text()
        except PermissionError:
            return True
        finally:
            probe.chmod(0o600)
    return False


MODES_IGNORED = not _modes_are_enforced()


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "hf" / "token")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def storage_error(result: object) -> str:
    assert isinstance(result, Err), result
    error = result.error
    assert isinstance(error, HubAuthError)
    assert error.kind is ErrorKind.STORAGE, error
    return error.message


def temp_leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".hub-auth-tmp"))


def child_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_OIDC_RESOURCE",
            "HF_OIDC_ID_TOKEN",
            "HF_HOME",
        }
    }
    env["PYTHONPATH"] = str(ROOT)
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.update(extra)
    return env


def run_python(code: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_hf(hf_home: Path, code: str) -> object:
    """Run ``code`` in a fresh interpreter whose huggingface_hub sees ``hf_home``; return JSON."""
    return json.loads(run_python(code, HF_HOME=str(hf_home)))


# -- reading the token file ------------------------------------------------------------------


def test_read_active_missing_file_and_missing_folder(tmp_path: Path) -> None:
    assert TokenStore(tmp_path / "token").read_active() == Ok(None)
    assert TokenStore(tmp_path / "no" / "such" / "token").read_active() == Ok(None)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (TOKEN_A, TOKEN_A),
        (f"  {TOKEN_A}\r\n", TOKEN_A),
        ("", None),
        (" \n\n", None),
    ],
)
def test_read_active_cleans_like_huggingface_hub(
    store: TokenStore, content: str, expected: str | None
) -> None:
    store.token_path.parent.mkdir()
    store.token_path.write_text(content)
    assert store.read_active() == Ok(expected)


def test_read_active_directory_in_place_of_file(store: TokenStore) -> None:
    store.token_path.mkdir(parents=True)
    message = storage_error(store.read_active())
    assert str(store.token_path) in message
    assert "directory" in message.lower()


def test_read_active_not_utf8(store: TokenStore) -> None:
    store.token_path.parent.mkdir()
    store.token_path.write_bytes(b"hf_\xff\xfe")
    assert "UTF-8" in storage_error(store.read_active())


@pytest.mark.skipif(MODES_IGNORED, reason="root reads files whatever their mode")
def test_read_active_permission_denied(store: TokenStore) -> None:
    store.token_path.parent.mkdir()
    store.token_path.write_text(TOKEN_A)
    store.token_path.chmod(0)
    try:
        message = storage_error(store.read_active())
    finally:
        store.token_path.chmod(0o600)
    assert "Permission denied" in message
    assert TOKEN_A not in message


def test_read_active_does_not_wait_for_the_lock(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    with FileLock(store.lock_path):
        started = time.monotonic()
        assert store.read_active() == Ok(TOKEN_A)
        assert store.read_entries().is_ok()
    assert time.monotonic() - started < 1


# -- round trips and format ------------------------------------------------------------------


def test_paths(tmp_path: Path) -> None:
    store = TokenStore(str(tmp_path / "custom" / "my_token"))
    assert store.token_path == tmp_path / "custom" / "my_token"
    assert store.stored_tokens_path == tmp_path / "custom" / "stored_tokens"
    assert store.lock_path == tmp_path / "custom" / "stored_tokens.lock"


def test_save_round_trip_and_exact_bytes(store: TokenStore) -> None:
    assert store.save("laptop", TOKEN_A) == Ok(None)
    assert store.token_path.read_bytes() == TOKEN_A.encode()  # raw, no newline
    assert store.stored_tokens_path.read_text() == f"[laptop]\nhf_token = {TOKEN_A}\n\n"
    assert store.read_active() == Ok(TOKEN_A)
    assert store.read_entries() == Ok({"laptop": {"hf_token": TOKEN_A}})
    assert store.get_token_by_name("laptop") == Ok(TOKEN_A)


def test_save_without_activate_leaves_the_token_file(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    assert store.save("b", TOKEN_B, activate=False) == Ok(None)
    assert store.read_active() == Ok(TOKEN_A)
    assert store.get_token_by_name("b") == Ok(TOKEN_B)


def test_sections_are_written_sorted(store: TokenStore) -> None:
    for name, token in [("zeta", TOKEN_A), ("alpha", TOKEN_B), ("Mid", TOKEN_C)]:
        assert store.save(name, token, activate=False) == Ok(None)
    headers = [line for line in store.stored_tokens_path.read_text().splitlines() if "[" in line]
    assert headers == ["[Mid]", "[alpha]", "[zeta]"]


def test_unknown_keys_survive_a_rewrite_of_another_section(store: TokenStore) -> None:
    store.token_path.parent.mkdir()
    oauth_section = (
        "[oauth-alice]\n"
        f"hf_token = {TOKEN_A}\n"
        "refresh_token = hf_oauth_refresh%value\n"
        f"expires_at = {FAR_FUTURE}\n"
        "foo = bar baz\n"
        "\n"
    )
    store.stored_tokens_path.write_text(oauth_section)
    assert store.save("work", TOKEN_B) == Ok(None)
    assert store.read_entries() == Ok(
        {
            "oauth-alice": {
                "hf_token": TOKEN_A,
                "refresh_token": "hf_oauth_refresh%value",
                "expires_at": str(FAR_FUTURE),
                "foo": "bar baz",
            },
            "work": {"hf_token": TOKEN_B},
        }
    )
    assert store.stored_tokens_path.read_text() == oauth_section + (
        f"[work]\nhf_token = {TOKEN_B}\n\n"
    )


def test_save_replaces_the_whole_section(store: TokenStore) -> None:
    extra = {"refresh_token": "r1", "expires_at": "100"}
    assert store.save("a", TOKEN_A, extra=extra) == Ok(None)
    assert store.read_entries() == Ok({"a": {"hf_token": TOKEN_A, **extra}})
    assert store.save("a", TOKEN_B) == Ok(None)
    assert store.read_entries() == Ok({"a": {"hf_token": TOKEN_B}})


def test_percent_signs_stay_percent_signs(store: TokenStore) -> None:
    token = "hf_ab%cd%%ef%(home)s"
    extra = {"refresh_token": "%(x)s%"}
    assert store.save("100%", token, extra=extra) == Ok(None)
    assert store.read_entries() == Ok({"100%": {"hf_token": token, **extra}})
    assert store.read_active() == Ok(token)
    assert f"hf_token = {token}\n" in store.stored_tokens_path.read_text()


@pytest.mark.parametrize(
    "name",
    ["équipe-🤗", "名前", "a]b", "[x]", " spaced ", "#hash", ";semi", "a = b", "k: v", "x%y"],
)
def test_unusual_names_round_trip(store: TokenStore, name: str) -> None:
    assert store.save("plain", TOKEN_A) == Ok(None)
    assert store.save(name, TOKEN_B) == Ok(None)
    assert store.get_token_by_name(name) == Ok(TOKEN_B)
    assert store.read_entries() == Ok({"plain": {"hf_token": TOKEN_A}, name: {"hf_token": TOKEN_B}})
    store.stored_tokens_path.read_bytes().decode("utf-8")  # written as UTF-8


@pytest.mark.parametrize("name", ["", "DEFAULT", "a\nb", "a\rb"])
def test_names_the_ini_format_cannot_hold(store: TokenStore, name: str) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    before = store.stored_tokens_path.read_bytes()
    message = storage_error(store.save(name, TOKEN_B))
    assert TOKEN_B not in message
    assert store.stored_tokens_path.read_bytes() == before
    assert store.read_active() == Ok(TOKEN_A)


@pytest.mark.parametrize("token", ["", f" {TOKEN_A}", f"{TOKEN_A}\n", "hf_a\nb", "hf_\x00abcdef"])
def test_save_refuses_tokens_that_would_not_read_back(store: TokenStore, token: str) -> None:
    with pytest.raises(ValueError, match="token") as caught:
        store.save("a", token)
    assert TOKEN_A not in str(caught.value)
    assert not store.stored_tokens_path.exists()


@pytest.mark.parametrize(
    "extra",
    [{"hf_token": "x"}, {"Upper": "x"}, {"a b": "x"}, {"a=b": "x"}, {"ok": "two\nlines"}],
)
def test_save_refuses_bad_extra_keys(store: TokenStore, extra: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="extra key"):
        store.save("a", TOKEN_A, extra=extra)


# -- listing, switching, removing ------------------------------------------------------------


def test_list_tokens(store: TokenStore) -> None:
    store.token_path.parent.mkdir()
    store.stored_tokens_path.write_text(
        f"[b]\nhf_token = {TOKEN_B}\nexpires_at = {FAR_FUTURE}\n\n"
        f"[a]\nhf_token = {TOKEN_A}\nexpires_at = soon\n\n"
        "[empty]\nfoo = 1\n\n"
    )
    store.token_path.write_text(TOKEN_B + "\n")
    result = store.list_tokens()
    assert isinstance(result, Ok)
    tokens = result.value
    assert [t.name for t in tokens] == ["a", "b", "empty"]
    assert [t.active for t in tokens] == [False, True, False]
    assert [t.masked_token for t in tokens] == ["hf_****AAAA", "hf_****BBBB", "<not set>"]
    assert tokens[0].expires_at is None
    assert tokens[1].expires_at == datetime(2100, 1, 1, tzinfo=UTC)
    assert TOKEN_A not in repr(result)
    assert TOKEN_B not in repr(result)


def test_list_tokens_empty_and_without_active(store: TokenStore) -> None:
    assert store.list_tokens() == Ok([])
    assert store.save("a", TOKEN_A, activate=False) == Ok(None)
    result = store.list_tokens()
    assert isinstance(result, Ok)
    assert [t.active for t in result.value] == [False]


def test_get_token_by_name_unknown(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    result = store.get_token_by_name("nope")
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.NOT_FOUND
    assert "nope" in result.error.message


def test_activate(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    assert store.save("b", TOKEN_B, activate=False) == Ok(None)
    assert store.activate("b") == Ok(TOKEN_B)
    assert store.token_path.read_bytes() == TOKEN_B.encode()
    missing = store.activate("nope")
    assert isinstance(missing, Err)
    assert missing.error.kind is ErrorKind.NOT_FOUND
    assert store.read_active() == Ok(TOKEN_B)


def test_a_symlink_inside_the_login_folder_is_written_through(store: TokenStore) -> None:
    folder = store.token_path.parent
    (folder / "profiles").mkdir(parents=True)
    real = folder / "profiles" / "work-token"
    real.write_text(TOKEN_A)
    store.token_path.symlink_to(Path("profiles") / "work-token")
    assert store.save("b", TOKEN_B) == Ok(None)
    assert store.token_path.is_symlink()
    assert real.read_text() == TOKEN_B
    assert mode(real) == 0o600


def test_remove_everything(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    assert store.save("b", TOKEN_B) == Ok(None)
    result = store.remove()
    assert result == Ok(LogoutInfo(removed=("a", "b"), removed_active=True))
    assert not store.token_path.exists()
    assert not store.stored_tokens_path.exists()
    assert TOKEN_A not in repr(result)
    assert TOKEN_B not in repr(result)
    assert isinstance(result, Ok)
    assert result.value.removed_tokens == (TOKEN_A, TOKEN_B)
    # Nothing left to remove is not an error.
    assert store.remove() == Ok(LogoutInfo(removed=(), removed_active=False))


def test_remove_everything_also_clears_a_corrupt_file(store: TokenStore) -> None:
    store.token_path.parent.mkdir()
    store.stored_tokens_path.write_bytes(b"\xff\xfe not ini")
    store.token_path.write_text(TOKEN_A)
    outcome = store.remove()
    assert outcome == Ok(LogoutInfo(removed=(), removed_active=True))
    assert outcome.unwrap().removed_tokens == (TOKEN_A,)
    assert not store.stored_tokens_path.exists()
    assert not store.token_path.exists()


def test_remove_the_active_entry_deletes_the_token_file(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A, activate=False) == Ok(None)
    assert store.save("b", TOKEN_B) == Ok(None)
    result = store.remove("b")
    assert result == Ok(LogoutInfo(removed=("b",), removed_active=True))
    assert result.unwrap().removed_tokens == (TOKEN_B,)
    assert TOKEN_B not in repr(result)
    assert not store.token_path.exists()
    assert store.read_entries() == Ok({"a": {"hf_token": TOKEN_A}})


def test_remove_another_entry_keeps_the_token_file(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A, activate=False) == Ok(None)
    assert store.save("b", TOKEN_B) == Ok(None)
    removed = store.remove("a")
    assert removed == Ok(LogoutInfo(removed=("a",), removed_active=False))
    assert removed.unwrap().removed_tokens == (TOKEN_A,)
    assert store.read_active() == Ok(TOKEN_B)
    assert store.remove("b").is_ok()
    assert store.stored_tokens_path.read_text() == ""


def test_remove_unknown_name(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    before = store.stored_tokens_path.read_bytes()
    result = store.remove("nope")
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.NOT_FOUND
    assert store.stored_tokens_path.read_bytes() == before
    assert store.read_active() == Ok(TOKEN_A)


def test_repr_shows_paths_only(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    assert "token" in repr(store)
    assert TOKEN_A not in repr(store)


# -- file modes ------------------------------------------------------------------------------


def test_new_folder_and_files_are_private(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "deep" / "er" / "hf" / "token")
    assert store.save("a", TOKEN_A) == Ok(None)
    for folder in (tmp_path / "deep", tmp_path / "deep" / "er", store.token_path.parent):
        assert mode(folder) == 0o700, folder
    assert mode(store.token_path) == 0o600
    assert mode(store.stored_tokens_path) == 0o600


def test_wider_file_modes_are_narrowed_and_an_existing_folder_keeps_its_mode(
    store: TokenStore,
) -> None:
    folder = store.token_path.parent
    folder.mkdir()
    folder.chmod(0o755)
    for path in (store.token_path, store.stored_tokens_path):
        path.write_text("")
        path.chmod(0o644)
    assert store.save("a", TOKEN_A) == Ok(None)
    assert mode(folder) == 0o755
    assert mode(store.token_path) == 0o600
    assert mode(store.stored_tokens_path) == 0o600


@pytest.mark.parametrize("umask", [0o000, 0o002, 0o077])
def test_modes_do_not_depend_on_the_umask(store: TokenStore, umask: int) -> None:
    previous = os.umask(umask)
    try:
        assert store.save("a", TOKEN_A) == Ok(None)
    finally:
        os.umask(previous)
    assert mode(store.token_path) == 0o600
    assert mode(store.stored_tokens_path) == 0o600
    assert mode(store.token_path.parent) == 0o700


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_new_parent_folders_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    store = TokenStore(tmp_path / "a" / "b" / "hf" / "token")
    previous = os.umask(umask)
    try:
        assert store.save("a", TOKEN_A) == Ok(None)
    finally:
        os.umask(previous)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "hf"):
        assert mode(folder) == 0o700, folder


# -- corrupt and unreadable files ------------------------------------------------------------

CORRUPT = {
    "garbage": b"\x00\x01\x02garbage\xff\xfe\x00",
    "no section header": f"hf_token = {SECRET}\n".encode(),
    "stray line": f"[a]\nhf_token = {TOKEN_A}\n{SECRET}\n".encode(),
    "not utf-8": f"[caf\xe9]\nhf_token = {SECRET}\n".encode("latin-1"),
    "duplicate section": f"[a]\nhf_token = {SECRET}\n[a]\nhf_token = {SECRET}\n".encode(),
    "duplicate key": f"[a]\nhf_token = {SECRET}\nhf_token = {SECRET}\n".encode(),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_file_is_reported_and_never_overwritten(store: TokenStore, content: bytes) -> None:
    store.token_path.parent.mkdir()
    store.stored_tokens_path.write_bytes(content)
    store.token_path.write_text(TOKEN_C)

    messages = [
        storage_error(store.read_entries()),
        storage_error(store.list_tokens()),
        storage_error(store.get_token_by_name("a")),
        storage_error(store.save("new", TOKEN_B)),
        storage_error(store.activate("a")),
        storage_error(store.remove("a")),
    ]
    for message in messages:
        assert str(store.stored_tokens_path) in message
        for secret in (SECRET, TOKEN_A, TOKEN_B):
            assert secret not in message
    assert store.stored_tokens_path.read_bytes() == content
    assert store.token_path.read_text() == TOKEN_C  # save did not go on to activate
    assert temp_leftovers(store.token_path.parent) == []


def test_corrupt_file_message_names_the_line(store: TokenStore) -> None:
    store.token_path.parent.mkdir()
    store.stored_tokens_path.write_bytes(CORRUPT["stray line"])
    assert "line 3" in storage_error(store.read_entries())


def test_section_without_hf_token_is_returned_as_is(store: TokenStore) -> None:
    store.token_path.parent.mkdir()
    store.stored_tokens_path.write_text("[odd]\nfoo = bar\n")
    assert store.read_entries() == Ok({"odd": {"foo": "bar"}})
    result = store.get_token_by_name("odd")
    assert isinstance(result, Err)
    assert result.error.kind is ErrorKind.NOT_FOUND
    assert store.save("a", TOKEN_A) == Ok(None)
    assert store.read_entries() == Ok({"a": {"hf_token": TOKEN_A}, "odd": {"foo": "bar"}})


def test_stored_tokens_is_a_directory(store: TokenStore) -> None:
    store.stored_tokens_path.mkdir(parents=True)
    assert "directory" in storage_error(store.read_entries()).lower()
    storage_error(store.save("a", TOKEN_A))
    assert not store.token_path.exists()


def test_folder_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "hf"
    blocker.write_text("not a folder")
    store = TokenStore(blocker / "token")
    assert str(blocker) in storage_error(store.save("a", TOKEN_A))
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(MODES_IGNORED, reason="root writes whatever the folder's mode")
def test_read_only_folder(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    before = store.stored_tokens_path.read_bytes()
    store.token_path.parent.chmod(0o500)
    try:
        message = storage_error(store.save("b", TOKEN_B))
    finally:
        store.token_path.parent.chmod(0o700)
    assert "Permission denied" in message
    assert store.stored_tokens_path.read_bytes() == before


@pytest.mark.skipif(MODES_IGNORED, reason="root reads whatever the file's mode")
def test_unreadable_stored_tokens(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    store.stored_tokens_path.chmod(0)
    try:
        assert "Permission denied" in storage_error(store.read_entries())
        storage_error(store.save("b", TOKEN_B))
    finally:
        store.stored_tokens_path.chmod(0o600)
    assert store.read_entries() == Ok({"a": {"hf_token": TOKEN_A}})


def test_disk_full_keeps_the_old_file(store: TokenStore) -> None:
    """A real write failure: the child's file size limit makes the kernel refuse the write."""
    assert store.save("a", TOKEN_A) == Ok(None)
    before = store.stored_tokens_path.read_bytes()
    out = run_python(
        f"""
        import resource, signal
        from hub_auth._login.store import TokenStore
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + 10}, {len(before) + 10}))
        result = TokenStore({str(store.token_path)!r}).save("big", "hf_" + "x" * 4000)
        print(result.error.kind.value, result.error.message, sep="|")
        """
    )
    kind, message = out.strip().split("|")
    assert kind == "storage"
    assert str(store.stored_tokens_path) in message
    assert "too large" in message.lower()
    assert "hf_xxxx" not in message
    assert store.stored_tokens_path.read_bytes() == before
    assert store.read_active() == Ok(TOKEN_A)
    assert temp_leftovers(store.token_path.parent) == []


def test_lock_timeout(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    before = store.stored_tokens_path.read_bytes()
    impatient = TokenStore(store.token_path, lock_timeout=0.2)
    with FileLock(store.lock_path):
        message = storage_error(impatient.save("b", TOKEN_B))
    assert str(store.lock_path) in message
    assert store.stored_tokens_path.read_bytes() == before
    assert impatient.save("b", TOKEN_B) == Ok(None)


# -- concurrency and crashes -----------------------------------------------------------------


def test_threads_saving_at_once_lose_nothing(store: TokenStore) -> None:
    barrier = threading.Barrier(8)
    results: list[object] = []

    def save(index: int) -> None:
        barrier.wait()
        for round_ in range(5):
            results.append(store.save(f"t{index}-{round_}", f"hf_thread{index}x{round_}xxxxx"))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [Ok(None)] * 40
    entries = store.read_entries()
    assert isinstance(entries, Ok)
    assert len(entries.value) == 40


def test_processes_saving_at_once_lose_nothing(store: TokenStore, tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = textwrap.dedent(
        """
        import os, sys, time
        from hub_auth._login.store import TokenStore
        store = TokenStore(sys.argv[1])
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.005)
        for round_ in range(5):
            name = f"p{sys.argv[3]}-{round_}"
            result = store.save(name, f"hf_{name.replace('-', 'x')}xxxxxxxx")
            assert result.is_ok(), result
        """
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(store.token_path), str(go), str(index)],
            env=child_env(),
        )
        for index in range(8)
    ]
    time.sleep(0.3)  # let the interpreters start, so the saves really overlap
    go.touch()
    assert [child.wait(timeout=60) for child in children] == [0] * 8

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(store.stored_tokens_path.read_text(encoding="utf-8"))
    expected = {f"p{index}-{round_}" for index in range(8) for round_ in range(5)}
    assert set(parser.sections()) == expected
    assert parser.sections() == sorted(expected)
    assert temp_leftovers(store.token_path.parent) == []


CRASHING_WRITER = """
import os, sys, time
from hub_auth._login.store import TokenStore

def stall(fd):
    # The temporary file is fully written; the rename has not happened yet.
    print("stalled", flush=True)
    time.sleep(120)

os.fsync = stall
TokenStore(sys.argv[1]).save("new", "hf_newnewnewnewnewnew", activate=sys.argv[2] == "1")
"""


@pytest.mark.parametrize("activate", [False, True])
def test_killed_writer_leaves_the_old_files_and_no_stale_lock(
    store: TokenStore, activate: bool
) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    before = store.stored_tokens_path.read_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(store.token_path), "1" if activate else "0"],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "stalled"
        assert temp_leftovers(store.token_path.parent) != []  # the child is mid-write
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()

    assert store.stored_tokens_path.read_bytes() == before
    assert store.read_active() == Ok(TOKEN_A)
    # The dead child's lock went with it, and its temporary file is swept by the next writer.
    started = time.monotonic()
    assert TokenStore(store.token_path, lock_timeout=5).save("b", TOKEN_B) == Ok(None)
    assert time.monotonic() - started < 5
    assert temp_leftovers(store.token_path.parent) == []
    assert store.read_entries() == Ok({"a": {"hf_token": TOKEN_A}, "b": {"hf_token": TOKEN_B}})


def test_importing_the_store_stays_light() -> None:
    out = run_python(
        """
        import sys
        import hub_auth._login.store
        print(sorted(m for m in ("aiohttp", "anyio", "pydantic") if m in sys.modules))
        """
    )
    assert out.strip() == "[]"


# -- interoperability with huggingface_hub ---------------------------------------------------


def test_huggingface_hub_reads_what_we_write(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf"
    store = TokenStore(hf_home / "token")
    assert store.save("équipe-🤗", "hf_per%cent%(x)sxxxx", activate=False) == Ok(None)
    assert store.save("work", TOKEN_A) == Ok(None)
    seen = run_hf(
        hf_home,
        """
        import json
        from huggingface_hub import get_token
        from huggingface_hub.utils import get_stored_tokens
        print(json.dumps({"active": get_token(), "stored": get_stored_tokens()}))
        """,
    )
    assert seen == {
        "active": TOKEN_A,
        "stored": {"équipe-🤗": "hf_per%cent%(x)sxxxx", "work": TOKEN_A},
    }


def test_we_read_what_huggingface_hub_writes(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf"
    run_hf(
        hf_home,
        f"""
        from huggingface_hub._login import _set_active_token
        from huggingface_hub.utils._auth import _save_token
        _save_token({TOKEN_A!r}, "first")
        _save_token({TOKEN_B!r}, "oauth-bob", refresh_token="hf_oauth_r", expires_at={FAR_FUTURE})
        _set_active_token("oauth-bob", False)
        print("null")
        """,
    )
    store = TokenStore(hf_home / "token")
    assert store.read_active() == Ok(TOKEN_B)
    assert store.read_entries() == Ok(
        {
            "first": {"hf_token": TOKEN_A},
            "oauth-bob": {
                "hf_token": TOKEN_B,
                "refresh_token": "hf_oauth_r",
                "expires_at": str(FAR_FUTURE),
            },
        }
    )
    listed = store.list_tokens()
    assert isinstance(listed, Ok)
    assert [(t.name, t.active) for t in listed.value] == [("first", False), ("oauth-bob", True)]
    assert listed.value[1].expires_at == datetime(2100, 1, 1, tzinfo=UTC)


def test_our_save_keeps_huggingface_hub_oauth_fields(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf"
    run_hf(
        hf_home,
        f"""
        from huggingface_hub._login import _set_active_token
        from huggingface_hub.utils._auth import _save_token
        _save_token({TOKEN_B!r}, "oauth-bob", refresh_token="hf_oauth_r", expires_at={FAR_FUTURE})
        _set_active_token("oauth-bob", False)
        print("null")
        """,
    )
    assert TokenStore(hf_home / "token").save("laptop", TOKEN_A, activate=False) == Ok(None)
    seen = run_hf(
        hf_home,
        """
        import json
        from huggingface_hub import get_token
        from huggingface_hub.utils._auth import _read_stored_tokens_full
        print(json.dumps({"active": get_token(), "full": _read_stored_tokens_full()}))
        """,
    )
    assert seen == {
        "active": TOKEN_B,
        "full": {
            "laptop": {"hf_token": TOKEN_A},
            "oauth-bob": {
                "hf_token": TOKEN_B,
                "refresh_token": "hf_oauth_r",
                "expires_at": str(FAR_FUTURE),
            },
        },
    }


def test_files_are_byte_identical_to_huggingface_hub(tmp_path: Path) -> None:
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    run_hf(
        theirs,
        f"""
        from huggingface_hub._login import _set_active_token
        from huggingface_hub.utils._auth import _save_token
        _save_token({TOKEN_B!r}, "zeta", refresh_token="hf_r%1", expires_at=1700000000)
        _save_token({TOKEN_A!r}, "alpha")
        _save_token({TOKEN_C!r}, "名前")
        _set_active_token("alpha", False)
        print("null")
        """,
    )
    store = TokenStore(ours / "token")
    extra = {"refresh_token": "hf_r%1", "expires_at": "1700000000"}
    assert store.save("名前", TOKEN_C, activate=False) == Ok(None)
    assert store.save("zeta", TOKEN_B, activate=False, extra=extra) == Ok(None)
    assert store.save("alpha", TOKEN_A) == Ok(None)
    for name in ("token", "stored_tokens"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


def test_huggingface_hub_logout_of_our_entry(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf"
    store = TokenStore(hf_home / "token")
    assert store.save("a", TOKEN_A, activate=False) == Ok(None)
    assert store.save("b", TOKEN_B) == Ok(None)
    run_hf(
        hf_home,
        """
        from huggingface_hub import logout
        logout("b")
        print("null")
        """,
    )
    assert store.read_active() == Ok(None)
    assert store.read_entries() == Ok({"a": {"hf_token": TOKEN_A}})


def test_huggingface_hub_holds_the_same_lock(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf"
    store = TokenStore(hf_home / "token", lock_timeout=0.3)
    assert store.save("a", TOKEN_A) == Ok(None)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import time
                from huggingface_hub import constants
                from huggingface_hub.utils._fixes import WeakFileLock
                with WeakFileLock(constants.HF_STORED_TOKENS_PATH + ".lock"):
                    print("locked", flush=True)
                    time.sleep(120)
                """
            ),
        ],
        env=child_env(HF_HOME=str(hf_home)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert "lock" in storage_error(store.save("b", TOKEN_B))
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert store.save("b", TOKEN_B) == Ok(None)


def test_saving_never_changes_the_mode_of_a_sticky_or_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    TokenStore(shared / "token").save("a", TOKEN_A)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    home = tmp_path / "a-home"
    home.mkdir(mode=0o755)
    monkeypatch.setenv("HOME", str(home))
    TokenStore(home / "token").save("a", TOKEN_A)
    assert stat.S_IMODE(home.stat().st_mode) == 0o755


def test_a_default_section_is_kept_as_it_is(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "token")
    store.stored_tokens_path.write_text("[DEFAULT]\nnote = shared\n\n[a]\nhf_token = x\n")
    assert store.save("b", TOKEN_A).is_ok()
    entries = store.read_entries().unwrap()
    assert entries["DEFAULT"] == {"note": "shared"}
    assert "note" not in entries["a"]
    assert entries["b"] == {"hf_token": TOKEN_A}


def test_tokens_read_back_mask_themselves_in_repr(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "token")
    store.save("a", TOKEN_A)
    for result in (store.read_active(), store.get_token_by_name("a"), store.activate("a")):
        assert result.unwrap() == TOKEN_A
        assert TOKEN_A not in repr(result)
