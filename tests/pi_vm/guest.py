"""A Raspberry Pi stand-in: the cached bookworm guest booted in QEMU.

The guest runs systemd as PID 1 on Debian's kernel with gpio-sim behind
/dev/gpiochip*. The test's hands inside it are the QEMU guest agent
(``guest-exec`` over a virtio serial port: no SSH, no keys); its port 5678 is
forwarded to a free port on 127.0.0.1, where the host's client connects.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent
CACHE = Path(os.environ.get("GRAVITY_LED_PIVM_CACHE", "/var/cache/gravity-led-pivm"))
SHARE_SIZE = "256M"


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


_built: dict[tuple[Path, str], Images] = {}
_build_locks: dict[str, threading.Lock] = {"bookworm": threading.Lock(), "trixie": threading.Lock()}


def build(suite: str = "bookworm", cache: Path = CACHE) -> Images:
    """Run build.sh once per session and suite (a no-op when the cache is
    warm; two suites build side by side); its progress goes to stderr."""
    with _build_locks[suite]:
        if (cache, suite) not in _built:
            r = subprocess.run(["bash", str(HERE / "build.sh"), str(cache), suite], stdout=subprocess.PIPE, text=True, timeout=1500)
            if r.returncode != 0:
                raise RuntimeError(f"tests/pi_vm/build.sh {suite} exited {r.returncode}")
            root, wheelhouse = r.stdout.split()
            _built[cache, suite] = Images(Path(root), Path(wheelhouse))
        return _built[cache, suite]


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
    """One boot of the stand-in; use as a context manager (powers off at exit).
    Two may run at once: the tier runs the installer's paths on one while a
    copy of it runs the other checks."""

    running: list[Guest] = []
    _running_lock = threading.Lock()

    def __init__(self, images: Images, workdir: Path, *, port: int, name: str = "pi") -> None:
        self.images = images
        self.dir = workdir
        self.port = port
        self.name = name
        self.serial_log = workdir / "serial.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._qga: socket.socket | None = None
        self._buf = b""
        self._id = 0

    def progress(self, msg: str) -> None:
        progress(f"{self.name}: {msg}")

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
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "share", "-d", str(share), str(img), SHARE_SIZE], check=True, timeout=120, stdout=subprocess.DEVNULL)
        return img

    def _qemu_cmd(self, disk: Path, share: Path) -> list[str]:
        """The machine. A snapshot restores only into the very same one: its key
        is this command line (with this run's paths and port left out)."""
        qga = self.dir / "qga.sock"
        # One virtual CPU: the tier runs three guests on two host cores, and
        # with two CPUs each it took a quarter longer (emulated IPIs and RCU
        # work, more threads to share out); a Pi Zero has one core too.
        accel = "kvm" if os.environ.get("GRAVITY_LED_PIVM_KVM") == "1" else "tcg,thread=multi"
        cmd = [
            "qemu-system-x86_64", "-accel", accel, "-cpu", "max", "-smp", "1", "-m", "2048", "-M", "q35",
            "-kernel", str(self.images.root / "vmlinuz"), "-initrd", str(self.images.root / "initrd.img"),
            "-append", "console=ttyS0 root=/dev/vda rw systemd.firstboot=off panic=-1 quiet",
            "-drive", f"file={disk},if=virtio,format=qcow2,cache=unsafe",
            "-drive", f"file={share},if=virtio,format=raw,cache=unsafe",
            "-nic", f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{self.port}-:5678",
            "-chardev", f"socket,path={qga},server=on,wait=off,id=qga0",
            "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-display", "none", "-serial", f"file:{self.serial_log}", "-monitor", "none",
            "-qmp", f"unix:{self.dir / 'qmp.sock'},server=on,wait=off", "-no-reboot",
        ]
        return cmd

    def _qemu(self, disk: Path, share: Path, *, incoming: Path | None = None) -> None:
        """Start QEMU (a cold boot, or a restore from ``incoming``); wait for its guest agent."""
        qga = self.dir / "qga.sock"
        cmd = self._qemu_cmd(disk, share)
        if incoming is not None:
            cmd += ["-incoming", f"exec:cat {incoming}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.dir / "qemu.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        if incoming is not None:
            # the snapshot was taken paused: run it once it is loaded
            while (st := self._migration()) != "completed":
                self._check_alive()
                if st == "failed" or time.monotonic() > deadline:
                    raise GuestError(f"restoring the guest from {incoming} failed (migration {st})")
                time.sleep(0.1)  # QMP's MIGRATION event would need a listener kept open: poll
            self._qmp({"execute": "cont"})
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
        # The agent answers once the guest has booted far enough to start it
        # (at once, after a restore).
        while True:
            self._check_alive()
            if time.monotonic() > deadline:
                raise GuestError("the guest agent did not answer within 300 s of boot")
            if self._sync(timeout=3.0):
                break

    def boot(self) -> None:
        """Restore the booted guest from its cached snapshot (a few seconds),
        made by a cold boot the first time (about 30 s under TCG)."""
        with open(self.images.root / "boot.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another guest may be making it
            snap = self._snapshot()
        overlay = self.dir / "root.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(snap / "disk.qcow2"), str(overlay)], check=True, timeout=60)
        self._qemu(overlay, self._share_image(), incoming=snap / "state")
        # the guest's clock stood still in the snapshot; the share disk is new
        # under a device whose first blocks the kernel read (and cached) at boot
        self.ok(f"date -u -s @{time.time():.3f} >/dev/null && blockdev --flushbufs /dev/vdb")

    def _snapshot(self) -> Path:
        """The cached booted guest: its disk and its memory (QEMU's migration
        stream), kept beside the root image and keyed by this QEMU; made here if missing."""
        version = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=True).stdout.split("\n")[0]
        machine = " ".join(self._qemu_cmd(Path("DISK"), Path("SHARE"))).replace(str(self.dir), "RUN").replace(str(self.port), "PORT")
        key = hashlib.sha256(f"{self.images.root.name} {version} {machine}".encode()).hexdigest()[:16]
        snap = self.images.root / f"boot-{key}"
        if (snap / "state").is_file():
            return snap
        self.progress("booting the guest once to snapshot it (later runs restore it)")
        for old in [*self.images.root.glob("boot-*"), *self.images.root.glob("tmp-boot-*")]:
            shutil.rmtree(old, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix="tmp-boot-", dir=self.images.root))
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.images.root / "rootfs.img"), str(tmp / "disk.qcow2")], check=True, timeout=60)
        blank = self.dir / "blank-share.img"
        subprocess.run(["truncate", "-s", SHARE_SIZE, str(blank)], check=True)
        self._qemu(tmp / "disk.qcow2", blank)
        # ... and the system is up (multi-user reached, or degraded: the checks say which).
        r = self.sh("systemctl is-system-running --wait", timeout=240)
        if r.out.strip() not in {"running", "degraded"}:
            raise GuestError(f"guest did not finish booting: {r}")
        self.ok("sync")
        self._qmp({"execute": "stop"})
        self._save_memory(tmp / "state")
        self._qmp({"execute": "quit"})
        assert self.proc is not None
        self.proc.wait(60)
        if self._qga is not None:
            self._qga.close()
        self._qga, self._buf = None, b""
        tmp.rename(snap)
        return snap

    def fork(self, workdir: Path, *, port: int, name: str) -> Guest:
        """A copy of this running guest, memory and disk, as another guest (a
        second machine installed as this one is, without installing it again).

        This guest pauses for a few seconds: its disk gets a new overlay (the
        old one, now read-only, backs both), its memory goes to a file, and the
        copy starts from them. The copy runs until its close()."""
        frozen = self.dir / "root.qcow2"
        if not frozen.exists() or (self.dir / "root-after-fork.qcow2").exists():
            raise GuestError("a guest forks once, from the disk it booted with")
        state = workdir / "fork.state"
        self._qmp({"execute": "stop"})
        try:
            self._qmp({"execute": "blockdev-snapshot-sync",
                       "arguments": {"device": "virtio0", "snapshot-file": str(self.dir / "root-after-fork.qcow2"), "format": "qcow2"}})
            self._save_memory(state)
        finally:
            self._qmp({"execute": "cont"})
        child = Guest(self.images, workdir, port=port, name=name)
        Guest.running.append(child)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(frozen), str(workdir / "root.qcow2")], check=True, timeout=60)
        shutil.copy(self.dir / "share.img", workdir / "share.img")
        child._qemu(workdir / "root.qcow2", workdir / "share.img", incoming=state)
        state.unlink()
        return child

    def _save_memory(self, state: Path) -> None:
        """Write the (stopped) guest's memory and device state to ``state``: QEMU's migration stream."""
        self._qmp({"execute": "migrate", "arguments": {"uri": f"exec:cat > {state}"}})
        while (st := self._migration()) not in {"completed", "failed", "cancelled"}:
            time.sleep(0.1)  # QMP's MIGRATION event would need a listener kept open: poll
        if st != "completed":
            raise GuestError(f"saving {self.name}'s memory to {state} failed: migration {st}")

    def _migration(self) -> str | None:
        """The state of QEMU's migration (a snapshot being saved or loaded); None before QMP is up."""
        try:
            return self._qmp({"execute": "query-migrate"})[-1].get("return", {}).get("status")
        except (FileNotFoundError, ConnectionRefusedError):
            return None

    def _qmp(self, *cmds: dict) -> list[dict]:
        """Send QMP commands (after the handshake); their replies (events skipped)."""
        replies = []
        with socket.socket(socket.AF_UNIX) as qmp:
            qmp.settimeout(30)
            qmp.connect(str(self.dir / "qmp.sock"))
            f = qmp.makefile("rwb")
            f.readline()
            for cmd in ({"execute": "qmp_capabilities"}, *cmds):
                f.write(json.dumps(cmd).encode() + b"\n")
                f.flush()
                while True:
                    line = f.readline()
                    if not line:
                        return replies  # quit: QEMU closed the socket
                    reply = json.loads(line)
                    if "event" not in reply:
                        break
                if cmd["execute"] != "qmp_capabilities":
                    replies.append(reply)
        return replies

    def cpu_seconds(self) -> float:
        """CPU time QEMU has used so far (all its threads): what this guest costs the host."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise GuestError(f"QEMU exited {self.proc.returncode}: {(self.dir / 'qemu.log').read_text(errors='replace')}")

    def poweroff(self) -> None:
        """Off at once: the overlay disk is thrown away, so nothing needs a clean shutdown."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self._qmp({"execute": "quit"})
            self.proc.wait(30)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Guest:
        Guest.running.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Power off and let go (idempotent)."""
        with Guest._running_lock:
            if self in Guest.running:
                Guest.running.remove(self)
        if self._qga is not None:
            self._qga.close()
            self._qga = None
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
        start = time.monotonic()
        end = start + timeout
        while True:
            st = self._call("guest-exec-status", pid=pid)
            assert isinstance(st, dict)
            if st["exited"]:
                break
            if time.monotonic() > end:
                raise GuestError(f"timed out after {timeout} s in the guest: {script}")
            # the agent has no completion event: poll it, often for a short
            # command, seldom for a long one (each poll costs the guest CPU)
            time.sleep(min(max(0.02, (time.monotonic() - start) / 8), 0.5))
        out = base64.b64decode(st.get("out-data", "")).decode(errors="replace")
        err = base64.b64decode(st.get("err-data", "")).decode(errors="replace")
        r = Result(st.get("exitcode", -st.get("signal", 0) or -1), out, err)
        if check and r.rc != 0:
            raise GuestError(f"{script}\n{r}")
        return r

    def ok(self, script: str, *, timeout: float = 120.0) -> str:
        """Run a script that must succeed; its stdout."""
        return self.sh(script, timeout=timeout, check=True).out

    def diagnostics(self) -> list[tuple[str, str]]:
        """What to print when a check fails: the journal and the serial console."""
        try:
            # without the guest agent's own lines (one per call of the test's hands)
            journal = self.sh("journalctl --no-pager -b -o short-monotonic | grep -v -F ' qemu-ga[' | tail -n 300", timeout=60).out
        except Exception as e:  # the guest may be what failed
            journal = f"(no journal: {e})"
        try:
            serial = "\n".join(self.serial_log.read_text(errors="replace").splitlines()[-150:])
        except OSError as e:
            serial = f"(no serial log: {e})"
        return [(f"{self.name} guest journal (last 300 lines)", journal), (f"{self.name} guest serial console (last 150 lines)", serial)]

    def journal(self, *args: str) -> str:
        return self.sh("journalctl --no-pager " + " ".join(args), timeout=60).out
