"""HubAuth: the async client with the seven HfHub.Auth operations (and list/switch).

The path of one call, ``await auth.whoami()``: resolve the token (argument, ``set_token`` or
constructor, OIDC exchange with ``HF_OIDC_RESOURCE``, ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``,
token file) → check its format → offline? → cache (when configured: keyed hash, single-flight)
→ ``HubClient.whoami`` (one GET, retries) → ``Ok(UserInfo)``. Every failure is an ``Err`` made
where it happens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit

from pydantic import SecretStr

from hub_auth import _telemetry
from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._health import HealthReport, health_report
from hub_auth._login.outcomes import LogoutInfo, StoredToken, SwitchInfo
from hub_auth._login.prompt import (
    ask_for_token,
    ask_git_credential,
    ask_login_method,
    show_device_code,
    show_device_pending,
    stdin_is_terminal,
)
from hub_auth._login.store import ENDPOINT_KEY, TokenStore
from hub_auth._oauth import DISCOVERY_PATH, oauth_client_id
from hub_auth._result import Err, Ok, Result
from hub_auth._settings import (
    Settings,
    env_override_note,
    env_token,
    is_insecure_endpoint,
    oidc_resource,
)
from hub_auth._tokens import MaskedStr, check_format, well_formed

# Imported where they are used, so that `from hub_auth import HubAuth` loads neither aiohttp
# nor the models (HubAuth() does), and whoami never loads git, anyio or the device login.
if TYPE_CHECKING:
    import aiohttp

    from hub_auth._cache import WhoamiCache
    from hub_auth._models import DeviceCode, LoginInfo, UserInfo

__all__ = ["HubAuth", "interactive_device_login"]

logger = logging.getLogger("hub_auth")

_KEEPS_GIVEN_TOKEN = "this client was given a token explicitly; it keeps using that one"


def _plain(token: str | SecretStr, what: str = "token") -> str:
    # MaskedStr: a str for headers and files, but masked in the locals an error reporter
    # (Sentry) captures, whatever the source (argument, set_token, environment, files).
    if isinstance(token, SecretStr):
        return MaskedStr(token.get_secret_value())
    if isinstance(token, str):
        return MaskedStr(token)
    raise TypeError(f"{what} must be a str or SecretStr, not {type(token).__name__}")


def _invalid(reason: str) -> Err[HubAuthError]:
    return Err(HubAuthError(ErrorKind.INVALID_TOKEN, f"invalid token: {reason}"))


def _checked(resolved: Result[str]) -> Result[str]:
    """``resolved``, or ``Err(invalid_token)`` when its token must not go into a header."""
    if isinstance(resolved, Ok) and (reason := check_format(resolved.value)) is not None:
        return _invalid(reason)
    return resolved


def _no_token() -> Err[HubAuthError]:
    # A new error each time: an exception object shared by every caller would collect
    # tracebacks (and threads) from all of them.
    return Err(
        HubAuthError(
            ErrorKind.NO_TOKEN,
            "no Hugging Face token found: pass token=..., call set_token(), set HF_TOKEN, "
            "or log in (`hub-auth login`)",
        )
    )


CacheLookup = Callable[[str], "Result[UserInfo] | None"]
"""A cache's synchronous hit lookup for one endpoint (``HubAuth._whoami_from_cache``)."""


def _cache_lookup(cache: WhoamiCache | None, endpoint: str) -> CacheLookup | None:
    """The synchronous hit lookup of ``cache`` for ``endpoint``: a ``MemoryCache``'s
    ``lookup``, or that of a ``RedisCache``'s ``local`` one; ``None`` for a cache that has
    none (Redis alone, a cache of your own) or whose ``fetch`` a subclass overrides (then
    ``fetch`` is the only way in)."""
    if cache is None:
        return None
    from hub_auth._cache.memory import MemoryCache
    from hub_auth._cache.redis import RedisCache

    memory: MemoryCache | None = None
    if isinstance(cache, MemoryCache) and type(cache).fetch is MemoryCache.fetch:
        memory = cache
    elif isinstance(cache, RedisCache) and type(cache).fetch is RedisCache.fetch:
        memory = cache.local
    if memory is None or type(memory).fetch is not MemoryCache.fetch:
        return None
    return memory.lookup_for(endpoint)


