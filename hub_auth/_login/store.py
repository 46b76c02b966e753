"""TokenStore: the login files hub_auth shares with ``huggingface_hub`` and ``hf auth``.

Two files live side by side (see HUB_FACTS, "Where a login lives on disk"):

- the *token file* (``$HF_TOKEN_PATH`` or ``$HF_HOME/token``) holds the active token, raw,
  without a newline;
- ``stored_tokens`` beside it is an INI file with one section per token name, key
  ``hf_token``, plus whatever else ``huggingface_hub`` keeps there (``refresh_token``,
  ``expires_at``), which is carried over untouched. An OAuth login hub_auth stores also
  records the Hub that issued it (``hub_auth_endpoint``, ``ENDPOINT_KEY``): its refresh
  token is only ever sent there (``_oauth.refresh``). huggingface_hub reads such a section
  like any other; it drops the key when it rewrites the section.

Guarantees: reads never take the lock and see either the old or the new file, because
every write goes to a temporary file in the same folder which is fsynced and renamed over
the target. Writes hold ``stored_tokens.lock`` (the lock ``huggingface_hub`` takes), so two
processes never lose each other's entries. A corrupt ``stored_tokens`` is reported, never
overwritten. Failures come back as ``Err(HubAuthError(ErrorKind.STORAGE))`` naming the path
and the reason, never the token.

File safety (the login folder is where the token file lives, ``$HF_HOME`` by default):

- Files end 0600. Folders hub_auth creates, missing parents included, are 0700 whatever the
  umask; a folder that already exists keeps its mode (a shared ``HF_HOME`` stays shared).
- A write never goes through a symlink that leads outside the login folder, to something
  other than a regular file, or to a file of another user: the link itself is replaced by a
  regular file (with a warning naming both paths), so a ``token`` linked to ``~/.bashrc``
  never puts a token into ``.bashrc``. A link to a file of the user's inside the login folder
  is written through. The login folder itself may be a symlink (``HF_HOME`` on a big disk).
  A symlink in place of ``stored_tokens.lock`` is removed before locking.
- A login folder writable by the group or others, or owned by another user (not root),
  gets one warning per process, as ssh's StrictModes would.
- Neither file is read past ``MAX_FILE_BYTES`` (1 MiB): a larger one, or one that is not a
  regular file, is ``Err(storage)`` and is never rewritten.

The class is synchronous on purpose: the CLI uses it without importing aiohttp, and
``HubAuth`` runs its writes in a worker thread.
"""

from __future__ import annotations

import configparser
import contextlib
import errno
import io
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._logging import LOGGER_NAME
from hub_auth._login.outcomes import LogoutInfo, StoredToken
from hub_auth._result import Err, Ok, Result
from hub_auth._tokens import MaskedStr, clean_token, mask_token

__all__ = [
    "ENDPOINT_KEY",
    "MAX_FILE_BYTES",
    "TokenStore",
    "entry_endpoint",
    "entry_expires_at",
    "entry_token",
]

T = TypeVar("T")

logger = logging.getLogger(LOGGER_NAME)

MAX_FILE_BYTES = 1024 * 1024
"""Neither login file is ever this large; a larger one is refused without being read whole."""

ENDPOINT_KEY = "hub_auth_endpoint"
"""The ``stored_tokens`` key where hub_auth records the Hub an OAuth login came from."""

_FILE_MODE = 0o600
_DIR_MODE = 0o700
_TOKEN_KEY = "hf_token"
_TEMP_SUFFIX = ".hub-auth-tmp"
# huggingface_hub's configparser merges a section with this name into every other one, so it
# cannot hold a token (we read and keep one as an ordinary section).
_RESERVED_SECTION = configparser.DEFAULTSECT
_EXTRA_KEY = re.compile(r"[a-z0-9_.\-]+")
# Folders already checked by _warn_if_unsafe_folder in this process (warn once per folder).
_checked_folders: set[str] = set()


def entry_token(fields: Mapping[str, str]) -> str | None:
    """The token of one ``stored_tokens`` entry, cleaned; ``None`` when it has none."""
    return clean_token(fields.get(_TOKEN_KEY))


