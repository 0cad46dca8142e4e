"""The window grid every in-memory store shares.

    >>> grid = WindowGrid(window_s=10, history_s=60)
    >>> grid.index(1_700_000_015_000_000_000), grid.oldest(now_s=1_700_000_015.0)
    (170000001, 169999995)

Spans, scalar series and log counts are all kept per fixed window (window
``i`` covers ``[i * window, (i + 1) * window)`` of end time) and dropped
after ``history_s``; one grid keeps their arithmetic identical, so a range
means the same windows in every view.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WindowGrid"]


@dataclass(frozen=True, slots=True)
class WindowGrid:
    """Fixed windows of ``window_s`` seconds, ``history_s`` of them kept."""

    window_s: float
    history_s: float

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError(f"window_s must be > 0, got {self.window_s:g}")
        if self.history_s < self.window_s:
            raise ValueError(f"history_s ({self.history_s:g}) must be at least window_s ({self.window_s:g})")

    @property
    def window_ns(self) -> int:
        return int(round(self.window_s * 1e9))

    @property
    def history_windows(self) -> int:
        """How many windows the history spans (the newest one partly)."""
        return int(self.history_s * 1e9) // self.window_ns + 1

    def index(self, time_ns: int) -> int:
        """The window holding ``time_ns`` (also works elementwise on int64 arrays)."""
        return time_ns // self.window_ns

    def oldest(self, now_s: float) -> int:
        """The oldest window still inside the history."""
        return int((now_s - self.history_s) * 1e9) // self.window_ns

    def first(self, range_s: float, now_s: float) -> int:
        """The first window of the range ``[now - range_s, now]``."""
        return int((now_s - range_s) * 1e9) // self.window_ns

    def start_s(self, index: int) -> float:
        return index * self.window_ns / 1e9
