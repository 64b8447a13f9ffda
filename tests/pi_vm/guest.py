"""A Raspberry Pi stand-in: the cached bookworm guest booted in QEMU.

The guest runs systemd as PID 1 on Debian's kernel with gpio-sim behind
/dev/gpiochip*. The test's hands inside it are the QEMU guest agent
(``guest-exec`` over a virtio serial port: no SSH, no keys); its port 5678 is
forwarded to a free port on 127.0.0.1, where the host's client connects.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent
CACHE = Path(os.environ.get("GRAVITY_LED_PIVM_CACHE", "/var/cache/gravity-led-pivm"))


def progress(msg: str) -> None:
    """A progress line on the terminal, even under pytest's capture."""
    line = f"pi_vm [{time.strftime('%H:%M:%S')}] {msg}\n"
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(line)
    except OSError:
        sys.__stderr__.write(line)
        sys.__stderr__.flush()


@dataclass(frozen=True)
class Images:
    root: Path  # vmlinuz, initrd.img, rootfs.img
    wheelhouse: Path


def build(cache: Path = CACHE) -> Images:
    """Run build.sh (a no-op when the cache is warm); its progress goes to stderr."""
    r = subprocess.run(["bash", str(HERE / "build.sh"), str(cache)], stdout=subprocess.PIPE, text=True, timeout=1500)
    if r.returncode != 0:
        raise RuntimeError(f"tests/pi_vm/build.sh exited {r.returncode}")
    root, wheelhouse = r.stdout.split()
    return Images(Path(root), Path(wheelhouse))


