"""Write a file as root without trusting the folder it goes into.

``make-cert`` runs as root and may be pointed at any ``--out-dir``.  A plain
``open(path, "w")`` there follows a symlink someone planted at the name (and
``chown`` follows it too), so it could overwrite any file on the system with a
private key.  Here every file is written into a fresh temporary file made
with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (``tempfile.mkstemp``) in the target folder,
given its owner and mode on the open descriptor, flushed to disk, and then
renamed over the target (``os.replace``, which replaces a symlink instead of
following it).  A kill at any point leaves the old file whole, and at worst
a hidden temporary beside it, which the next run in that folder removes
(:func:`discard_staged`, under :func:`folder_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import CertError

__all__ = ["check_directory", "discard_staged", "folder_lock", "staged", "sync_directory", "write_atomic"]

_STAGED_SUFFIX = ".tmp"


def check_directory(directory: Path) -> None:
    """Refuse a folder that others may write to, unless it is sticky (/tmp):
    there anyone could swap our files between two steps."""
    try:
        st = os.stat(directory)
    except OSError as e:
        raise CertError(f"cannot use directory {directory}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CertError(f"{directory} is not a directory")
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise CertError(
            f"refusing to write into {directory}: every user may write to it (mode {stat.S_IMODE(st.st_mode):04o}); "
            "pick another --out-dir or run 'chmod o-w' on it"
        )


def write_atomic(path: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data``, created with ``mode`` and ``owner``
    (uid, gid) before the first byte is written; never follows a link.
    (Two files that must change together: daemon/certpair.py.)"""
    tmp = staged(path, data, mode=mode, owner=owner)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def staged(path: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None = None) -> str:
    """A new hidden file beside ``path`` holding ``data``, whole on disk: its
    name, for the caller to rename over ``path`` (it is removed on any error)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_STAGED_SUFFIX, dir=path.parent)  # O_EXCL|O_NOFOLLOW, 0600
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def sync_directory(directory: Path) -> None:
    """Make the rename itself durable (a power cut on a Pi's SD card)."""
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


@contextlib.contextmanager
def folder_lock(directory: Path, *, what: str) -> Iterator[None]:
    """Hold ``directory`` for one writer at a time (``flock`` on the folder
    itself, released however the holder ends); a second one is refused in
    one sentence instead of interleaving its renames with the first's."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CertError(f"cannot use directory {directory}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CertError(f"another {what} is writing into {directory}; try again when it has finished") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def discard_staged(path: Path) -> list[Path]:
    """Remove the temporaries :func:`staged` made for ``path`` that a kill
    left behind (hidden, private, and never read); call under
    :func:`folder_lock`, so that none is another run's file in flight."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}" + re.escape(_STAGED_SUFFIX))
    gone = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return gone
    for name in names:
        if not pattern.fullmatch(name):
            continue
        tmp = path.parent / name
        try:
            if stat.S_ISREG(os.lstat(tmp).st_mode):  # never a link or anything else
                tmp.unlink()
                gone.append(tmp)
        except OSError:
            pass
    if gone:
        sync_directory(path.parent)
    return gone
