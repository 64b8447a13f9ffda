"""Read a small settings file (the TOML configuration, the token) safely.

Why not ``Path.read_bytes()``: opening a FIFO blocks until a writer comes,
a device or a huge file never ends, and each ``OSError`` subclass would need
its own message.  Here anything but a regular file of sane size is refused
with one sentence, without blocking, so a reload can never freeze the daemon.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import UnreadableFile

__all__ = ["MAX_SETTINGS_BYTES", "SERVICE_GROUP", "UnreadableFile", "open_secret_warning", "read_small_file", "secret_fix"]

MAX_SETTINGS_BYTES = 1024 * 1024
"""No configuration file needs more than 1 MiB; a bigger one is a mistake."""
SERVICE_GROUP = "gravity-led"
"""The systemd service's group (deploy/install.sh): it may read secrets."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_small_file(path: str | Path, *, what: str, max_bytes: int = MAX_SETTINGS_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (``what`` names it in errors:
    "config file", "token file").  Raises :class:`UnreadableFile`, never
    ``OSError``, and never blocks on a FIFO or a device."""
    name = f"{what} {path}"
    try:
        # stat first, so that a FIFO or a device is never even opened ...
        before = os.stat(path)
        if stat.S_ISCHR(before.st_mode) and before.st_rdev == os.stat(os.devnull).st_rdev:
            return b""  # --config /dev/null: "no settings", a common idiom
        if not stat.S_ISREG(before.st_mode):
            raise UnreadableFile(f"{name} is {_kind(before.st_mode)}, not a regular file")
        if before.st_size > max_bytes:
            raise UnreadableFile(f"{name} is {before.st_size:,} bytes, more than the {max_bytes:,} it may have")
        # ... and O_NONBLOCK in case it was swapped for one since.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            after = os.fstat(fd)
            if not stat.S_ISREG(after.st_mode):
                raise UnreadableFile(f"{name} is {_kind(after.st_mode)}, not a regular file")
            chunks = []
            size = 0
            while size <= max_bytes:
                chunk = os.read(fd, max_bytes + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise UnreadableFile(f"{name} does not exist") from None
    except PermissionError:
        raise UnreadableFile(f"{name} is not readable by this user") from None
    except OSError as e:  # ELOOP, ENAMETOOLONG, EIO, ...: every one is a plain failure
        raise UnreadableFile(f"{name} cannot be read ({e.strerror or e.__class__.__name__})") from None
    if size > max_bytes:
        raise UnreadableFile(f"{name} grew to more than the {max_bytes:,} bytes it may have")
    return b"".join(chunks)


def secret_fix(path: str, *, mode: int, uid: int, gid: int, my_uid: int, my_user: str, service_gids: set[int]) -> tuple[str, str] | None:
    """Who besides us may read a secret file of this ``mode``, owner and
    group, and the command that stops it, as (who, fix); None if no one.

    Like ssh with its keys: any access for others, or for a group other than
    the service's own, is too much.  The fix keeps the daemon able to read it.
    """
    others = mode & 0o007
    group = mode & 0o070 and gid not in service_gids
    if not others and not group:
        return None
    who = "others" if others else "its group"
    q = _quote(path)
    if uid == my_uid or my_uid == 0 and uid == 0:
        return who, f"chmod 600 {q}"
    if gid in service_gids:
        return who, f"chmod 640 {q}"
    return who, f"chown {my_user} {q} && chmod 600 {q}"


def open_secret_warning(path: str, *, what: str) -> str | None:
    """One line if others may read the secret file ``path`` ("token file",
    "TLS key"), naming it and the chmod that fixes it; else None."""
    import grp
    import pwd

    try:
        st = os.stat(path)
    except OSError:
        return None  # reading it says what is wrong
    gids = {os.getegid()}
    try:
        gids.add(grp.getgrnam(SERVICE_GROUP).gr_gid)
    except KeyError:
        pass
    try:
        me = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        me = str(os.geteuid())
    found = secret_fix(str(path), mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, my_uid=os.geteuid(), my_user=me, service_gids=gids)
    if found is None:
        return None
    who, fix = found
    return f"{what} {path} may be read by {who} (mode {stat.S_IMODE(st.st_mode):04o}); fix it with: {fix}"


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)
