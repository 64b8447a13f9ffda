"""A network of the test's own for mDNS: a private network namespace
(``unshare -n``) whose loopback carries multicast, entered by the test's thread.

Processes the test starts inside :func:`private_lan` (the daemon, the client)
live in that namespace, and so do the sockets it opens (a DNS-SD responder),
so the client's mDNS browse hears exactly what the test advertised, and
nothing of the machine's real network. Needs root.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
from typing import Iterator, Mapping

from gravity_led.daemon.dnssd import SERVICE_TYPE

__all__ = ["advertised", "private_lan", "why_no_lan"]

CLONE_NEWNET = 0x40000000
SETUP = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"


def why_no_lan() -> str | None:
    """Why :func:`private_lan` cannot work here, or None."""
    if os.geteuid() != 0:
        return "a private network namespace (unshare -n) needs root"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux, iproute2)"
    return None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def private_lan() -> Iterator[None]:
    """Run the block (this thread, what it starts) in a fresh network namespace:
    only a loopback, up, with a route for multicast (224.0.0.0/4)."""
    holder = subprocess.Popen(["unshare", "-n", "sh", "-c", f"{SETUP} && echo ready && exec cat"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None
        if holder.stdout.readline() != "ready\n":
            raise RuntimeError(f"could not make a private network namespace: {holder.communicate(timeout=10)[1].strip()}")
        with open("/proc/thread-self/ns/net") as home, open(f"/proc/{holder.pid}/ns/net") as lan:
            _setns(lan.fileno())
            try:
                yield
            finally:
                _setns(home.fileno())
    finally:
        if holder.stdin is not None:
            holder.stdin.close()  # cat ends; the namespace lives on while the test's processes do
        holder.wait(10)


@contextlib.contextmanager
def advertised(*services: tuple[str, int, Mapping[str, str]], host: str = "testpi") -> Iterator[None]:
    """A DNS-SD responder (python-zeroconf's own) that advertises each ``(instance
    name, port, TXT)`` as ``_gravity-led._tcp`` on 127.0.0.1, as avahi-daemon
    does on a Pi, until the block ends (then it says goodbye)."""
    from zeroconf import ServiceInfo, Zeroconf

    fq_type = SERVICE_TYPE + ".local."
    zc = Zeroconf(interfaces=["127.0.0.1"])
    try:
        for name, port, txt in services:
            zc.register_service(ServiceInfo(fq_type, f"{name}.{fq_type}", addresses=[socket.inet_aton("127.0.0.1")],
                                            port=port, properties=dict(txt), server=f"{host}.local."))  # fmt: skip
        yield
    finally:
        zc.close()