class GuestError(RuntimeError):
    pass


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class Guest:
    """One boot of the stand-in; use as a context manager (powers off at exit)."""

    current: Guest | None = None
    """The guest now running (for the failure report in conftest.py)."""

    def __init__(self, images: Images, workdir: Path, *, port: int) -> None:
        self.images = images
        self.dir = workdir
        self.port = port
        self.serial_log = workdir / "serial.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._qga: socket.socket | None = None
        self._buf = b""
        self._id = 0

    # -- lifecycle ------------------------------------------------------
    def _share_image(self) -> Path:
        """A second disk: this checkout (as a Pi user clones it), the wheelhouse, the stand-in's files."""
        share = self.dir / "share"
        share.mkdir()
        with tarfile.open(self.dir / "src.tar", "w") as tar:
            def skip(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
                name = ti.name.split("/", 1)[-1] if "/" in ti.name else ""
                top = name.split("/", 1)[0]
                if top in {".git", ".venv", "build", ".pytest_cache"} or "__pycache__" in ti.name or ti.name.endswith(".egg-info"):
                    return None
                return ti
            tar.add(SRC, arcname="gravity-led", filter=skip)
        with tarfile.open(self.dir / "src.tar") as tar:
            tar.extractall(share, filter="tar")
        shutil.copytree(self.images.wheelhouse, share / "wheelhouse")
        shutil.copytree(HERE / "standin", share / "standin")
        img = self.dir / "share.img"
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "share", "-d", str(share), str(img), "256M"], check=True, timeout=120, stdout=subprocess.DEVNULL)
        return img

    def boot(self) -> None:
        overlay = self.dir / "root.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.images.root / "rootfs.img"), str(overlay)], check=True, timeout=60)
        share = self._share_image()
        qga = self.dir / "qga.sock"
        accel = "kvm" if os.environ.get("GRAVITY_LED_PIVM_KVM") == "1" else "tcg,thread=multi"
        cmd = [
            "qemu-system-x86_64", "-accel", accel, "-cpu", "max", "-smp", "2", "-m", "2048", "-M", "q35",
            "-kernel", str(self.images.root / "vmlinuz"), "-initrd", str(self.images.root / "initrd.img"),
            "-append", "console=ttyS0 root=/dev/vda rw systemd.firstboot=off panic=-1 quiet",
            "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe",
            "-drive", f"file={share},if=virtio,format=raw,cache=unsafe",
            "-nic", f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{self.port}-:5678",
            "-chardev", f"socket,path={qga},server=on,wait=off,id=qga0",
            "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-display", "none", "-serial", f"file:{self.serial_log}", "-monitor", "none",
            "-qmp", f"unix:{self.dir / 'qmp.sock'},server=on,wait=off", "-no-reboot",
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.dir / "qemu.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while self._qga is None:
            self._check_alive()
            if time.monotonic() > deadline:
                raise GuestError("QEMU did not open its guest agent socket")
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(str(qga))
                self._qga = s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                time.sleep(0.05)  # QEMU is still starting: nothing to wait on but the file
        # The agent answers once the guest has booted far enough to start it.
        while True:
            self._check_alive()
            if time.monotonic() > deadline:
                raise GuestError("the guest agent did not answer within 300 s of boot")
            if self._sync(timeout=3.0):
                break
        # ... and the system is up (multi-user reached, or degraded: the checks say which).
        r = self.sh("systemctl is-system-running --wait", timeout=240)
        if r.out.strip() not in {"running", "degraded"}:
            raise GuestError(f"guest did not finish booting: {r}")

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise GuestError(f"QEMU exited {self.proc.returncode}: {(self.dir / 'qemu.log').read_text(errors='replace')}")

    def poweroff(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            with socket.socket(socket.AF_UNIX) as qmp:
                qmp.settimeout(5)
                qmp.connect(str(self.dir / "qmp.sock"))
                f = qmp.makefile("rwb")
                f.readline()
                for cmd in ({"execute": "qmp_capabilities"}, {"execute": "system_powerdown"}):
                    f.write(json.dumps(cmd).encode() + b"\n")
                    f.flush()
                    f.readline()
            self.proc.wait(30)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Guest:
        Guest.current = self
        return self

    def __exit__(self, *exc: object) -> None:
        Guest.current = None
        if self._qga is not None:
            self._qga.close()
        self.poweroff()

    # -- guest agent ----------------------------------------------------
    def _send(self, cmd: dict) -> None:
        assert self._qga is not None
        self._qga.sendall(json.dumps(cmd).encode())

    def _recv(self, timeout: float) -> dict | None:
        assert self._qga is not None
        end = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self._qga.settimeout(left)
            try:
                chunk = self._qga.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise GuestError("the guest agent closed its channel")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        line = line.lstrip(b"\xff").strip()
        return json.loads(line) if line else self._recv(max(0.0, end - time.monotonic()))

    def _sync(self, timeout: float) -> bool:
        self._id += 1
        self._buf = b""
        self._send({"execute": "guest-sync-delimited", "arguments": {"id": self._id}})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            reply = self._recv(end - time.monotonic())
            if reply is None:
                return False
            if reply.get("return") == self._id:
                return True
        return False

    def _call(self, execute: str, timeout: float = 30.0, **arguments: object) -> object:
        self._send({"execute": execute, "arguments": arguments})
        reply = self._recv(timeout)
        if reply is None:
            raise GuestError(f"no answer from the guest agent to {execute}")
        if "error" in reply:
            raise GuestError(f"{execute}: {reply['error']}")
        return reply["return"]

    def sh(self, script: str, *, timeout: float = 120.0, check: bool = False, stdin: str | None = None) -> Result:
        """Run ``sh -c script`` as root in the guest; wait for it to end."""
        args: dict[str, object] = {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True}
        if stdin is not None:
            args["input-data"] = base64.b64encode(stdin.encode()).decode()
        pid = self._call("guest-exec", **args)["pid"]  # type: ignore[index]
        end = time.monotonic() + timeout
        delay = 0.02
        while True:
            st = self._call("guest-exec-status", pid=pid)
            assert isinstance(st, dict)
            if st["exited"]:
                break
            if time.monotonic() > end:
                raise GuestError(f"timed out after {timeout} s in the guest: {script}")
            time.sleep(delay)  # the agent has no completion event: poll it
            delay = min(delay * 2, 0.5)
        out = base64.b64decode(st.get("out-data", "")).decode(errors="replace")
        err = base64.b64decode(st.get("err-data", "")).decode(errors="replace")
        r = Result(st.get("exitcode", -st.get("signal", 0) or -1), out, err)
        if check and r.rc != 0:
            raise GuestError(f"{script}\n{r}")
        return r

    def ok(self, script: str, *, timeout: float = 120.0) -> str:
        """Run a script that must succeed; its stdout."""
        return self.sh(script, timeout=timeout, check=True).out

    def journal(self, *args: str) -> str:
        return self.sh("journalctl --no-pager " + " ".join(args), timeout=60).out
