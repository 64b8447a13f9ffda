"""daemon/files.py: settings files are read without blocking, and every
problem is one sentence."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from gravity_led.daemon.files import UnreadableFile, read_small_file


def test_a_regular_file_is_read(tmp_path):
    p = tmp_path / "f.toml"
    p.write_bytes(b"port = 1\n")
    assert read_small_file(p, what="config file") == b"port = 1\n"
    link = tmp_path / "link"
    link.symlink_to(p)
    assert read_small_file(link, what="config file") == b"port = 1\n"
    assert read_small_file(os.devnull, what="config file") == b""  # "no settings"


def test_a_fifo_is_refused_at_once_even_without_a_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = threading.Event()
    result: list[BaseException] = []

    def read():
        try:
            read_small_file(fifo, what="config file")
        except UnreadableFile as e:
            result.append(e)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(5):
        with open(fifo, "wb"):  # unblock the reader so the thread ends
            pass
        pytest.fail("reading a FIFO blocked until a writer came")
    assert str(result[0]) == f"config file {fifo} is a FIFO (named pipe), not a regular file"


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p.mkdir(), "is a directory, not a regular file"),
        (lambda p: None, "does not exist"),
        (lambda p: p.symlink_to(p), "cannot be read (Too many levels of symbolic links)"),
        (lambda p: p.symlink_to("/dev/zero"), "is a device, not a regular file"),
        (lambda p: p.write_bytes(b"x" * (1024 * 1024 + 1)), "is 1,048,577 bytes, more than the 1,048,576 it may have"),
    ],
    ids=["directory", "missing", "symlink-loop", "device", "too-big"],
)
def test_everything_but_a_small_regular_file_is_one_sentence(tmp_path, make, expected):
    p = tmp_path / "cfg"
    make(p)
    with pytest.raises(UnreadableFile) as e:
        read_small_file(p, what="config file")
    assert str(e.value) == f"config file {p} {expected}"


def test_a_socket_and_a_long_name_are_refused(tmp_path):
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(UnreadableFile, match="is a socket, not a regular file"):
            read_small_file(path, what="config file")
    with pytest.raises(UnreadableFile, match=r"cannot be read \(File name too long\)"):
        read_small_file(tmp_path / ("x" * 300), what="config file")


def test_exactly_the_limit_is_allowed(tmp_path):
    p = tmp_path / "t"
    p.write_bytes(b"a" * 10)
    assert read_small_file(p, what="token file", max_bytes=10) == b"a" * 10
    with pytest.raises(UnreadableFile, match="is 10 bytes, more than the 9 it may have"):
        read_small_file(p, what="token file", max_bytes=9)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file(tmp_path):
    p = tmp_path / "secret"
    p.write_text("x")
    p.chmod(0)
    with pytest.raises(UnreadableFile, match="is not readable by this user"):
        read_small_file(p, what="token file")