def entry_endpoint(fields: Mapping[str, str]) -> str | None:
    """The Hub that issued one entry's OAuth login, as hub_auth recorded it; ``None`` when the
    entry does not say (huggingface_hub's logins, tokens pasted in)."""
    return (fields.get(ENDPOINT_KEY) or "").strip() or None


def entry_expires_at(fields: Mapping[str, str]) -> datetime | None:
    """When the token of one entry expires (``expires_at``, Unix seconds), if it says."""
    return _parse_expires_at(fields.get("expires_at"))


class TokenStore:
    """Read and write the token file and ``stored_tokens`` the way ``huggingface_hub`` does.

    Every method returns a ``Result``; a file that cannot be read or written gives
    ``Err(HubAuthError(ErrorKind.STORAGE))``.

        store = TokenStore(Path.home() / ".cache/huggingface/token")
        store.save("laptop", token)
        match store.list_tokens():
            case Ok(tokens):
                for entry in tokens:
                    print("*" if entry.active else " ", entry.name, entry.masked_token)
    """

    def __init__(self, token_path: str | os.PathLike[str], *, lock_timeout: float = 10.0) -> None:
        self.token_path = Path(token_path)
        self.stored_tokens_path = self.token_path.parent / "stored_tokens"
        self.lock_path = self.stored_tokens_path.with_name("stored_tokens.lock")
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"TokenStore(token_path={str(self.token_path)!r})"

    # -- reading -------------------------------------------------------------------------

    def read_active(self) -> Result[str | None]:
        """Return the token in the token file, cleaned; ``None`` when there is none."""
        # On the path of every authenticated call: open, fstat, read; no lock.
        _warn_if_unsafe_folder(self.token_path.parent)
        where = f"cannot read the token file {self.token_path}"
        data = _read_small_file(self.token_path, where)
        if isinstance(data, Err):
            return data
        if data.value is None:
            return Ok(None)
        try:
            raw = data.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _storage_error(where, _not_utf8(exc))
        # A MaskedStr: the real token, but a repr (of the Ok, in a log line) masks it.
        return Ok(clean_token(raw))

    def read_entries(self) -> Result[dict[str, dict[str, str]]]:
        """Return every section of ``stored_tokens`` with all its keys; ``{}`` when missing."""
        where = f"cannot read the stored tokens file {self.stored_tokens_path}"
        _warn_if_unsafe_folder(self.stored_tokens_path.parent)
        data = _read_small_file(self.stored_tokens_path, where)
        if isinstance(data, Err):
            return data
        if data.value is None:
            return Ok({})
        try:
            text = data.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _storage_error(where, _not_utf8(exc))
        parser = _new_parser()
        try:
            parser.read_string(text, source=str(self.stored_tokens_path))
        except configparser.Error as exc:
            return _storage_error(where, _parse_reason(exc))
        # Every value a MaskedStr: tokens and refresh tokens stay masked in any repr.
        return Ok(
            {
                name: {key: MaskedStr(value) for key, value in parser.items(name)}
                for name in parser.sections()
            }
        )

    def list_tokens(self) -> Result[list[StoredToken]]:
        """Return the stored tokens, masked, sorted by name, the active one marked."""
        entries = self.read_entries()
        if isinstance(entries, Err):
            return entries
        active = self.read_active()
        if isinstance(active, Err):
            return active
        listed = []
        for name, fields in sorted(entries.value.items()):
            token = entry_token(fields)
            listed.append(
                StoredToken(
                    name=name,
                    masked_token=mask_token(token) if token else "<not set>",
                    active=token is not None and token == active.value,
                    expires_at=entry_expires_at(fields),
                )
            )
        return Ok(listed)

    def get_token_by_name(self, name: str) -> Result[str]:
        """Return the token stored under ``name``; ``NOT_FOUND`` when there is none."""
        entries = self.read_entries()
        if isinstance(entries, Err):
            return entries
        return self._token_of(entries.value, name)

    # -- writing -------------------------------------------------------------------------

    def save(
        self,
        name: str,
        token: str,
        *,
        activate: bool = True,
        extra: Mapping[str, str] | None = None,
    ) -> Result[None]:
        """Store ``token`` under ``name``, replacing that entry; make it active if ``activate``.

        ``extra`` adds keys to the entry (``refresh_token``, ``expires_at``). Other entries
        are kept as they are, keys hub_auth does not know included.

        Raises:
            ValueError: ``token`` is empty, has surrounding whitespace or a line break, or
                ``extra`` has a key or value that the INI file cannot hold.
        """
        _check_token_value(token)
        token = MaskedStr(token)
        fields: dict[str, str] = {_TOKEN_KEY: token}
        for key, value in (extra or {}).items():
            _check_extra(key, value)
            fields[key] = MaskedStr(value)
        if (problem := _name_problem(name)) is not None:
            return _storage_error(f"cannot store a token under the name {name!r}", problem)

        def write() -> Result[None]:
            entries = self.read_entries()
            if isinstance(entries, Err):
                # Rewriting a file we could not parse would drop the entries in it.
                return entries
            entries.value[name] = fields
            written = self._write_entries(entries.value)
            if isinstance(written, Err) or not activate:
                return written
            return _write_atomic(self.token_path, token)

        return self._under_lock(write)

    def activate(self, name: str) -> Result[str]:
        """Make the token stored under ``name`` the active one and return it."""

        def write() -> Result[str]:
            entries = self.read_entries()
            if isinstance(entries, Err):
                return entries
            token = self._token_of(entries.value, name)
            if isinstance(token, Err):
                return token
            written = _write_atomic(self.token_path, token.value)
            if isinstance(written, Err):
                return written
            return token

        return self._under_lock(write)

    def remove(self, name: str | None = None) -> Result[LogoutInfo]:
        """Log out: delete both files, or, given ``name``, that entry only.

        Removing the entry of the active token deletes the token file too, as
        ``huggingface_hub`` does. An unknown ``name`` gives ``NOT_FOUND``. The result's
        ``removed_tokens`` are the deleted tokens, to drop them from caches.
        """
        if name is None:
            return self._under_lock(self._remove_all)
        return self._under_lock(lambda: self._remove(name))

    def _remove_all(self) -> Result[LogoutInfo]:
        # A corrupt or unreadable file does not stop a full logout: deleting it is the point.
        entries = self.read_entries().unwrap_or({})
        active = self.read_active().unwrap_or(None)
        values: list[str] = [
            token for fields in entries.values() if (token := clean_token(fields.get(_TOKEN_KEY)))
        ]
        if active is not None and active not in values:
            values.append(active)
        for path in (self.token_path, self.stored_tokens_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                return _storage_error(f"cannot delete {path}", _reason(exc))
        _fsync_folder(self.token_path.parent)
        return Ok(
            LogoutInfo(
                removed=tuple(sorted(entries)),
                removed_active=active is not None,
                removed_tokens=tuple(values),
            )
        )

    def _remove(self, name: str) -> Result[LogoutInfo]:
        entries = self.read_entries()
        if isinstance(entries, Err):
            return entries
        if name not in entries.value:
            return Err(HubAuthError(ErrorKind.NOT_FOUND, f"no token named {name!r} is stored"))
        active = self.read_active()
        if isinstance(active, Err):
            return active
        token = clean_token(entries.value.pop(name).get(_TOKEN_KEY))
        written = self._write_entries(entries.value)
        if isinstance(written, Err):
            return written
        was_active = token is not None and token == active.value
        if was_active:
            try:
                self.token_path.unlink(missing_ok=True)
            except OSError as exc:
                return _storage_error(
                    f"cannot delete the token file {self.token_path}", _reason(exc)
                )
            _fsync_folder(self.token_path.parent)
        return Ok(
            LogoutInfo(
                removed=(name,),
                removed_active=was_active,
                removed_tokens=(token,) if token else (),
            )
        )

    def refresh_entry(
        self,
        name: str,
        token: str,
        renew: Callable[[Mapping[str, str]], Result[dict[str, str]]],
        *,
        lock_timeout: float | None = None,
    ) -> Result[str]:
        """Replace the entry ``name``, which held ``token``, with what ``renew`` makes of it.

        The refresh of a stored OAuth token, with huggingface_hub's rules. Under
        ``stored_tokens.lock`` (held throughout, so two processes never both spend a
        rotating refresh token): re-read the entry; if it no longer holds ``token``, another
        process has refreshed it already, and its token is returned without calling
        ``renew``. Otherwise ``renew(fields)`` (it may block: it makes the request) returns
        the new keys of the entry (``hf_token``, ``refresh_token``, ``expires_at``), which
        replace the old ones (other keys are kept); the token file is rewritten only if it
        still holds ``token``. Returns the token to use, or ``renew``'s ``Err``.

        Call it in a worker thread. ``lock_timeout`` (default ``self.lock_timeout``) bounds
        the wait for the lock, which another process may hold for a whole request.
        """

        def write() -> Result[str]:
            entries = self.read_entries()
            if isinstance(entries, Err):
                return entries
            fields = entries.value.get(name, {})
            current = clean_token(fields.get(_TOKEN_KEY))
            if current != token:
                return Ok(current if current is not None else token)
            renewed = renew(fields)
            if isinstance(renewed, Err):
                return renewed
            new_fields = {key: MaskedStr(value) for key, value in renewed.value.items()}
            new_token = new_fields.get(_TOKEN_KEY, "")
            _check_token_value(new_token)
            for key, value in new_fields.items():
                if key != _TOKEN_KEY:
                    _check_extra(key, value)
            kept = {key: value for key, value in fields.items() if key not in new_fields}
            if "expires_at" not in new_fields:
                kept.pop("expires_at", None)  # a stale expiry would trigger refresh after refresh
            entries.value[name] = {_TOKEN_KEY: new_token, **kept, **new_fields}
            written = self._write_entries(entries.value)
            if isinstance(written, Err):
                return written
            active = self.read_active()
            if isinstance(active, Ok) and active.value == token:
                written = _write_atomic(self.token_path, MaskedStr(new_token))
                if isinstance(written, Err):
                    return written
            return Ok(MaskedStr(new_token))

        return self._under_lock(write, timeout=lock_timeout)

    # -- helpers -------------------------------------------------------------------------

    def _token_of(self, entries: Mapping[str, Mapping[str, str]], name: str) -> Result[str]:
        token = clean_token(entries.get(name, {}).get(_TOKEN_KEY))
        if token is None:
            where = self.stored_tokens_path
            return Err(HubAuthError(ErrorKind.NOT_FOUND, f"no token named {name!r} in {where}"))
        return Ok(token)

    def _write_entries(self, entries: Mapping[str, Mapping[str, str]]) -> Result[None]:
        parser = _new_parser()
        for section in sorted(entries):
            parser.add_section(section)
            for key, value in entries[section].items():
                parser.set(section, key, value)
        buffer = io.StringIO()
        parser.write(buffer)
        return _write_atomic(self.stored_tokens_path, MaskedStr(buffer.getvalue()))

    def _under_lock(
        self, action: Callable[[], Result[T]], *, timeout: float | None = None
    ) -> Result[T]:
        folder = self.stored_tokens_path.parent
        try:
            _ensure_folder(folder)
        except OSError as exc:
            return _storage_error(f"cannot create the folder {folder}", _reason(exc))
        _warn_if_unsafe_folder(folder)
        # Older filelock versions open the lock with O_TRUNC and fchmod it, following a
        # symlink: a `stored_tokens.lock` linked to a file of the user's would be emptied.
        if os.path.islink(self.lock_path):
            logger.warning(
                "%s was a symbolic link; removed it so the lock cannot touch the file it "
                "pointed to",
                self.lock_path,
            )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_path)
        # Imported here: only writers need it, and `hub-auth token` should not pay for it.
        from filelock import FileLock, Timeout

        wait = self.lock_timeout if timeout is None else timeout
        lock = FileLock(self.lock_path, timeout=wait, mode=_FILE_MODE)
        try:
            lock.acquire()
        except Timeout:
            return _storage_error(
                f"cannot lock {self.lock_path}",
                f"another process has held it for more than {wait:g} s",
            )
        except OSError as exc:
            return _storage_error(f"cannot lock {self.lock_path}", _reason(exc))
        try:
            return action()
        except OSError as exc:  # the helpers map their own errors; this is the last net
            return _storage_error(f"cannot update the login files in {folder}", _reason(exc))
        finally:
            # Failing to unlock is harmless: the kernel drops the lock with the descriptor.
            with contextlib.suppress(OSError):
                lock.release()


