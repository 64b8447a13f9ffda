#!/usr/bin/env bash
# Build (or reuse from the cache) what the Pi stand-in boots: a Debian root file
# system (bookworm, or trixie) with systemd and the kernel, the kernel's GPIO
# simulator (gpio-sim) built out of tree against that kernel, and a wheelhouse
# that stands in for PyPI inside the guest. Needs root, mmdebstrap,
# linux-source-6.1 and linux-headers-<guest kernel>, e2fsprogs (.ci/run
# installs them).
#
#   tests/pi_vm/build.sh CACHE_DIR [bookworm|trixie]
#       prints two directories: the root's (vmlinuz, initrd.img, rootfs.img)
#       and the wheelhouse's
#
# Both suites boot bookworm's kernel (6.1, with gpio-sim from linux-source-6.1):
# Debian's 6.12 lacks gpio-sim as well, and the kernel is not what a Raspberry
# Pi OS release changes for us; its user space (systemd, Python) is.
#
# Each part lives under CACHE_DIR in a folder named by a hash of what it depends
# on (kernel version, package list, this script, the requirements), so a change
# rebuilds only what it touches; stale folders are removed.
set -euo pipefail
CACHE=${1:?usage: build.sh CACHE_DIR}
HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
SRC=$(CDPATH='' cd -- "$HERE/../.." && pwd)
SUITE=${2:-bookworm}
mirrors() { printf '%s\n' "deb http://deb.debian.org/debian $1 main" "deb http://deb.debian.org/debian $1-updates main" \
    "deb http://deb.debian.org/debian-security $1-security main"; }
case $SUITE in
    bookworm) PY=3.11 ;;
    # + bookworm's sources, for its kernel (trixie's versions of everything else are newer)
    trixie) PY=3.13 ;;
    *) echo "build.sh: the suite is bookworm or trixie, not $SUITE" >&2; exit 2 ;;
esac
mapfile -t MIRRORS < <(mirrors "$SUITE"; [ "$SUITE" = bookworm ] || mirrors bookworm)
# What Raspberry Pi OS Lite has that the service and the installer use, plus
# the guest agent (the test's hands inside the guest) and gpiod (gpioinfo).
# python3-gpiozero is Debian's 1.6: the installer must notice that it lacks
# the Pi 5 fix and take gpiozero from PyPI (the wheelhouse) instead.
# avahi-daemon (Raspberry Pi OS runs it) advertises the service file the
# installer writes; avahi-utils' avahi-browse is how the tests look for it.
PACKAGES="systemd systemd-sysv udev dbus kmod procps iproute2 sudo python3 python3-venv
python3-pip python3-setuptools python3-wheel python3-systemd python3-cryptography python3-gpiozero gpiod curl
initramfs-tools qemu-guest-agent avahi-daemon avahi-utils"

# stdout carries only the answer (fd 3); everything else goes to stderr.
exec 3>&1 1>&2
say() { printf 'pi_vm: %s\n' "$*" >&2; }
hash_of() { sha256sum | cut -c1-16; }
# file contents only (not their paths: every clone must find the same cache)
contents() { cat "$@" | sha256sum | cut -c1-64; }
mkdir -p "$CACHE"
# One build of a suite at a time (the tier builds both side by side, and the
# shared gpio-sim under a lock of its own); what a failed one left goes.
exec 8>"$CACHE/build-$SUITE.lock"
flock 8
rm -rf "$CACHE/tmp-$SUITE".*
# what an older layout left (one suite, snapshots beside the roots)
rm -rf "$CACHE"/root-???????????????? "$CACHE"/wheelhouse-???????????????? "$CACHE"/boot-* "$CACHE/boot.lock" "$CACHE"/tmp.*

KVER=$(apt-cache depends "linux-image-amd64" 2>/dev/null | sed -n 's/^ *Depends: linux-image-\(.*\)$/\1/p' | head -n1)
[ -n "$KVER" ] || { say "cannot tell the guest kernel version (apt-cache depends linux-image-amd64): run apt-get update"; exit 1; }
HEADERS=/usr/src/linux-headers-$KVER
[ -d "$HEADERS" ] || { say "missing $HEADERS: apt-get install linux-headers-$KVER"; exit 1; }
[ -f /usr/src/linux-source-6.1.tar.xz ] || { say "missing /usr/src/linux-source-6.1.tar.xz: apt-get install linux-source-6.1"; exit 1; }