def _token_name(user: UserInfo) -> str:
    """The name huggingface_hub stores a token under: its display name, or oauth-<user>."""
    return (user.token.display_name if user.token else None) or f"oauth-{user.username}"


class HubAuth:
    """Async client for Hugging Face Hub authentication.

    Create one per application (and per event loop) and close it when done::

        async with HubAuth() as auth:
            match await auth.whoami():
                case Ok(user):
                    print(user.username, user.organizations)
                case Err(error) if error.kind is ErrorKind.NO_TOKEN:
                    print("not logged in: run `hub-auth login`")
                case Err(error):
                    print(error.kind, error)

    Args:
        token: A token to use instead of the environment and the token file.
        endpoint: The Hub's URL; default ``HF_ENDPOINT`` or ``https://huggingface.co``.
        hf_home: Folder of the login files; default as huggingface_hub (``HF_HOME`` ...).
        token_path: The active token file; overrides ``hf_home`` and ``HF_TOKEN_PATH``.
        session: An aiohttp session to borrow (never closed by HubAuth). By default HubAuth
            creates its own, lazily, inside the running loop, and closes it in ``aclose()``.
        timeout: Seconds one request may take in all.
        connect_timeout: Seconds to establish a connection (default: ``timeout``).
        read_env: ``False`` ignores every environment variable (configuration comes only
            from the arguments, as the Elixir library prefers).
        cache: A whoami cache (``MemoryCache``/``RedisCache``); none by default.
        max_attempts: Requests per call at most, retries included.
        retry_budget: Seconds a call may spend in all, waits between retries included.
        pool_limit: Simultaneous connections at most.
    """

    def __init__(
        self,
        *,
        token: str | SecretStr | None = None,
        endpoint: str | None = None,
        hf_home: str | os.PathLike[str] | None = None,
        token_path: str | os.PathLike[str] | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        read_env: bool = True,
        cache: WhoamiCache | None = None,
        max_attempts: int = 3,
        retry_budget: float = 20.0,
        pool_limit: int = 100,
    ) -> None:
        self._settings = Settings.resolve(
            endpoint=endpoint,
            hf_home=hf_home,
            token_path=token_path,
            timeout=timeout,
            connect_timeout=connect_timeout,
            read_env=read_env,
        )
        # The in-memory token (constructor or set_token).
        self._token: str | None = None
        if token is not None:
            plain = _plain(token)
            if (reason := check_format(plain)) is not None:
                raise ValueError(f"invalid token: {reason}")
            self._token = plain
        if session is not None:
            import aiohttp as _aiohttp

            if not isinstance(session, _aiohttp.ClientSession):
                raise TypeError(f"session must be an aiohttp.ClientSession, not {session!r}")
        if isinstance(pool_limit, bool) or not isinstance(pool_limit, int) or pool_limit < 1:
            raise ValueError(f"pool_limit must be an int >= 1, got {pool_limit!r}")
        from hub_auth._http import HubClient, RetryPolicy
        from hub_auth._oauth.exchange import OidcExchanger
        from hub_auth._oauth.refresh import StoredTokenRefresher

        self._store = TokenStore(self._settings.token_path)
        self._cache = cache
        self._cache_lookup = _cache_lookup(cache, self._settings.endpoint)
        self._client = HubClient(
            self._settings,
            session=session,
            retry=RetryPolicy(max_attempts, retry_budget),
            pool_limit=pool_limit,
        )
        if cache is not None:  # the cache shares the Hub's "wait" with its other clients
            self._client.add_rate_limit_listener(
                functools.partial(cache.on_backoff, self._settings.endpoint)
            )
        self._refresher = StoredTokenRefresher(
            self._store,
            self._client,
            endpoint=self._settings.endpoint,
            client_id=oauth_client_id(os.environ if read_env else {}),
            # Another process may hold the lock for a whole refresh request.
            lock_timeout=self._store.lock_timeout + self._settings.timeout,
        )
        self._oidc = OidcExchanger(self._client, self._settings.endpoint)
        self._closed = False
        self._server = urlsplit(self._settings.endpoint).hostname or ""
        self._health_probe: asyncio.Task[object] | None = None
        _telemetry.watch(self._client, self._settings.endpoint, cache)
        if is_insecure_endpoint(self._settings.endpoint):
            logger.warning(
                "endpoint %s uses plain http to a non-loopback host: tokens would travel "
                "unencrypted; use https",
                self._settings.endpoint,
            )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the aiohttp session HubAuth created (a borrowed one is left open). Idempotent."""
        self._closed = True
        if self._health_probe is not None:
            self._health_probe.cancel()
        await self._client.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def endpoint(self) -> str:
        """The Hub endpoint this client talks to."""
        return self._settings.endpoint

    @property
    def token_path(self) -> Path:
        """The active token file (``stored_tokens`` lives beside it)."""
        return self._settings.token_path

    @property
    def cache(self) -> WhoamiCache | None:
        """The whoami cache given to the constructor, if any."""
        return self._cache

    @property
    def store(self) -> TokenStore:
        """The login files (shared with huggingface_hub)."""
        return self._store

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        token = "set" if self._token is not None else "unset"
        return (
            f"<HubAuth endpoint={self._settings.endpoint!r} token_path="
            f"{str(self._settings.token_path)!r} token={token} {state}>"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this HubAuth is closed; create a new one")

    def _forget_session_after_fork(self) -> None:
        """In a child after ``os.fork()``: drop the parent's session (see ``HubClient``)."""
        self._client.forget_session_after_fork()

    # -- token resolution --------------------------------------------------------------------

    def _env_token(self) -> str | None:
        if not self._settings.read_env:
            return None
        found = env_token(os.environ)
        return found[1] if found is not None else None

    async def _resolve(self, token: str | SecretStr | None) -> Result[str]:
        """The token to use: argument, in-memory, OIDC exchange, environment, token file."""
        if token is not None:
            return Ok(_plain(token))
        if self._token is not None:
            return Ok(self._token)
        if (exchanged := await self._oidc_token()) is not None:
            return exchanged
        if (env_token := self._env_token()) is not None:
            return Ok(env_token)
        match self._store.read_active():
            case Ok(None):
                return _no_token()
            case Ok(str(stored)):
                return Ok(await self._fresh_stored_token(stored))
            case Err() as err:
                return err
        raise AssertionError("unreachable")  # pragma: no cover

    async def _oidc_token(self) -> Result[str] | None:
        """With ``HF_OIDC_RESOURCE`` set, the Hub token exchanged for the CI's OIDC id token
        (``None`` when OIDC is not configured)."""
        if not self._settings.read_env or (resource := oidc_resource(os.environ)) is None:
            return None
        if self._settings.offline:
            return Err(
                HubAuthError(
                    ErrorKind.OFFLINE,
                    "HF_HUB_OFFLINE is set but HF_OIDC_RESOURCE asks for an OIDC token "
                    "exchange (a network call): unset one of them",
                )
            )
        return await self._oidc.token(resource, id_token=None, environ=os.environ)

    async def _fresh_stored_token(self, stored: str) -> str:
        """``stored`` (the token file's token), refreshed first when it is a stored OAuth
        token close to its expiry (``_refresh``; never fails the call)."""
        if self._settings.offline:
            return stored
        return await self._refresher.fresh(stored)

    async def _resolve_checked(self, token: str | SecretStr | None) -> Result[str]:
        """Resolve a token and refuse one that must not go into a header."""
        # A token given is the hot path (a service's callers): no coroutine for _resolve.
        return _checked(Ok(_plain(token)) if token is not None else await self._resolve(token))

    def _offline(self) -> Err[HubAuthError] | None:
        if self._settings.offline:
            return Err(
                HubAuthError(
                    ErrorKind.OFFLINE,
                    "HF_HUB_OFFLINE is set: hub_auth makes no network calls",
                )
            )
        return None

    def _environ(self) -> Mapping[str, str]:
        """Where environment tokens are looked up: nowhere with ``read_env=False``."""
        return os.environ if self._settings.read_env else {}

    def _env_override_note(self, token: str | None) -> list[str]:
        if not self._settings.read_env:
            return []
        note = env_override_note(os.environ, token)
        return [note] if note else []

    # -- the operations ----------------------------------------------------------------------

    async def get_token(self) -> Result[SecretStr]:
        """The token in use: ``set_token``/constructor, the OIDC exchange when
        ``HF_OIDC_RESOURCE`` is set (see ``exchange_oidc_token``), ``HF_TOKEN``,
        ``HUGGING_FACE_HUB_TOKEN``, then the token file.

        Returns ``Err(no_token)`` when there is none, ``Err(storage)`` when the token file
        cannot be read.
        """
        self._check_open()
        return (await self._resolve(None)).map(SecretStr)

    async def exchange_oidc_token(
        self, resource: str, *, id_token: str | SecretStr | None = None
    ) -> Result[SecretStr]:
        """A short-lived Hub token for ``resource``, exchanged for a CI's OIDC id token
        ("Trusted Publishers").

        ``resource`` is a repo (``ns/name``, ``datasets/ns/name``, ``spaces/ns/name``...) for a
        token that writes only there, or a username for a read-only token. The id token is
        ``id_token``, else ``HF_OIDC_ID_TOKEN``, else one minted by GitHub Actions (the job
        needs ``permissions: id-token: write``) with this client's endpoint as audience.
        The result is kept in memory only (never written to disk) and shared by concurrent
        callers; a GitHub-minted one is exchanged again 5 minutes before it expires.

        With ``HF_OIDC_RESOURCE`` set, every call that resolves a token does this on its own;
        a token passed explicitly (argument, ``set_token``, constructor) still wins.

        Errors: ``no_token`` (no id token available: says which variable or permission is
        missing), ``forbidden`` (GitHub refused to mint one), ``unauthorized`` (the Hub
        rejected the id token, with its reason), ``offline``, ``network``, ``timeout``,
        ``rate_limited``, ``server_error``, ``bad_response``.

        Example::

            match await auth.exchange_oidc_token("my-org/my-model"):
                case Ok(token):
                    headers = {"authorization": f"Bearer {token.get_secret_value()}"}
        """
        self._check_open()
        if not isinstance(resource, str) or not resource.strip():
            raise ValueError(f"resource must be a repo id or a username, not {resource!r}")
        given = None if id_token is None else _plain(id_token, "id_token")
        if (offline := self._offline()) is not None:
            return offline
        # With read_env=False the environment's id token (and GitHub's variables) are ignored.
        environ = os.environ if self._settings.read_env else {}
        return (await self._oidc.token(resource, id_token=given, environ=environ)).map(SecretStr)

    async def set_token(self, token: str | SecretStr) -> Result[None]:
        """Use ``token`` for this client from now on (in memory only; nothing is written).

        Returns ``Err(invalid_token)`` when the token is malformed; the previous token stays.
        """
        self._check_open()
        plain = _plain(token)
        if (reason := check_format(plain)) is not None:
            return _invalid(reason)
        previous, self._token = self._token, plain
        if previous is not None and previous != plain:
            await self._forget_cached(previous)
        return Ok(None)

    async def auth_headers(
        self, token: str | SecretStr | None = None
    ) -> Result[list[tuple[str, str]]]:
        """HTTP headers that authenticate a request: ``[("authorization", "Bearer ...")]``."""
        self._check_open()
        # MaskedStr: the header value is the real one, but a repr of the result masks it.
        return (await self._resolve_checked(token)).map(
            lambda t: [("authorization", MaskedStr(f"Bearer {t}"))]
        )

    async def whoami(self, token: str | SecretStr | None = None) -> Result[UserInfo]:
        """Who the token belongs to, from ``GET /api/whoami-v2``.

        Errors: ``no_token`` (no request made), ``invalid_token`` (malformed, no request),
        ``offline``, ``unauthorized`` (401), ``forbidden`` (403), ``rate_limited`` (429, with
        ``retry_after``), ``server_error`` (5xx), ``bad_response``, ``network``, ``timeout``.
        """
        if token is not None:
            # A token given (a service's callers) is the hot path: its cache hit answers at
            # once, awaiting nothing.
            hit = self._whoami_from_cache(token)
            if hit is not None:
                return hit
        self._check_open()
        traced = _telemetry.on and not _telemetry.in_whoami()  # an OpenTelemetry SDK is set up
        if traced:
            return await _telemetry.traced_whoami(
                functools.partial(self.whoami, token),
                server=self._server,
                token=None if token is None else _plain(token),
                cached=self._cache is not None,
            )
        if token is not None:  # resolved without a coroutine
            resolved = _checked(Ok(_plain(token)))
        else:
            resolved = await self._resolve_checked(token)
        if isinstance(resolved, Err):
            return resolved
        if (offline := self._offline()) is not None:
            return offline
        if self._cache is not None:
            return await self._cache.fetch(
                resolved.value, self._client.whoami, endpoint=self._settings.endpoint
            )
        return await self._client.whoami(resolved.value)

    def _whoami_from_cache(self, token: str | SecretStr) -> Result[UserInfo] | None:
        """whoami's fast path: the cached answer for a token given explicitly (a service's
        callers), without a coroutine; ``None`` sends the call down the path of ``whoami``.
        ``HubBearer`` calls it before awaiting ``whoami``, so a warm request awaits nothing.

        The hit follows the rules of that path: a closed client raises, the token's format is
        checked first (a malformed one goes down the path to get its ``invalid_token``),
        offline answers nothing from the cache, and the cache's own lookup keys by endpoint,
        checks expiry on its clock, counts the hit and copies a kept 401; with an
        OpenTelemetry SDK set up, the hit is recorded as a finished ``hit`` span. Only caches
        with a synchronous lookup have this path (``MemoryCache``, a ``RedisCache``'s
        ``local``).
        """
        lookup = self._cache_lookup
        if lookup is None or self._settings.offline:
            return None
        if self._closed:
            self._check_open()  # raises; no call on every hit
        plain = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not isinstance(plain, str) or well_formed(plain) is None:
            return None
        hit = lookup(plain)
        if hit is not None and _telemetry.on and not _telemetry.in_whoami():
            _telemetry.record_whoami(self._server, hit, "hit")
        return hit

    async def validate_token(self, token: str | SecretStr, *, remote: bool = True) -> Result[None]:
        """Check that ``token`` is well formed and, with ``remote=True``, that the Hub accepts it.

        ``Err(invalid_token)`` for a malformed token or one the Hub rejects (401); any other
        failure (network, timeout, rate limit, 5xx) keeps its own kind, so "bad token" and
        "could not check" stay apart.
        """
        self._check_open()
        plain = _plain(token)
        if (reason := check_format(plain)) is not None:
            return _invalid(reason)
        if not remote:
            return Ok(None)
        match await self.whoami(plain):
            case Ok():
                return Ok(None)
            case Err(error) if error.kind is ErrorKind.UNAUTHORIZED:
                return Err(
                    HubAuthError(
                        ErrorKind.INVALID_TOKEN,
                        "invalid token: the Hub rejected it (invalid, expired or revoked)",
                        status=error.status,
                        request_id=error.request_id,
                    )
                )
            case Err() as err:
                return err
        raise AssertionError("unreachable")  # pragma: no cover

    async def login(
        self,
        token: str | SecretStr | None = None,
        *,
        add_to_git_credentials: bool = False,
        force: bool = False,
    ) -> Result[LoginInfo]:
        """Check a token with the Hub and store it as the active login.

        Stored exactly as huggingface_hub does: a ``stored_tokens`` section named after the
        token's display name (``oauth-<username>`` when it has none) and the token file.
        A token the Hub rejects stores nothing.

        Without ``token``, on a terminal, asks for it (hidden input) and, once the Hub has
        accepted it, whether to add it to git credentials (unless ``add_to_git_credentials``
        already says so); when a valid token is already active, keeps it unless
        ``force=True``. Without a terminal, returns ``Err(no_token)``.
        """
        import anyio.to_thread

        from hub_auth._models import LoginInfo

        self._check_open()
        ask_git = token is None and not add_to_git_credentials
        if token is None:
            prompted = await self._prompt_login(force=force, ask_git=ask_git)
            if isinstance(prompted, Err) or isinstance(prompted.value, LoginInfo):
                return prompted  # type: ignore[return-value]
            token = prompted.value
        plain = _plain(token)
        if (reason := check_format(plain)) is not None:
            return _invalid(reason)
        if (offline := self._offline()) is not None:
            return offline
        match await self._client.whoami(plain):
            case Ok(user):
                pass
            case Err() as err:
                return err
        if ask_git:  # only now: a token the Hub rejected is never offered to git
            add_to_git_credentials = await ask_git_credential()
        name = _token_name(user)
        saved = await anyio.to_thread.run_sync(self._store.save, name, plain)
        if isinstance(saved, Err):
            return saved
        notes = self._env_override_note(plain)
        if add_to_git_credentials:
            notes.extend(await self._git_approve(plain))
        if self._token is not None and self._token != plain:
            notes.append(_KEEPS_GIVEN_TOKEN)
        logger.info("logged in as %s; token stored as %r", user.username, name)
        return Ok(LoginInfo(user=user, token_name=name, notes=tuple(notes)))

    async def _prompt_login(self, *, force: bool, ask_git: bool) -> Result[str | LoginInfo]:
        from hub_auth._models import LoginInfo

        if not force:
            current = await self._resolve_checked(None)
            if isinstance(current, Ok) and self._offline() is None:
                whoami = await self._client.whoami(current.value)
                if isinstance(whoami, Ok):
                    user = whoami.value
                    return Ok(
                        LoginInfo(
                            user=user,
                            token_name=_token_name(user),
                            kept_existing=True,
                            notes=(
                                f"already logged in as {user.username}; kept the active token "
                                "(use force=True or `hub-auth login --force` to replace it)",
                            ),
                        )
                    )
        if not stdin_is_terminal():
            return Err(
                HubAuthError(
                    ErrorKind.NO_TOKEN,
                    "no token given and standard input is not a terminal: pass the token "
                    "(login(token=...) or `hub-auth login --token ...`), or log in with "
                    "your browser (start_device_login() or `hub-auth login --device`)",
                )
            )
        match await ask_login_method():
            case Ok("browser"):
                return await interactive_device_login(self, add_to_git_credentials=not ask_git)
            case Ok(_):
                return await ask_for_token()
            case Err() as err:
                return err
        raise AssertionError("unreachable")  # pragma: no cover

    async def start_device_login(self) -> Result[DeviceCode]:
        """Start a login through the browser (the OAuth device flow, RFC 8628).

        Show the person ``verification_uri_complete`` (or ``verification_uri`` and
        ``user_code``), then pass the ``DeviceCode`` to ``complete_device_login``, which waits
        for their decision. Nothing waits here and nothing is stored::

            match await auth.start_device_login():
                case Ok(device):
                    print("Open", device.verification_uri_complete, "code", device.user_code)
                    info = (await auth.complete_device_login(device)).unwrap()

        The client id is ``HF_DEVICE_CODE_OAUTH_CLIENT_ID`` or huggingface_hub's public one.
        Errors: ``offline``, ``network``, ``timeout``, ``server_error``, ``rate_limited``,
        ``not_found`` (no device endpoint at this Hub), ``bad_response``.
        """
        from hub_auth._oauth import device as _device

        self._check_open()
        if (offline := self._offline()) is not None:
            return offline
        with _telemetry.flow(_telemetry.DEVICE_LOGIN_START) as traced:
            return traced.result(
                await _device.request_device_code(self._client, self._device_client_id())
            )

    async def complete_device_login(
        self, device: DeviceCode, *, add_to_git_credentials: bool = False
    ) -> Result[LoginInfo]:
        """Wait until the person approves the device login, then store the token as active.

        Polls the Hub as RFC 8628 says (``slow_down`` adds 5 s; 5xx and network errors are
        retried until the code expires). The token is stored as huggingface_hub stores it:
        the ``stored_tokens`` section ``oauth-<username>`` with ``hf_token``,
        ``refresh_token`` and ``expires_at`` (unix seconds), and the token file made active.
        The section also records this Hub (``hub_auth_endpoint``): hub_auth sends the refresh
        token only there, never to another ``HF_ENDPOINT``.
        With ``add_to_git_credentials``, the access token also goes to git's credential
        helper (not refreshed there when it expires).

        Errors: ``access_denied`` (the person refused), ``expired`` (the code expired before
        approval), ``bad_response`` (another OAuth error), ``offline``, ``storage``, and the
        whoami errors for the new token. Cancelling the task stops polling and stores nothing.
        """
        self._check_open()
        return await self._complete_device_login(
            device, add_to_git_credentials=add_to_git_credentials, on_pending=None
        )

    def _device_client_id(self) -> str:
        return oauth_client_id(self._environ())

    async def _complete_device_login(
        self,
        device: DeviceCode,
        *,
        add_to_git_credentials: bool,
        on_pending: Callable[[], None] | None,
    ) -> Result[LoginInfo]:
        import anyio.to_thread

        from hub_auth._models import DeviceCode, LoginInfo
        from hub_auth._oauth import device as _device

        if not isinstance(device, DeviceCode):
            raise TypeError(
                f"device must be the DeviceCode from start_device_login(), not "
                f"{type(device).__name__}"
            )
        if (offline := self._offline()) is not None:
            return offline
        with _telemetry.flow(_telemetry.DEVICE_LOGIN_POLL) as traced:
            polled = traced.result(
                await _device.poll_for_token(
                    self._client, device, self._device_client_id(), on_pending=on_pending
                )
            )
        if isinstance(polled, Err):
            return polled
        grant = polled.value
        match await self._client.whoami(grant.access_token):
            case Ok(user):
                pass
            case Err() as err:
                return err
        name = _token_name(user)
        # The Hub that issued it: its refresh token is only ever sent back there.
        extra: dict[str, str] = {ENDPOINT_KEY: self._settings.endpoint}
        expires_at = None
        if grant.refresh_token is not None:
            extra["refresh_token"] = grant.refresh_token
        if grant.expires_in is not None:
            expires_unix = int(time.time()) + grant.expires_in
            extra["expires_at"] = str(expires_unix)
            expires_at = datetime.fromtimestamp(expires_unix, tz=UTC)
        save = functools.partial(self._store.save, name, grant.access_token, extra=extra)
        saved = await anyio.to_thread.run_sync(save)
        if isinstance(saved, Err):
            return saved
        notes = self._env_override_note(grant.access_token)
        if expires_at is not None:
            when = f"{expires_at:%Y-%m-%d %H:%M} UTC"
            notes.append(
                f"this token will be refreshed automatically when it expires, around {when}"
                if grant.refresh_token is not None
                else f"this token expires around {when}; log in again then"
            )
        if add_to_git_credentials:
            notes.extend(await self._git_approve(grant.access_token))
            notes.append("git credentials keep this token until you log in again")
        if self._token is not None:
            notes.append(_KEEPS_GIVEN_TOKEN)
        logger.info("logged in as %s through the browser; token stored as %r", user.username, name)
        return Ok(LoginInfo(user=user, token_name=name, notes=tuple(notes), expires_at=expires_at))

    async def _git_approve(self, token: str) -> list[str]:
        from hub_auth._login import git as _git

        match await _git.approve(self._settings.endpoint, token):
            case Ok(outcome):
                return [outcome.note] if outcome.note else []
            case Err(error):
                return [f"the token was not added to git credentials: {error}"]
        raise AssertionError("unreachable")  # pragma: no cover

    async def logout(self, token_name: str | None = None) -> Result[LogoutInfo]:
        """Remove the stored login: everything, or only the entry ``token_name``.

        Without a name, removes the token file and ``stored_tokens``; with a name, removes
        that entry and the token file too when it held that token (``Err(not_found)`` for an
        unknown name). Also clears this client's in-memory token and removes the Hub from git
        credentials. The result says when ``HF_TOKEN`` still authenticates.
        """
        import anyio.to_thread

        from hub_auth._login.files import clears_git_credentials, remove_login, with_git_outcome

        self._check_open()
        logged_out = await anyio.to_thread.run_sync(
            remove_login, self._store, token_name, self._environ()
        )
        if isinstance(logged_out, Err):
            return logged_out
        stale = [*logged_out.value.removed_tokens, *([self._token] if self._token else [])]
        self._token = None
        for token in stale:
            await self._forget_cached(token)
        info = logged_out.value
        if clears_git_credentials(token_name, info):
            from hub_auth._login import git as _git

            info = with_git_outcome(info, await _git.reject(self.endpoint))
        return Ok(info)

    async def list_tokens(self) -> Result[list[StoredToken]]:
        """The tokens in ``stored_tokens`` (masked), the active one flagged."""
        self._check_open()
        return self._store.list_tokens()

    async def switch_token(self, token_name: str) -> Result[SwitchInfo]:
        """Make the stored token ``token_name`` the active one (``Err(not_found)`` if unknown)."""
        import anyio.to_thread

        from hub_auth._login.files import switch_login

        self._check_open()
        previous = self._store.read_active().unwrap_or(None)
        switched = await anyio.to_thread.run_sync(
            switch_login, self._store, token_name, self._environ()
        )
        if isinstance(switched, Err):
            return switched
        info = switched.value
        if previous is not None and previous != info.token:
            await self._forget_cached(previous)
        if self._token is not None:
            info = dataclasses.replace(info, notes=(*info.notes, _KEEPS_GIVEN_TOKEN))
        return Ok(info)

    async def health(self, *, max_age: float = 30.0, probe_timeout: float = 2.0) -> HealthReport:
        """What this client last saw of the Hub and of its cache: for a readiness probe.

        Reports what real calls saw, so a probe called every second costs no request while
        the service is busy. The Hub is asked only when nothing was heard from it for
        ``max_age`` seconds (5 s at most after it failed): one unauthenticated
        ``GET /.well-known/openid-configuration`` within ``probe_timeout`` seconds, shared by
        concurrent callers. Never during a rate-limit backoff (the 429 said the Hub is up)
        nor offline (``HF_HUB_OFFLINE``). The cache's state is as last seen (a Redis cache
        is set aside after a failure, and tried again after its ``backoff``).

        ``report.ready`` is false only when the Hub could not be reached the last time it was
        asked; ``report.degraded`` says the service works with less: a rate-limit backoff,
        or a cache set aside (answers come from the Hub directly)::

            report = await auth.health()
            if not report.ready:
                print("the Hub is unreachable:", report.last_error)
        """
        self._check_open()
        client = self._client
        heard = client.last_heard
        now = time.monotonic()
        fresh_for = max_age if heard is not None and heard.reachable else min(max_age, 5.0)
        stale = heard is None or now - heard.at > fresh_for
        if stale and not self._settings.offline and client.backoff_remaining() == 0:
            probe = self._health_probe
            if probe is None or probe.done():
                probe = self._health_probe = asyncio.ensure_future(
                    client.request("GET", self.endpoint + DISCOVERY_PATH, time_limit=probe_timeout)
                )
            await asyncio.shield(probe)
        return health_report(
            client.last_heard,
            backoff=client.backoff_remaining(),
            cache=self._cache,
            offline=self._settings.offline,
        )

    async def _forget_cached(self, token: str) -> None:
        """Drop what the whoami cache, if any, holds for ``token``."""
        if self._cache is not None:
            await self._cache.invalidate(token, endpoint=self._settings.endpoint)


async def interactive_device_login(
    auth: HubAuth, *, add_to_git_credentials: bool
) -> Result[LoginInfo]:
    """The browser login at a terminal, shared by ``HubAuth.login()`` and ``hub-auth login``:
    show the URL and the code, print a dot per poll while waiting, then store the token."""
    started = await auth.start_device_login()
    if isinstance(started, Err):
        return started
    show_device_code(started.value)
    with show_device_pending() as on_pending:
        return await auth._complete_device_login(
            started.value, add_to_git_credentials=add_to_git_credentials, on_pending=on_pending
        )
