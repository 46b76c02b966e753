"""A clock the test moves by hand, for code that takes an injected ``clock`` (no real sleeps)."""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """Returns ``now`` (seconds) until the test calls :meth:`advance`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds
