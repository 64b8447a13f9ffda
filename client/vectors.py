"""Validation of vectors that come from somewhere other than a text frame."""

from __future__ import annotations

from daemon.protocol import Vector, encode_text, parse_text

__all__ = ["checked_vector"]


def checked_vector(x: float, y: float, z: float) -> Vector:
    """``Vector(x, y, z)`` if the daemon would accept it, else :class:`FrameError`.

    Goes through the protocol's own text encoding and parser (exact, since
    ``encode_text`` round-trips floats) so the client never second-guesses
    the daemon's rules about NaN, infinity or zero-length vectors.
    """
    return parse_text(encode_text((float(x), float(y), float(z))))