# ---------------------------------------------------------------- gpio-sim --
MOD_KEY=$( (echo "$KVER"; contents /usr/src/linux-source-6.1.tar.xz) | hash_of)
MOD_DIR=$CACHE/gpio-sim-$MOD_KEY
exec 9>"$CACHE/gpio-sim.lock"
flock 9
if [ ! -f "$MOD_DIR/gpio-sim.ko" ]; then
    say "building gpio-sim for $KVER (out of tree, from linux-source-6.1)"
    t=$(mktemp -d)
    tar -C "$t" -xJf /usr/src/linux-source-6.1.tar.xz --strip-components=1 \
        linux-source-6.1/drivers/gpio/gpio-sim.c linux-source-6.1/drivers/gpio/gpiolib.h linux-source-6.1/kernel/irq/irq_sim.c
    mkdir "$t/m"
    cp "$t/drivers/gpio/gpio-sim.c" "$t/m/gpio-sim-main.c"
    cp "$t/drivers/gpio/gpiolib.h" "$t/m/"
    # irq_to_desc() is not exported to modules: generic_handle_irq() does the same.
    sed 's/handle_simple_irq(irq_to_desc(irqnum))/generic_handle_irq(irqnum)/' "$t/kernel/irq/irq_sim.c" > "$t/m/irq_sim.c"
    grep -q 'generic_handle_irq(irqnum)' "$t/m/irq_sim.c" || { say "irq_sim.c changed: the irq_to_desc patch no longer applies"; exit 1; }
    printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' > "$t/m/Kbuild"
    make -s -C "$HEADERS" M="$t/m" -j2 modules >&2
    rm -rf "$CACHE"/gpio-sim-*
    mkdir -p "$MOD_DIR"
    cp "$t/m/gpio-sim.ko" "$MOD_DIR/"
    rm -rf "$t"
fi
exec 9>&-

# -------------------------------------------------------------- root image --
ROOT_KEY=$( (echo "$KVER $SUITE $PACKAGES ${MIRRORS[*]}"; contents "$HERE/build.sh" "$MOD_DIR/gpio-sim.ko") | hash_of)
ROOT_DIR=$CACHE/root-$SUITE-$ROOT_KEY
if [ ! -f "$ROOT_DIR/rootfs.img" ]; then
    say "building the $SUITE root file system with mmdebstrap (kernel $KVER)"
    rm -rf "$CACHE/root-$SUITE-"*
    t=$(mktemp -d "$CACHE/tmp-$SUITE.XXXXXX")
    # Raspberry Pi OS has python3-lgpio and python3-rpi-lgpio; Debian has not,
    # and PyPI's lgpio has wheels only up to Python 3.12. Trixie's root (the
    # Raspberry Pi OS trixie stand-in) gets both as Debian packages made from
    # the same upstream releases: lgpio built from its source in the root
    # (its build tools removed afterwards), rpi-lgpio's wheel as it is.
    hooks=()
    if [ "$SUITE" = trixie ]; then
        python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary=:all: -d "$t/pkgs" lgpio
        python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$t/pkgs" rpi-lgpio
        cat > "$t/pkgs/build.sh" <<'SH'