def _new_parser() -> configparser.ConfigParser:
    # Token values are opaque: a '%' must stay a '%'.
    # No DEFAULT section: configparser would copy its keys into every section on rewrite.
    # A section literally named DEFAULT is then an entry like any other.
    return configparser.ConfigParser(interpolation=None, default_section="\x00no default")


def _write_atomic(path: Path, content: str) -> Result[None]:
    """Replace ``path`` with ``content`` so that a reader sees the old or the new file, whole.

    Must be called under the lock: it deletes temporary files that dead writers left behind.
    """
    import tempfile  # writes only: `hub-auth token` and `list` never need it (or shutil, random)

    target = _write_target(path)
    folder = target.parent
    prefix = f".{target.name}."
    try:
        _ensure_folder(folder)
        _sweep_leftovers(folder, prefix)
        # O_EXCL: mkstemp never follows a symlink planted under the temporary name.
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=_TEMP_SUFFIX)
    except OSError as exc:
        return _storage_error(f"cannot write {path}", _reason(exc))
    try:
        with os.fdopen(fd, "wb") as file:
            # mkstemp's 0600 is still subject to the umask; fchmod is not.
            os.fchmod(file.fileno(), _FILE_MODE)
            file.write(content.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        # rename() replaces a symlink at `target` itself, never the file it points to.
        os.replace(temp_name, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        return _storage_error(f"cannot write {path}", _reason(exc))
    _fsync_folder(folder)
    return Ok(None)


def _write_target(path: Path) -> Path:
    """Where a write of ``path`` goes: ``path`` itself, or the file a safe symlink names.

    A symlink is followed only to a regular file of the current user (or to nothing yet)
    inside the login folder (``path``'s folder, resolved). Any other link is replaced by the
    write (rename() replaces the link, not what it points to) and a warning says so.
    """
    try:
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            return path
    except OSError:  # missing, or unreadable: the write itself will report it
        return path
    folder = os.path.realpath(path.parent)
    resolved = os.path.realpath(path)
    inside = resolved != folder and os.path.commonpath([folder, resolved]) == folder
    try:
        info: os.stat_result | None = os.stat(resolved)
    except FileNotFoundError:
        info = None
    except OSError:  # a loop, a folder we cannot search: do not follow it
        inside = False
        info = None
    ours = info is None or (stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid())
    if inside and ours:
        return Path(resolved)
    logger.warning(
        "%s is a symbolic link to %s, which is %s; replacing the link with a regular file "
        "(the file it points to is left untouched)",
        path,
        resolved,
        "outside the login folder" if not inside else "not a regular file of yours",
    )
    return path


def _ensure_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each 0700 whatever the umask.

    Folders that exist already (the user's or a shared ``HF_HOME``) keep their mode: hub_auth
    only ever changes the mode of a folder it has just created. Raises ``OSError``.
    """
    missing: list[Path] = []
    current = folder
    while not os.path.exists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    if not missing and not os.path.isdir(folder):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    for created in reversed(missing):
        try:
            os.mkdir(created, _DIR_MODE)
        except FileExistsError:
            continue  # made by someone else meanwhile: not ours to chmod
        # mkdir's mode is narrowed by the umask; fchmod (no symlink followed) fixes it.
        fd = os.open(
            created, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
        )
        try:
            os.fchmod(fd, _DIR_MODE)
        finally:
            os.close(fd)


def _warn_if_unsafe_folder(folder: Path) -> None:
    """Warn, once per folder and process, when others could change the login files in it.

    As ssh's StrictModes: a folder writable by the group or others, or owned by another user
    than the current one or root. The files are still used (huggingface_hub uses them too).
    """
    key = str(folder)
    if key in _checked_folders:
        return
    try:
        info = os.stat(folder)
    except OSError:  # not there yet: checked again once it is
        return
    _checked_folders.add(key)
    problems = []
    if info.st_uid not in (os.getuid(), 0):
        problems.append(f"owned by another user (uid {info.st_uid})")
    if info.st_mode & stat.S_IWOTH:
        problems.append("writable by every user")
    elif info.st_mode & stat.S_IWGRP:
        problems.append("writable by its group")
    if problems:
        logger.warning(
            "the login folder %s is %s: another user could replace or read your login files; "
            "make it yours and private (chmod 700) or point HF_HOME or HF_TOKEN_PATH to a "
            "private folder",
            folder,
            " and ".join(problems),
        )


def _read_small_file(path: Path, where: str) -> Result[bytes | None]:
    """The bytes of ``path`` (``None`` when missing), refused past ``MAX_FILE_BYTES``.

    Never reads more than ``MAX_FILE_BYTES + 1`` bytes, and refuses anything but a regular
    file (a FIFO would block, a device never end): a token file linked to ``/dev/zero`` or a
    log file is an error, not a token.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return Ok(None)
    except OSError as exc:
        return _storage_error(where, _reason(exc))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return _storage_error(where, "it is a directory, not a file; move it away")
        if not stat.S_ISREG(info.st_mode):
            return _storage_error(where, "it is not a regular file; move it away")
        chunks: list[bytes] = []
        remaining = MAX_FILE_BYTES + 1
        if info.st_size <= MAX_FILE_BYTES:
            while remaining > 0 and (chunk := os.read(fd, remaining)):
                chunks.append(chunk)
                remaining -= len(chunk)
    except OSError as exc:
        return _storage_error(where, _reason(exc))
    finally:
        os.close(fd)
    if info.st_size > MAX_FILE_BYTES or remaining <= 0:
        return _storage_error(
            where,
            f"it is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, far more than any login "
            "file; it was not read. Check what it is, move it away and log in again",
        )
    return Ok(b"".join(chunks))


def _sweep_leftovers(folder: Path, prefix: str) -> None:
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]+" + re.escape(_TEMP_SUFFIX))
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if pattern.fullmatch(name):
            with contextlib.suppress(OSError):
                os.unlink(folder / name)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable; best effort (not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _name_problem(name: str) -> str | None:
    if not name:
        return "the name is empty"
    if "\n" in name or "\r" in name:
        return "the name contains a line break"
    if name == _RESERVED_SECTION:
        return f"{_RESERVED_SECTION!r} is reserved in the INI format"
    return None


def _check_token_value(token: str) -> None:
    if not isinstance(token, str) or not token or clean_token(token) != token or "\x00" in token:
        raise ValueError(
            "a token to store must be a non-empty str without surrounding whitespace, "
            "line breaks or NUL characters"
        )


def _check_extra(key: str, value: str) -> None:
    if key == _TOKEN_KEY or not _EXTRA_KEY.fullmatch(key):
        raise ValueError(f"extra key {key!r} must be lowercase [a-z0-9_.-] and not {_TOKEN_KEY!r}")
    if not isinstance(value, str) or "\n" in value or "\r" in value or value != value.strip():
        raise ValueError(
            f"the value of extra key {key!r} must be a str without line breaks or "
            "surrounding whitespace"
        )


def _parse_expires_at(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromtimestamp(int(raw.strip()), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _storage_error(where: str, reason: str) -> Err[HubAuthError]:
    return Err(HubAuthError(ErrorKind.STORAGE, f"{where}: {reason}"))


def _reason(exc: OSError) -> str:
    # strerror only: str(exc) may carry a second filename or, from libraries, file content.
    return exc.strerror or type(exc).__name__


def _not_utf8(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte {exc.start})"


def _parse_reason(exc: configparser.Error) -> str:
    # configparser quotes the offending line, which may be a token: keep only its number.
    line: int | None = getattr(exc, "lineno", None)
    # MissingSectionHeaderError is a ParsingError without ``errors`` on some Pythons.
    errors = getattr(exc, "errors", None)
    if line is None and errors:
        line = errors[0][0]
    if isinstance(exc, configparser.DuplicateSectionError):
        what = "a section appears twice"
    elif isinstance(exc, configparser.DuplicateOptionError):
        what = "a key appears twice in one section"
    elif isinstance(exc, configparser.MissingSectionHeaderError):
        what = "text before the first [section]"
    else:
        what = "not valid INI"
    return f"line {line}: {what}" if line is not None else what
