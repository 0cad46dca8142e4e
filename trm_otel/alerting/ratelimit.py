"""Per-receiver rate limits: a token bucket, and what exceeds it waits for a digest.

``rate_limit: {max_notifications: 5, per: 10m}`` on a receiver lets a burst
of 5 through, then one more every 2 minutes. A notification that finds the
bucket empty is *held* (persisted as such in the notification log) and,
when a token is back, every held notification of that receiver goes out as
one digest. Nothing is dropped: a storm becomes one message that says how
many it folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``capacity / per_s`` per second."""

    capacity: int
    per_s: float
    tokens: float = field(default=-1.0)
    updated_at: float | None = None

    def __post_init__(self) -> None:
        if self.capacity < 1 or not self.per_s > 0:
            raise ValueError(f"a rate limit needs capacity >= 1 and a positive period, got {self.capacity}/{self.per_s}")
        if self.tokens < 0:
            self.tokens = float(self.capacity)

    def _refill(self, now: float) -> None:
        if self.updated_at is not None and now > self.updated_at:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.capacity / self.per_s)
        self.updated_at = now if self.updated_at is None else max(self.updated_at, now)

    def available(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
