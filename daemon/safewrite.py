"""Write a file as root without trusting the folder it goes into.

``make-cert`` runs as root and may be pointed at any ``--out-dir``.  A plain
``open(path, "w")`` there follows a symlink someone planted at the name (and
``chown`` follows it too), so it could overwrite any file on the system with a
private key.  Here every file is written into a fresh temporary file made
with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (``tempfile.mkstemp``) in the target folder,
given its owner and mode on the open descriptor, flushed to disk, and then
renamed over the target (``os.replace``, which replaces a symlink instead of
following it).  A kill at any point leaves the old file whole.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import CertError

__all__ = ["check_directory", "staged", "sync_directory", "write_atomic"]


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL|O_NOFOLLOW, 0600
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
