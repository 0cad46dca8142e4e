"""The 12-column grid: overlap tests, halving a 24-column layout, and pushing panels apart.

    >>> halve_columns(6, 12)              # Grafana's 24 columns to ours
    (3, 6)
    >>> unstack([(0, 0, 6, 4), (3, 2, 6, 4)])
    [(0, 0, 6, 4), (3, 4, 6, 4)]
    >>> compact([(0, 3, 6, 4), (3, 9, 6, 4)])
    [(0, 0, 6, 4), (3, 4, 6, 4)]

A grid box is ``(x, y, w, h)`` in grid units. Both the validator (which
reports overlaps) and the importers (which repair them, after halving an
older or Grafana layout, or flattening collapsed rows) read boxes the same
way, so a repaired layout is one the validator accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["COLUMNS", "Box", "compact", "halve_columns", "overlaps", "unstack"]

#: Width of the dashboard grid.
COLUMNS = 12

Box = tuple[int, int, int, int]


def overlaps(a: Box, b: Box) -> bool:
    """Whether two boxes share any cell (touching edges do not count)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def halve_columns(x: int, w: int) -> tuple[int, int]:
    """``(x, w)`` on 24 columns as ``(x, w)`` on 12: both edges rounded half up, at least one wide.

    Rounding the edges rather than the width keeps neighbours that touched
    on 24 columns touching on 12, so halving alone never creates overlaps
    (except where a one-column panel must grow to a whole column).
    """
    left = min((max(x, 0) + 1) // 2, COLUMNS - 1)
    right = min((max(x + w, 0) + 1) // 2, COLUMNS)
    return left, max(right - left, 1)


def unstack(boxes: Sequence[Box]) -> list[Box]:
    """The boxes in order, each moved down just below any earlier box it overlaps.

    Earlier boxes win, as in reading order: after flattening a collapsed
    row, the row's panels keep their places and what followed moves down.
    """
    placed: list[Box] = []
    for x, y, w, h in boxes:
        while True:
            blocking = [p for p in placed if overlaps(p, (x, y, w, h))]
            if not blocking:
                break
            y = max(p[1] + p[3] for p in blocking)
        placed.append((x, y, w, h))
    return placed


def compact(boxes: Sequence[Box]) -> list[Box]:
    """Non-overlapping boxes, each moved up as far as the boxes above it allow (same order out).

    Grafana draws its grid this way whatever the stored ``y``; an import
    that dropped rows or panels applies it so their places do not stay
    empty.
    """
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    placed: dict[int, Box] = {}
    for i in order:
        x, _y, w, h = boxes[i]
        above = [p[1] + p[3] for p in placed.values() if p[0] < x + w and x < p[0] + p[2]]
        placed[i] = (x, max(above, default=0), w, h)
    return [placed[i] for i in range(len(boxes))]
