"""Counts in messages, in words a reader cannot misread: "1 frame", "2 frames".

Shared by the daemon's log and the client's messages, so both say it the same way.
"""

from __future__ import annotations

__all__ = ["count", "frame_counts"]


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number: ``count(1, "attempt")`` is "1 attempt"."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def frame_counts(accepted: int, rejected: int) -> str:
    """All frames, then the split when some were rejected: "3 frames (2 accepted, 1 rejected)"."""
    total = count(accepted + rejected, "frame")
    return f"{total} ({accepted} accepted, {rejected} rejected)" if rejected else total