set -e
cd /tmp/pkgs
dpkg-query -W -f '${Package}\n' | sort > before
apt-get install -y -qq --no-install-recommends swig gcc libc6-dev python3-dev python3-setuptools >/dev/null
# PYPI=1: lgpio links its C library in statically, as in its wheels on PyPI
PYPI=1 python3 -m pip wheel -q --no-deps --no-build-isolation -w . lgpio-*.tar.gz
dpkg-query -W -f '${Package}\n' | sort | comm -13 before - | xargs apt-get purge -y -qq >/dev/null
deb() {  # NAME ARCH WHEEL: a Debian package of the wheel's files
    d=$1; mkdir -p "$d/DEBIAN" "$d/usr/lib/python3/dist-packages"
    python3 -m pip install -q --no-deps --no-compile --target "$d/usr/lib/python3/dist-packages" "$3"
    version=$(basename "$3" | cut -d- -f2)
    printf 'Package: %s\nVersion: %s-0standin\nArchitecture: %s\nMaintainer: gravity-led tests <tests@invalid>\nDepends: python3\nDescription: %s\n' \
        "$1" "$version" "$2" "Raspberry Pi OS's $1, for the Pi stand-in" > "$d/DEBIAN/control"
    dpkg-deb --build -Zgzip "$d" "$d.deb" >/dev/null
    dpkg -i "$d.deb" >/dev/null
}
deb python3-lgpio amd64 lgpio-*.whl
deb python3-rpi-lgpio all rpi_lgpio-*.whl
SH
        hooks=(--customize-hook="cp -r $t/pkgs \"\$1/tmp/pkgs\" && chroot \"\$1\" sh /tmp/pkgs/build.sh && rm -rf \"\$1/tmp/pkgs\"")
    fi
    # shellcheck disable=SC2086 # a list of package names
    mmdebstrap --quiet --variant=minbase --include="$(echo $PACKAGES linux-image-$KVER | tr ' ' ',')" \
        --customize-hook='echo raspberrypi > "$1/etc/hostname"' "${hooks[@]}" \
        "$SUITE" "$t/root" "${MIRRORS[@]}" >&2 8>&-  # (apt fails with the lock's fd open)
    rm -rf "$t/pkgs"
    r=$t/root
    # A non-empty machine-id, or the first boot waits at a prompt.
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$r/etc/machine-id"; echo >> "$r/etc/machine-id"
    echo '/dev/vda / ext4 rw,relatime 0 1' > "$r/etc/fstab"
    echo '127.0.1.1 raspberrypi' >> "$r/etc/hosts"
    # Raspberry Pi OS has group gpio owning the GPIO character devices.
    chroot "$r" groupadd --system gpio
    echo 'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' > "$r/etc/udev/rules.d/99-gpio.rules"
    # QEMU's user network: a fixed address, no DHCP wait.
    mkdir -p "$r/etc/systemd/network"
    printf '[Match]\nName=en*\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n' > "$r/etc/systemd/network/10-qemu.network"
    chroot "$r" systemctl enable systemd-networkd.service >/dev/null 2>&1
    chroot "$r" systemctl mask getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service >/dev/null 2>&1 || true
    # Every daemon-reload (the installer's, the tests') runs systemd's generators:
    # under emulation a third of its 3 s. The stand-in needs none of them (no
    # fstab entries beyond the root the kernel mounts, no getty, no init
    # scripts, no encrypted or GPT-discovered disks): masked.
    mkdir -p "$r/etc/systemd/system-generators"
    for g in "$r"/lib/systemd/system-generators/*; do ln -sf /dev/null "$r/etc/systemd/system-generators/${g##*/}"; done
    # The guest agent logs each command at level info, and the tests poll it
    # for every command they run: journald's work for nothing.
    mkdir -p "$r/etc/systemd/system/qemu-guest-agent.service.d"
    printf '[Service]\nLogLevelMax=notice\n' > "$r/etc/systemd/system/qemu-guest-agent.service.d/quiet.conf"
    # gpio-sim, loadable with modprobe.
    mkdir -p "$r/lib/modules/$KVER/extra"
    cp "$MOD_DIR/gpio-sim.ko" "$r/lib/modules/$KVER/extra/"
    # Trim modules no virtual machine loads (about half of the image).
    for d in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/infiniband \
             drivers/staging drivers/isdn drivers/bluetooth drivers/iio drivers/usb drivers/scsi sound net/mac80211 \
             net/wireless net/bluetooth drivers/hid drivers/input/touchscreen drivers/mtd drivers/md; do
        rm -rf "$r/lib/modules/$KVER/kernel/$d"
    done
    chroot "$r" depmod -a "$KVER"
    cp "$r/boot/vmlinuz-$KVER" "$t/vmlinuz"
    cp "$r/boot/initrd.img-$KVER" "$t/initrd.img"
    # No package source inside the guest: everything the installer's apt step
    # can find is already installed; pip's source is the wheelhouse.
    rm -f "$r/etc/apt/sources.list" "$r/etc/apt/sources.list.d/"*
    rm -rf "$r/var/lib/apt/lists/"* "$r/var/cache/apt/"*.bin "$r/var/cache/apt/archives/"*.deb "$r/usr/share/doc" "$r/usr/share/man" "$r/usr/share/locale"
    mkfs.ext4 -q -F -L root -d "$r" "$t/rootfs.img" 3G
    rm -rf "$r"
    mv "$t" "$ROOT_DIR"
fi

# -------------------------------------------------------------- wheelhouse --
# What pip may install inside the guest: the project's requirements, its Pi
# extra (lgpio, rpi-lgpio: Debian has no python3-lgpio) and the build backend,
# for the guest's Python. Not the Pi extra on trixie, whose root has them as
# Raspberry Pi OS has (and PyPI has no lgpio wheel for its Python).
REQS=$(python3 - "$SRC" "$SUITE" <<'PY'
import configparser, pathlib, re, sys
src = pathlib.Path(sys.argv[1])
cfg = configparser.ConfigParser(); cfg.read(src / "setup.cfg")
reqs = cfg["options"]["install_requires"].split()
if sys.argv[2] == "bookworm":
    reqs += cfg["options.extras_require"]["pi"].split()
reqs += re.findall(r'"([^"]+)"', (src / "pyproject.toml").read_text().split("requires", 1)[1].split("]")[0])
print("\n".join(r for r in reqs if r))
PY
)
WH_KEY=$( (echo "$REQS"; echo "$KVER $PY"; contents "$HERE/build.sh") | hash_of)
WH_DIR=$CACHE/wheelhouse-$SUITE-$WH_KEY
if [ ! -d "$WH_DIR" ]; then
    say "downloading the wheelhouse for Python $PY: $(echo "$REQS" | tr '\n' ' ')"
    rm -rf "$CACHE/wheelhouse-$SUITE-"*
    t=$(mktemp -d "$CACHE/tmp-$SUITE.XXXXXX")
    # Bookworm's guest runs this host's Python (3.11, x86_64); for another, pip
    # is told its version and every manylinux tag its glibc (2.41) accepts
    # (pip does not infer the older ones from the newest).
    target=()
    if [ "$PY" != "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ]; then
        target=(--python-version "$PY" --implementation cp --platform linux_x86_64 --platform manylinux2014_x86_64)
        for v in $(seq 5 41); do target+=(--platform "manylinux_2_${v}_x86_64"); done
    fi
    # shellcheck disable=SC2086
    python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: "${target[@]}" -d "$t" \
        $REQS 2>"$t.log" || { cat "$t.log"; exit 1; }
    rm -f "$t.log"
    mv "$t" "$WH_DIR"
fi
printf '%s\n%s\n' "$ROOT_DIR" "$WH_DIR" >&3
