"""A private key and its certificate, replaced as one pair.

Two files cannot be renamed in one step, and a kill between two renames
would leave a new key beside the old certificate: a daemon that cannot start.
So a pair is replaced in three renames, after both new files are whole on
disk (daemon/safewrite.py):

1. the new key to ``KEY.new`` (the pending key);
2. the new certificate over ``CERT``: from here on the new pair is the pair;
3. ``KEY.new`` over ``KEY``.

Killed before step 2, the old pair is whole, and a ``KEY.new`` beside it
matches nothing.  Killed between steps 2 and 3, ``CERT`` is new and its key
is ``KEY.new``.  So whoever loads the pair next takes ``KEY.new`` when ``KEY``
is not the certificate's key: the daemon at start (:func:`key_candidates`,
tried in order by the TLS stack itself), and ``make-cert``, which also ends
the interrupted swap (:func:`settle`).

Why not one file holding both, or a folder swapped by one symlink: configs
in use name ``certfile`` and ``keyfile`` as two plain files, and those keep
working as they are, with the same names.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .safewrite import discard_staged, staged, sync_directory

__all__ = ["PENDING_SUFFIX", "key_candidates", "pending_key", "replace_pair", "settle"]

PENDING_SUFFIX = ".new"
MAX_PEM_BYTES = 64 * 1024


def pending_key(key_path: str | os.PathLike) -> Path:
    """Where the new key waits while its certificate replaces the old one."""
    key_path = Path(key_path)
    return key_path.with_name(key_path.name + PENDING_SUFFIX)


def replace_pair(
    *, key_path: Path, key_data: bytes, cert_path: Path, cert_data: bytes, owner: tuple[int, int] | None = None, cert_mode: int = 0o644
) -> None:
    """Replace the key (mode 0600) and its certificate in the order above, so
    that a kill at any point leaves a pair that :func:`key_candidates` finds."""
    tmp_key = staged(key_path, key_data, mode=0o600, owner=owner)
    try:
        tmp_cert = staged(cert_path, cert_data, mode=cert_mode, owner=owner)
    except BaseException:
        Path(tmp_key).unlink(missing_ok=True)
        raise
    try:
        _rename(tmp_key, pending_key(key_path))
    except BaseException:
        for tmp in (tmp_key, tmp_cert):
            Path(tmp).unlink(missing_ok=True)
        raise
    try:
        _rename(tmp_cert, cert_path)
    except BaseException:
        Path(tmp_cert).unlink(missing_ok=True)
        raise
    _rename(pending_key(key_path), key_path)


def _rename(src: str | Path, dst: Path) -> None:
    """One step, durable before the next (a power cut keeps the order)."""
    os.replace(src, dst)
    sync_directory(dst.parent)


def key_candidates(key_path: str | None) -> list[str | None]:
    """The key files to try with a certificate, in order: the configured
    one, then its pending key if an interrupted swap left one."""
    if key_path is None:
        return [None]
    pending = pending_key(key_path)
    return [key_path, str(pending)] if os.path.lexists(pending) else [key_path]


def settle(key_path: Path, cert_path: Path) -> bool:
    """End a swap a kill interrupted: a pending key that is the certificate's
    key takes its place (True); one that is not (killed before step 2) is
    removed, and so are staged files the kill left.  Run by ``make-cert``
    (under its folder lock) before it reads or replaces the pair."""
    for path in (key_path, cert_path):
        discard_staged(path)
    pending = pending_key(key_path)
    if not os.path.lexists(pending):
        return False
    if _is_key_of(pending, cert_path) and not _is_key_of(key_path, cert_path):
        _rename(pending, key_path)
        return True
    pending.unlink()
    sync_directory(pending.parent)
    return False


def _read(path: Path) -> bytes | None:
    """A regular file's first bytes (never through a link), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, MAX_PEM_BYTES) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


def _is_key_of(key_path: Path, cert_path: Path) -> bool:
    """Whether ``key_path`` holds the private key of the first certificate in ``cert_path``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key_pem, cert_pem = _read(key_path), _read(cert_path)
    if key_pem is None or cert_pem is None:
        return False
    try:
        key = load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except (ValueError, TypeError, IndexError):
        return False
    return key.public_key() == cert.public_key()
