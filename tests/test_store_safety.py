"""TokenStore against hostile or unusual login folders: symlinks, shared folders, huge files.

Real files in tmp_path throughout. The suite runs as root here, so the tests that need a file
of another user make one with chown (root may); they are skipped only where chown is refused.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from hub_auth import ErrorKind, HubAuth, Ok
from hub_auth._login.store import MAX_FILE_BYTES, TokenStore
from hub_auth._result import Err
from hub_auth.testing import FakeHub, FakeUser, make_token

TOKEN_A = "hf_" + "a" * 30 + "AAAA"
TOKEN_B = "hf_" + "b" * 30 + "BBBB"
OTHER_UID = 54321
BASHRC = "export PATH=$HOME/bin:$PATH\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def storage_error(result: object) -> str:
    assert isinstance(result, Err), result
    assert result.error.kind is ErrorKind.STORAGE, result.error
    return str(result.error)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hub_auth" and r.levelno >= logging.WARNING
    ]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "hf"
    made.mkdir(mode=0o700)
    return made


@pytest.fixture
def store(folder: Path) -> TokenStore:
    return TokenStore(folder / "token")


def chown_or_skip(path: Path, uid: int) -> None:
    try:
        os.chown(path, uid, -1, follow_symlinks=False)
    except PermissionError:
        pytest.skip("needs root to make a file of another user")


# -- symlinks ---------------------------------------------------------------------------------


def test_a_token_file_linked_to_a_file_outside_the_folder_is_replaced_not_written_through(
    store: TokenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.write_text(BASHRC)
    bashrc.chmod(0o644)
    store.token_path.symlink_to(bashrc)

    assert store.save("a", TOKEN_A) == Ok(None)

    assert bashrc.read_text() == BASHRC
    assert mode(bashrc) == 0o644
    assert not store.token_path.is_symlink()
    assert mode(store.token_path) == 0o600
    assert store.read_active() == Ok(TOKEN_A)
    (warning,) = warnings_of(caplog)
    assert str(store.token_path) in warning and "outside the login folder" in warning


def test_stored_tokens_linked_to_an_ini_file_outside_is_replaced_not_written_through(
    store: TokenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "dotfiles" / "stored_tokens"
    outside.parent.mkdir()
    before = f"[old]\nhf_token = {TOKEN_B}\n\n"
    outside.write_text(before)
    store.stored_tokens_path.symlink_to(outside)

    assert store.save("a", TOKEN_A) == Ok(None)

    assert outside.read_text() == before
    assert not store.stored_tokens_path.is_symlink()
    assert mode(store.stored_tokens_path) == 0o600
    # The entries read through the link are kept in the new file.
    assert store.get_token_by_name("old") == Ok(TOKEN_B)
    assert store.get_token_by_name("a") == Ok(TOKEN_A)
    assert any("outside the login folder" in w for w in warnings_of(caplog))


def test_stored_tokens_linked_to_a_dotfile_is_an_error_and_the_dotfile_is_untouched(
    store: TokenStore, tmp_path: Path
) -> None:
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.write_text(BASHRC)
    store.stored_tokens_path.symlink_to(bashrc)
    storage_error(store.save("a", TOKEN_A))
    assert bashrc.read_text() == BASHRC
    assert not store.token_path.exists()


def test_activate_through_a_link_to_outside_never_touches_the_outside_file(
    store: TokenStore, tmp_path: Path
) -> None:
    assert store.save("a", TOKEN_A, activate=False) == Ok(None)
    outside = tmp_path / "dotfiles-token"
    outside.write_text(TOKEN_B)
    store.token_path.symlink_to(outside)
    assert store.activate("a") == Ok(TOKEN_A)
    assert outside.read_text() == TOKEN_B
    assert store.token_path.read_text() == TOKEN_A


def test_a_symlink_to_a_file_of_another_user_is_replaced(
    store: TokenStore, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    theirs = folder / "their-token"
    theirs.write_text("theirs")
    chown_or_skip(theirs, OTHER_UID)
    store.token_path.symlink_to(theirs)

    assert store.save("a", TOKEN_A) == Ok(None)

    assert theirs.read_text() == "theirs"
    assert theirs.stat().st_uid == OTHER_UID
    assert not store.token_path.is_symlink()
    assert store.read_active() == Ok(TOKEN_A)
    assert any("not a regular file of yours" in w for w in warnings_of(caplog))


def test_a_symlink_to_a_folder_inside_is_replaced(store: TokenStore, folder: Path) -> None:
    (folder / "sub").mkdir()
    store.token_path.symlink_to(folder / "sub")
    assert store.save("a", TOKEN_A) == Ok(None)
    assert (folder / "sub").is_dir() and os.listdir(folder / "sub") == []
    assert store.read_active() == Ok(TOKEN_A)


def test_a_symlinked_lock_never_empties_the_file_it_points_to(
    store: TokenStore, tmp_path: Path
) -> None:
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.write_text(BASHRC)
    bashrc.chmod(0o644)
    store.lock_path.symlink_to(bashrc)
    assert store.save("a", TOKEN_A) == Ok(None)
    assert bashrc.read_text() == BASHRC
    assert mode(bashrc) == 0o644
    assert not store.lock_path.is_symlink()


def test_hf_home_may_be_a_symlink_to_a_folder_of_the_user(tmp_path: Path) -> None:
    big_disk = tmp_path / "big-disk" / "huggingface"
    big_disk.mkdir(parents=True)
    big_disk.chmod(0o755)
    hf_home = tmp_path / "cache-huggingface"
    hf_home.symlink_to(big_disk)
    store = TokenStore(hf_home / "token")

    assert store.save("a", TOKEN_A) == Ok(None)
    assert store.save("b", TOKEN_B) == Ok(None)
    assert store.activate("a") == Ok(TOKEN_A)

    assert hf_home.is_symlink()
    assert (big_disk / "token").read_text() == TOKEN_A
    assert "[b]" in (big_disk / "stored_tokens").read_text()
    assert mode(big_disk) == 0o755
    assert [entry.name for entry in store.list_tokens().unwrap()] == ["a", "b"]
    assert store.remove("b").is_ok()
    assert store.remove().is_ok()
    assert not (big_disk / "token").exists()
    assert hf_home.is_symlink() and big_disk.is_dir()


# -- folder modes ------------------------------------------------------------------------------


async def test_login_keeps_the_mode_of_an_existing_shared_hf_home(hf_home: Path) -> None:
    hf_home.mkdir()
    hf_home.chmod(0o755)
    token = make_token("shared")
    async with FakeHub() as hub:
        hub.add_token(token, FakeUser(name="ada", token_name="laptop"))
        async with HubAuth(endpoint=hub.url) as auth:
            assert (await auth.login(token)).is_ok()
    assert mode(hf_home) == 0o755
    assert mode(hf_home / "token") == 0o600
    assert mode(hf_home / "stored_tokens") == 0o600


async def test_login_creates_hf_home_and_its_parents_private_with_umask_000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_home = tmp_path / "new" / "cache" / "huggingface"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    token = make_token("umask")
    async with FakeHub() as hub:
        hub.add_token(token, FakeUser(name="ada", token_name="laptop"))
        previous = os.umask(0)
        try:
            async with HubAuth(endpoint=hub.url) as auth:
                assert (await auth.login(token)).is_ok()
        finally:
            os.umask(previous)
    for created in (tmp_path / "new", tmp_path / "new" / "cache", hf_home):
        assert mode(created) == 0o700, created


# -- StrictModes-like warnings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder_mode", "expected"),
    [(0o770, "writable by its group"), (0o777, "writable by every user")],
)
def test_a_folder_others_can_write_gets_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, folder_mode: int, expected: str
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(folder_mode)
    store = TokenStore(shared / "token")
    assert store.save("a", TOKEN_A) == Ok(None)
    assert store.save("b", TOKEN_B) == Ok(None)
    assert store.read_active() == Ok(TOKEN_B)
    (warning,) = warnings_of(caplog)
    assert str(shared) in warning and expected in warning and "chmod 700" in warning
    assert mode(shared) == folder_mode


def test_a_folder_of_another_user_gets_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    chown_or_skip(theirs, OTHER_UID)
    assert TokenStore(theirs / "token").read_active() == Ok(None)
    (warning,) = warnings_of(caplog)
    assert "owned by another user" in warning


def test_a_private_folder_gets_no_warning(
    store: TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    assert store.read_active() == Ok(TOKEN_A)
    assert warnings_of(caplog) == []


# -- size bounds -------------------------------------------------------------------------------


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as file:
        file.truncate(size)


def test_a_huge_stored_tokens_is_refused_unread_and_kept(store: TokenStore) -> None:
    assert store.save("a", TOKEN_A) == Ok(None)
    _sparse(store.stored_tokens_path, 8 * 1024**3)  # 8 GiB, sparse: reading it would hang
    started = time.monotonic()
    message = storage_error(store.read_entries())
    assert time.monotonic() - started < 1
    assert str(store.stored_tokens_path) in message and "larger than 1 MiB" in message
    storage_error(store.save("b", TOKEN_B))
    storage_error(store.list_tokens())
    assert store.stored_tokens_path.stat().st_size == 8 * 1024**3
    assert store.read_active() == Ok(TOKEN_A)
    # Logging out still works: deleting the file is the way out.
    assert store.remove().is_ok()
    assert not store.stored_tokens_path.exists()


def test_a_huge_token_file_is_refused_unread(store: TokenStore) -> None:
    _sparse(store.token_path, 8 * 1024**3)
    started = time.monotonic()
    message = storage_error(store.read_active())
    assert time.monotonic() - started < 1
    assert "token file" in message and "larger than 1 MiB" in message


def test_the_bound_is_exactly_one_mib(store: TokenStore) -> None:
    entry = f"[a]\nhf_token = {TOKEN_A}\n"
    padding = "#" * (MAX_FILE_BYTES - len(entry) - 1) + "\n"
    store.stored_tokens_path.write_text(entry + padding)
    assert store.stored_tokens_path.stat().st_size == MAX_FILE_BYTES
    assert store.get_token_by_name("a") == Ok(TOKEN_A)
    store.stored_tokens_path.write_text(entry + "#" + padding)
    storage_error(store.read_entries())
    store.token_path.write_text(TOKEN_A + " " * (MAX_FILE_BYTES - len(TOKEN_A)))
    assert store.read_active() == Ok(TOKEN_A)
    store.token_path.write_text(TOKEN_A + " " * (MAX_FILE_BYTES - len(TOKEN_A) + 1))
    storage_error(store.read_active())


@pytest.mark.parametrize("which", ["token", "stored_tokens"])
def test_an_endless_device_in_place_of_a_login_file_is_refused(
    store: TokenStore, which: str
) -> None:
    path = store.token_path if which == "token" else store.stored_tokens_path
    path.symlink_to("/dev/zero")
    result = store.read_active() if which == "token" else store.read_entries()
    assert "not a regular file" in storage_error(result)


def test_a_fifo_in_place_of_the_token_file_does_not_block(store: TokenStore) -> None:
    os.mkfifo(store.token_path)
    started = time.monotonic()
    assert "not a regular file" in storage_error(store.read_active())
    assert time.monotonic() - started < 1
