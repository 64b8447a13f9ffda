"""Recordings: CSV files of ``t,x,y,z`` (t in seconds from the first sample).

Written by ``--record`` on any source and read back by ``replay``, so a phone
session can be captured once and reused in demos and tests.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gravity_led.daemon.protocol import FrameError, Vector, make_vector, parse_number

from . import ClientError

__all__ = ["HEADER", "Recorder", "Sample", "read_recording"]

HEADER = ("t", "x", "y", "z")


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    vector: Vector


def _open_error(path: Path, err: OSError, doing: str) -> ClientError:
    reason = {
        FileNotFoundError: "does not exist",
        PermissionError: "is not accessible to this user",
        IsADirectoryError: "is a directory",
    }.get(type(err), err.strerror or str(err))
    if doing == "write" and isinstance(err, FileNotFoundError):
        reason = "cannot be created because its folder does not exist"
    return ClientError(f"{path} {reason}")


class Recorder:
    """Appends samples to a CSV file; a context manager that always closes it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._fh: IO[str] = self.path.open("w", newline="", encoding="utf-8")
        except OSError as e:
            raise _open_error(self.path, e, "write") from None
        self._writer = csv.writer(self._fh, lineterminator="\n")
        self._writer.writerow(HEADER)
        self._t0: float | None = None
        self.count = 0

    def write(self, now: float, v: Vector) -> None:
        """Record ``v`` seen at monotonic time ``now``; times are stored relative to the first sample."""
        if self._t0 is None:
            self._t0 = now
        self._writer.writerow((f"{now - self._t0:.6f}", repr(v[0]), repr(v[1]), repr(v[2])))
        self.count += 1

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_recording(path: str | os.PathLike[str]) -> list[Sample]:
    """Load a whole recording, or raise :class:`ClientError` naming the first bad line."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(enumerate(csv.reader(fh), start=1))
    except OSError as e:
        raise _open_error(path, e, "read") from None
    except (UnicodeDecodeError, csv.Error):
        raise ClientError(f"{path} is not a CSV text file") from None
    samples: list[Sample] = []
    last_t = -math.inf
    for lineno, row in rows:
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if lineno == 1 and cells[0].lower() == "t":
            continue
        where = f"{path} line {lineno}"
        if len(cells) != 4:
            raise ClientError(f"{where}: expected 4 columns t,x,y,z, got {len(cells)}")
        try:
            t = parse_number(cells[0])
            v = make_vector(*(parse_number(c) for c in cells[1:]))
        except ValueError as e:
            detail = e.message if isinstance(e, FrameError) else "not a number"
            raise ClientError(f"{where}: {detail}") from None
        if not math.isfinite(t) or t < last_t:
            raise ClientError(f"{where}: times must be finite and never go backwards")
        last_t = t
        samples.append(Sample(t, v))
    if not samples:
        raise ClientError(f"{path} holds no samples")
    return samples
