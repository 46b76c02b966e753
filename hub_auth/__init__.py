"""hub_auth: async-first Hugging Face Hub authentication.

    from hub_auth import HubAuth, Ok, Err

    async with HubAuth() as auth:
        match await auth.whoami():
            case Ok(user):
                print(user.username, user.organizations)
            case Err(error):
                print(error.kind, error)

Names are imported lazily so that ``hub-auth token`` and friends start fast: the network
stack (aiohttp) and the models (pydantic) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hub_auth._errors import ErrorKind, HubAuthError
from hub_auth._result import Err, Ok, Result, is_err, is_ok

if TYPE_CHECKING:
    from hub_auth._cache import CacheStats, WhoamiCache
    from hub_auth._cache.memory import MemoryCache
    from hub_auth._cache.redis import RedisCache
    from hub_auth._client import HubAuth
    from hub_auth._health import CacheHealth, HealthReport
    from hub_auth._login.outcomes import LogoutInfo, StoredToken, SwitchInfo
    from hub_auth._login.store import TokenStore
    from hub_auth._models import (
        DeviceCode,
        FineGrainedScope,
        LoginInfo,
        OrgInfo,
        TokenInfo,
        UserInfo,
    )
    from hub_auth._sync import HubAuthSync
    from hub_auth._sync_support import LoopRunningError

__version__ = "0.1.0.dev0"
"""The version of hub_auth (PEP 440)."""

_LAZY = {
    "CacheHealth": "hub_auth._health",
    "CacheStats": "hub_auth._cache",
    "MemoryCache": "hub_auth._cache.memory",
    "RedisCache": "hub_auth._cache.redis",
    "DeviceCode": "hub_auth._models",
    "FineGrainedScope": "hub_auth._models",
    "HealthReport": "hub_auth._health",
    "HubAuth": "hub_auth._client",
    "HubAuthSync": "hub_auth._sync",
    "LoopRunningError": "hub_auth._sync_support",
    "LoginInfo": "hub_auth._models",
    "LogoutInfo": "hub_auth._login.outcomes",
    "OrgInfo": "hub_auth._models",
    "StoredToken": "hub_auth._login.outcomes",
    "SwitchInfo": "hub_auth._login.outcomes",
    "TokenInfo": "hub_auth._models",
    "TokenStore": "hub_auth._login.store",
    "UserInfo": "hub_auth._models",
    "WhoamiCache": "hub_auth._cache",
}

# Reprs, tracebacks and help() show the public path (``hub_auth.HubAuth``), not the private
# module. Not the pydantic models, Ok/Err and StoredToken: their annotations are strings that
# typing.get_type_hints() (and pydantic) resolve in their module's namespace, not in this one.
_SHOWN_HERE = frozenset(
    {
        "CacheHealth",
        "CacheStats",
        "ErrorKind",
        "HealthReport",
        "HubAuth",
        "HubAuthError",
        "HubAuthSync",
        "LogoutInfo",
        "LoopRunningError",
        "MemoryCache",
        "RedisCache",
        "SwitchInfo",
        "TokenStore",
        "WhoamiCache",
        "is_err",
        "is_ok",
    }
)
for _value in (ErrorKind, HubAuthError, is_err, is_ok):
    _value.__module__ = __name__
del _value

__all__ = [
    "CacheHealth",
    "CacheStats",
    "DeviceCode",
    "Err",
    "ErrorKind",
    "FineGrainedScope",
    "HealthReport",
    "HubAuth",
    "HubAuthError",
    "HubAuthSync",
    "LoginInfo",
    "LogoutInfo",
    "LoopRunningError",
    "MemoryCache",
    "Ok",
    "OrgInfo",
    "RedisCache",
    "Result",
    "StoredToken",
    "SwitchInfo",
    "TokenInfo",
    "TokenStore",
    "UserInfo",
    "WhoamiCache",
    "__version__",
    "is_err",
    "is_ok",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hub_auth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if name in _SHOWN_HERE:
        value.__module__ = __name__
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
