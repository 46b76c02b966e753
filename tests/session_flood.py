"""A flood of sign-ins in progress against a session store bounded to 20 KB of them."""

from __future__ import annotations

from typing import Protocol

BOUND_BYTES = 20_000
SESSION_KEY = "s" * 64


class Store(Protocol):
    async def save(self, key: str, value: str, ttl: float) -> None: ...
    async def load(self, key: str) -> str | None: ...
    async def delete(self, key: str) -> None: ...


def pending_key(number: int) -> str:
    return f"login:{number:064d}"


async def flood_sign_ins(store: Store) -> list[int]:
    """A signed-in session, then 100 sign-ins in progress of about 1.4 KB sealed each (140 KB
    in all): only the newest fit the bound, and the session stays. Returns the kept numbers."""
    await store.save(SESSION_KEY, "a signed-in user", 3600)
    for number in range(100):
        await store.save(pending_key(number), "x" * 1000, 600)
    kept = [number for number in range(100) if await store.load(pending_key(number))]
    assert 5 <= len(kept) <= BOUND_BYTES // 1000
    assert kept == list(range(100 - len(kept), 100))  # the newest are kept
    assert await store.load(SESSION_KEY) == "a signed-in user"
    return kept


async def finish_sign_ins(store: Store, kept: list[int]) -> None:
    for number in kept:
        await store.delete(pending_key(number))
