"""``HealthReport``: what a client last saw of the Hub and of its cache (``HubAuth.health``).

A readiness probe reads it every few seconds on every replica, so it is built from what real
calls saw (``HubClient.last_heard``, the backoff, the cache's ``available``), not from a request
per probe: probes must never become a request storm on a Hub that rate-limits per IP.
"""

# No ``from __future__ import annotations``: the classes are shown as ``hub_auth.HealthReport``,
# and their annotations must resolve without this module's namespace (typing.get_type_hints).
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from hub_auth._errors import ErrorKind

if TYPE_CHECKING:
    from hub_auth._http import Heard

__all__ = ["CacheHealth", "HealthReport", "health_report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheHealth:
    """The whoami cache as last seen."""

    kind: str
    """Its class name: ``MemoryCache``, ``RedisCache`` or your own."""
    available: bool
    """False while its shared store is set aside after a failure (Redis down): whoami asks
    the Hub directly meanwhile."""
    set_aside_until: datetime | None
    """When the store is tried again (UTC), while it is set aside."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """What ``HubAuth.health()`` reports: frozen, and ``as_dict()`` for a JSON answer."""

    hub_reachable: bool | None
    """The Hub answered (not with a 5xx) the last time it was asked; ``False``: it did not
    (network, timeout, 5xx); ``None``: not asked (offline)."""
    hub_heard_at: datetime | None
    """When the Hub was last asked (UTC)."""
    backing_off_until: datetime | None
    """Until when (UTC) the Hub's rate limit keeps this client from asking it, if it does."""
    cache: CacheHealth | None
    """The whoami cache, if the client has one."""
    last_error: ErrorKind | None
    """Why the last request to the Hub failed (``None``: it did not)."""
    checked_at: datetime
    """When this report was made (UTC)."""

    @property
    def ready(self) -> bool:
        """False only when the Hub could not be reached the last time it was asked."""
        return self.hub_reachable is not False

    @property
    def degraded(self) -> bool:
        """Working with less: a rate-limit backoff, or the cache set aside."""
        cache_down = self.cache is not None and not self.cache.available
        return self.backing_off_until is not None or cache_down

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-ready values (dates in ISO 8601, kinds as their value)."""

        def when(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        cache = self.cache
        return {
            "ready": self.ready,
            "degraded": self.degraded,
            "hub_reachable": self.hub_reachable,
            "hub_heard_at": when(self.hub_heard_at),
            "backing_off_until": when(self.backing_off_until),
            "cache": None
            if cache is None
            else {
                "kind": cache.kind,
                "available": cache.available,
                "set_aside_until": when(cache.set_aside_until),
            },
            "last_error": None if self.last_error is None else self.last_error.value,
            "checked_at": when(self.checked_at),
        }


def health_report(
    heard: "Heard | None", *, backoff: float, cache: object | None, offline: bool
) -> HealthReport:
    """The report from what was last heard (``heard.at`` is ``time.monotonic()``), the seconds
    of backoff left and the cache (duck-typed: ``available`` and ``retry_in`` when it has
    them)."""
    now = datetime.now(UTC)
    monotonic = time.monotonic()

    def at(seconds_from_now: float) -> datetime:
        return now + timedelta(seconds=seconds_from_now)

    cache_health = None
    if cache is not None:
        retry_in = getattr(cache, "retry_in", None)
        cache_health = CacheHealth(
            kind=type(cache).__name__,
            available=bool(getattr(cache, "available", True)),
            set_aside_until=at(retry_in) if isinstance(retry_in, int | float) else None,
        )
    return HealthReport(
        hub_reachable=None if offline or heard is None else heard.reachable,
        hub_heard_at=None if heard is None else at(heard.at - monotonic),
        backing_off_until=at(backoff) if backoff > 0 else None,
        cache=cache_health,
        last_error=None if heard is None else heard.kind,
        checked_at=now,
    )
