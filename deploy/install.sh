#!/bin/sh
# Install gravity-led as a systemd service on a Raspberry Pi, in one command:
#
#   sudo deploy/install.sh               install or upgrade (idempotent)
#   sudo deploy/install.sh --socket      same, but systemd listens (gravity-led.socket) and
#                                        starts the daemon on the first connection
#   sudo deploy/install.sh --uninstall   remove it all (a config you edited is kept; --purge removes it too)
#
# What it does, in order (each step is safe to repeat):
#   1. apt-get install python3-venv python3-pip python3-setuptools python3-wheel python3-systemd
#      python3-lgpio python3-gpiozero, and python3-rpi-lgpio on a Pi 5 (RPi.GPIO cannot drive its RP1 chip) or
#      python3-rpi.gpio on older boards: those this OS has (one line names the
#      others, which pip then installs from PyPI into the venv)
#   2. system user gravity-led, in group gpio (which owns /dev/gpiochip*)
#   3. a venv with --system-site-packages under /opt/gravity-led (so it sees
#      the apt-installed lgpio and systemd modules), pip install of this
#      checkout (skipped when this very source is installed already), and
#      gravity-led-daemon and gravity-led-client linked into /usr/local/bin
#   4. /etc/gravity-led/daemon.toml from deploy/daemon.toml, only if absent
#      (an existing one is given back to the group gravity-led)
#   5. the udev rule that gives group gpio the PWM hardware's sysfs files
#      (/etc/udev/rules.d/99-gravity-led-pwm.rules), and the units into
#      /etc/systemd/system, enabled and (re)started
#   6. what to open on the phone: the https:// URL and a QR code if a TLS
#      certificate is configured, else how to make one (on a terminal, it offers to)
#   7. where avahi-daemon is (Raspberry Pi OS runs it), /etc/avahi/services/gravity-led.service:
#      mDNS/DNS-SD advertises the daemon's port (_gravity-led._tcp, and the page as
#      _http._tcp), so gravity-led-client finds it without --url
#
#   sudo deploy/install.sh --dry-run     print each step it would take on this machine, change nothing
#
# Test and packaging flags (see tests/system/test_install.py):
#   --root DIR       install under DIR instead of / (like DESTDIR), and never
#                    touch this machine: implies --no-apt --no-systemctl
#                    --no-user, skips the Raspberry Pi / systemd checks, never
#                    chowns; unit files still name paths as seen from DIR
#                    (ExecStart=/opt/gravity-led/...), as on the target
#   --dry-run        print each step (commands, files) instead of taking it;
#                    needs no root; a refusal is still a refusal
#   --prefix DIR     where the venv goes (default /opt/gravity-led)
#   --no-apt         do not run apt-get
#   --no-systemctl   do not run systemctl (units are still written)
#   --no-user        do not create the gravity-led user (implied by --root)
#   --offline        no network: build this checkout's wheel with --python
#                    (which needs setuptools and wheel) and install only it
#                    (--no-index --no-deps); dependencies are not installed
#   --no-pip         create the venv but do not pip install anything
#   --python PATH    interpreter for the venv (default /usr/bin/python3)
#   NB: a venv's scripts name its absolute path, so with --root they point
#   into DIR: --root is for tests and inspection, not for building images.
#
# The Debian packages come from apt's sources and the rest from pip's (PyPI,
# or whatever pip.conf / PIP_INDEX_URL / PIP_FIND_LINKS name).
#
# Exit status: 0 done, 1 refused or failed (nothing half done: the checks run
# before any change), 2 bad usage.

set -eu
ARGS="$*"

NAME=gravity-led
SRC=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
DEPLOY=$SRC/deploy

ROOT=
PREFIX=/opt/gravity-led
ACTION=install
USE_APT=1
USE_SYSTEMCTL=1
MAKE_USER=1
PIP_MODE=online
SOCKET=0
PURGE=0
PYTHON=/usr/bin/python3
DRY=0

say() { printf '%s\n' "$*"; }
# act COMMAND...: run it, or with --dry-run only say it.
act() {
    if [ "$DRY" -eq 1 ]; then say "would run: $*"; else "$@"; fi
}
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }

while [ $# -gt 0 ]; do
    case $1 in
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        --socket) SOCKET=1 ;;
        --root) [ $# -ge 2 ] || { usage >&2; exit 2; }; ROOT=${2%/}; shift ;;
        --root=*) ROOT=${1#--root=}; ROOT=${ROOT%/} ;;
        --prefix) [ $# -ge 2 ] || { usage >&2; exit 2; }; PREFIX=${2%/}; shift ;;
        --prefix=*) PREFIX=${1#--prefix=}; PREFIX=${PREFIX%/} ;;
        --python) [ $# -ge 2 ] || { usage >&2; exit 2; }; PYTHON=$2; shift ;;
        --python=*) PYTHON=${1#--python=} ;;
        --no-apt) USE_APT=0 ;;
        --no-systemctl) USE_SYSTEMCTL=0 ;;
        --no-user) MAKE_USER=0 ;;
        --offline) PIP_MODE=offline ;;
        --no-pip) PIP_MODE=none ;;
        --dry-run) DRY=1 ;;
        -h|--help) usage; exit 0 ;;
        *) printf 'install.sh: unknown option %s\n\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

case $PREFIX in /*) ;; *) die "--prefix must be an absolute path, not '$PREFIX'" ;; esac
if [ -n "$ROOT" ]; then
    case $ROOT in /*) ;; *) ROOT=$(pwd)/$ROOT ;; esac
    [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
    # an image or a test folder: nothing of this machine's is touched
    MAKE_USER=0 USE_APT=0 USE_SYSTEMCTL=0
fi

VENV=$PREFIX/venv
CONF_DIR=/etc/$NAME
CONF=$CONF_DIR/daemon.toml
UNIT_DIR=/etc/systemd/system
UNITS="$NAME.service $NAME.socket"
BIN_DIR=/usr/local/bin
PROGRAMS="gravity-led-daemon gravity-led-client"
STAMP=$VENV/.installed-source

# ---------------------------------------------------------------- checks ----
# All refusals happen here, before anything is changed.

model() {
    for f in /proc/device-tree/model /sys/firmware/devicetree/base/model; do
        if [ -r "$f" ]; then tr -d '\000' < "$f"; return 0; fi
    done
    return 1
}

if [ -z "$ROOT" ]; then
    MODEL=$(model || true)
    case $MODEL in
        *"Raspberry Pi"*) ;;
        *) die "this is not a Raspberry Pi (${MODEL:-no /proc/device-tree/model}); gravity-led drives GPIO pins, so it installs only on a Pi. To try it on this machine, install it in a venv as the README's quick start says, then run: gravity-led-client demo (or gravity-led-daemon --pin-factory mock)" ;;
    esac
    # /run/systemd/system exists only when systemd is the running init (sd_booted(3)).
    [ -d /run/systemd/system ] || die "systemd is not running as init here (no /run/systemd/system), so there is nothing to install the service into"
    if [ "$(id -u)" -ne 0 ]; then
        [ "$DRY" -eq 1 ] || die "run me as root: sudo $0 $ARGS"
        say "note: a real run needs root (sudo $0 ${ARGS% --dry-run}); this dry run needs none"
    fi
fi
[ "$DRY" -eq 0 ] || say "dry run: each step this run would take, in order; nothing is changed"
if [ "$ACTION" = install ]; then
    [ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null 2>&1 || [ "$USE_APT" -eq 1 ] \
        || die "no Python interpreter at $PYTHON (use --python PATH)"
    if [ "$PIP_MODE" = offline ]; then
        "$PYTHON" -c 'import setuptools, wheel' 2>/dev/null \
            || die "--offline builds the package with $PYTHON, which needs setuptools and wheel (pip install wheel)"
    fi
    for f in "$NAME.service" "$NAME.socket" daemon.toml 99-gravity-led-pwm.rules; do
        [ -f "$DEPLOY/$f" ] || die "missing $DEPLOY/$f: run me from a gravity-led checkout"
    done
fi

run_systemctl() {
    if [ "$USE_SYSTEMCTL" -eq 1 ]; then act systemctl "$@"; fi
}

# The PWM udev rule (deploy/99-gravity-led-pwm.rules): group gpio may export
# and drive /sys/class/pwm channels (hardware PWM, pwm = "auto"/"hardware").
# udev applies it to chips that exist now as well (trigger); with --root,
# only the file is written.
PWM_RULE=/etc/udev/rules.d/99-gravity-led-pwm.rules
install_pwm_udev_rule() {
    if cmp -s "$DEPLOY/99-gravity-led-pwm.rules" "$ROOT$PWM_RULE"; then return 0; fi
    act mkdir -p "$ROOT$(dirname "$PWM_RULE")"
    act install -m 0644 "$DEPLOY/99-gravity-led-pwm.rules" "$ROOT$PWM_RULE"
    say "==> installed $ROOT$PWM_RULE"
    if [ -z "$ROOT" ] && command -v udevadm >/dev/null 2>&1; then
        act udevadm control --reload || true
        act udevadm trigger --subsystem-match=pwm --action=add || true
    fi
}
uninstall_pwm_udev_rule() {
    [ -e "$ROOT$PWM_RULE" ] || return 0
    act rm -f "$ROOT$PWM_RULE"
    if [ -z "$ROOT" ] && command -v udevadm >/dev/null 2>&1; then act udevadm control --reload || true; fi
}

# mDNS / DNS-SD: avahi-daemon (which owns port 5353 on a Pi) advertises what a
# static service file names, and rereads its folder when a file changes.
# The file's text comes from the package (gravity_led.daemon.dnssd), as the
# client's discovery reads it; with --socket, the port is the socket unit's.
AVAHI_SERVICE=/etc/avahi/services/$NAME.service
AVAHI_MARK="gravity-led's deploy/install.sh"
advertise() {
    if [ ! -d "$ROOT/etc/avahi/services" ]; then
        say "mDNS: no avahi-daemon here, so nothing advertises this Pi and gravity-led-client needs --url (sudo apt-get install avahi-daemon, then run this again)"
        return 0
    fi
    if [ "$DRY" -eq 1 ]; then say "would write: $ROOT$AVAHI_SERVICE"; return 0; fi
    port_flag=
    if [ "$SOCKET" -eq 1 ]; then
        port_flag="--port $(sed -n 's/^ListenStream=\(.*:\)\{0,1\}\([0-9][0-9]*\)$/\2/p' "$DEPLOY/$NAME.socket")"
    fi
    tmp=$(mktemp)
    # shellcheck disable=SC2086 # an option and its value, or nothing
    if ! "$ROOT$VENV/bin/python" -m gravity_led.daemon.dnssd --config "$ROOT$CONF" $port_flag > "$tmp"; then
        rm -f "$tmp"
        say "warning: not advertised over mDNS (the reason above)"
        return 0
    fi
    if ! cmp -s "$tmp" "$ROOT$AVAHI_SERVICE"; then
        # Whole and readable before avahi-daemon's inotify sees the name: it
        # reads a new file at once (install(1) creates it 0600 and chmods
        # after, which avahi may catch and then ignore the file), and it only
        # loads *.service, so the .new file beside it is never read.
        install -m 0644 "$tmp" "$ROOT$AVAHI_SERVICE.new"
        mv -f "$ROOT$AVAHI_SERVICE.new" "$ROOT$AVAHI_SERVICE"
        say "==> advertised over mDNS: $AVAHI_SERVICE"
    fi
    rm -f "$tmp"
}
unadvertise() {
    # only our own file
    if grep -qF "$AVAHI_MARK" "$ROOT$AVAHI_SERVICE" 2>/dev/null; then act rm -f "$ROOT$AVAHI_SERVICE"; fi
}

# ------------------------------------------------------------- uninstall ----

if [ "$ACTION" = uninstall ]; then
    # one reload, after the units are gone (each costs seconds on a small Pi)
    # shellcheck disable=SC2086 # two unit names
    run_systemctl disable --no-reload --now $UNITS 2>/dev/null || true
    for unit in $UNITS; do act rm -f "$ROOT$UNIT_DIR/$unit"; done
    run_systemctl daemon-reload
    uninstall_pwm_udev_rule
    for p in $PROGRAMS; do
        # only our own links: a program of that name the user put there stays
        if [ "$(readlink "$ROOT$BIN_DIR/$p" 2>/dev/null)" = "$VENV/bin/$p" ]; then act rm -f "$ROOT$BIN_DIR/$p"; fi
    done
    unadvertise
    act rm -rf "$ROOT$VENV"
    [ "$DRY" -eq 1 ] || rmdir "$ROOT$PREFIX" 2>/dev/null || true
    if [ -f "$ROOT$CONF" ]; then
        if [ "$PURGE" -eq 1 ] || cmp -s "$ROOT$CONF" "$DEPLOY/daemon.toml"; then
            act rm -f "$ROOT$CONF"
        else
            say "kept $ROOT$CONF: you edited it (remove it with --uninstall --purge)"
        fi
    fi
    if [ "$PURGE" -eq 1 ]; then act rm -rf "$ROOT$CONF_DIR"; elif [ "$DRY" -eq 0 ]; then rmdir "$ROOT$CONF_DIR" 2>/dev/null || true; fi
    if [ "$MAKE_USER" -eq 1 ] && id "$NAME" >/dev/null 2>&1; then
        act userdel "$NAME" 2>/dev/null || say "could not remove user $NAME (still in use?)"
    fi
    if [ "$DRY" -eq 1 ]; then say "dry run: nothing was changed."; else say "gravity-led uninstalled${ROOT:+ from $ROOT}."; fi
    exit 0
fi

# --------------------------------------------------------------- install ----

# 1. Debian packages: those this OS has. Raspberry Pi OS (bookworm, trixie;
# 32 and 64 bit) has them all; elsewhere pip brings the Python ones.
PIP_EXTRA=
if [ "$USE_APT" -eq 1 ]; then
    # setuptools and wheel build our wheel in one Python (step 3); trixie's
    # pip no longer pulls them in, and without them pip's isolated build takes
    # twice as long.
    PKGS="python3 python3-venv python3-pip python3-setuptools python3-wheel python3-systemd python3-lgpio python3-gpiozero"
    case ${MODEL:-} in
        # Pi 5 (the pattern covers the 500 too) and CM5: GPIO sits on the RP1 chip, which
        # RPi.GPIO cannot drive; rpi-lgpio is a drop-in RPi.GPIO on lgpio.
        *"Raspberry Pi 5"*|*"Compute Module 5"*) PKGS="$PKGS python3-rpi-lgpio" ;;
        *)
            # the two packages both provide the RPi.GPIO module and conflict:
            # keep rpi-lgpio if the user chose it.
            if dpkg-query -W -f '${Status}' python3-rpi-lgpio 2>/dev/null | grep -q 'ok installed'; then :
            else PKGS="$PKGS python3-rpi.gpio"; fi ;;
    esac
    act apt-get update -qq || say "warning: apt-get update failed; using the package lists already here"
    # One apt-cache call (each loads the whole cache: seconds on a Pi Zero):
    # a package this OS has shows a candidate version.
    # shellcheck disable=SC2086 # a list of package names
    HAVE=$(LC_ALL=C apt-cache policy $PKGS 2>/dev/null | awk '/^[^ ]/ { p = $1; sub(":$", "", p) } /Candidate: [^(]/ { printf " %s", p }')
    MISSING=
    for p in $PKGS; do
        case " $HAVE " in *" $p "*) ;; *) MISSING="$MISSING $p" ;; esac
    done
    for p in $MISSING; do
        case $p in
            python3-lgpio) PIP_EXTRA="$PIP_EXTRA lgpio" ;;
            # rpi-lgpio is the RPi.GPIO API on lgpio: it works on every Pi.
            python3-rpi-lgpio|python3-rpi.gpio) PIP_EXTRA="$PIP_EXTRA rpi-lgpio" ;;
            # pip installs gpiozero, and builds without setuptools and wheel;
            # journal fields need python3-systemd but the daemon runs without
            python3-gpiozero|python3-systemd|python3-pip|python3-setuptools|python3-wheel) ;;
            *) die "this system has no package$MISSING, which gravity-led needs (is this Raspberry Pi OS? run: sudo apt-get update)" ;;
        esac
    done
    [ -z "$MISSING" ] || say "note: this system's package lists have no${MISSING}, so pip installs${PIP_EXTRA:- what is needed} from PyPI into the venv instead."
    say "==> apt-get install${HAVE}"
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive act apt-get install -y --no-install-recommends $HAVE
fi

# 2. User and group.
if [ "$MAKE_USER" -eq 1 ]; then
    if ! getent group gpio >/dev/null; then
        say "warning: no group gpio here; creating it, but /dev/gpiochip* must belong to it (Raspberry Pi OS's udev rules do that)"
        act groupadd --system gpio
    fi
    if id "$NAME" >/dev/null 2>&1; then
        act usermod -a -G gpio "$NAME"
    else
        say "==> creating system user $NAME (group gpio)"
        act useradd --system --user-group --groups gpio --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin \
            --comment "gravity-led daemon" "$NAME"
    fi
fi

# 3. Virtual environment + the package.
if [ ! -x "$ROOT$VENV/bin/python" ]; then
    say "==> creating venv $ROOT$VENV"
    act mkdir -p "$ROOT$PREFIX"
    if [ "$PIP_MODE" != offline ] && "$PYTHON" -c 'import pip' 2>/dev/null; then
        # The system's pip (python3-pip) serves the venv through
        # --system-site-packages: no copy of pip to install into it, which
        # takes about a minute on a Pi Zero.
        act "$PYTHON" -m venv --system-site-packages --without-pip "$ROOT$VENV"
    else
        act "$PYTHON" -m venv --system-site-packages "$ROOT$VENV"
    fi
fi
# What is being installed: a hash of this checkout's files, kept in the venv,
# so that running the script again (say, to add --socket) skips pip when the
# source has not changed, and an upgrade (git pull) installs the new code.
SOURCE_ID=$(cd "$SRC" && find . \( -name .git -o -name .ci -o -name tests -o -name build -o -name .venv -o -name '*.egg-info' \
        -o -name __pycache__ -o -name .pytest_cache \) -prune -o -type f -print | LC_ALL=C sort | xargs -d '\n' cat \
        | { sha256sum 2>/dev/null || shasum -a 256; } | cut -c1-64)
SOURCE_ID="$SOURCE_ID$PIP_EXTRA"
if [ "$PIP_MODE" != none ] && [ "$(cat "$ROOT$STAMP" 2>/dev/null)" = "$SOURCE_ID" ]; then
    say "==> $ROOT$VENV already runs this source (pip skipped)"
elif [ "$PIP_MODE" != none ] && [ "$DRY" -eq 1 ]; then
    say "would run: build this checkout's wheel ($SRC) and $ROOT$VENV/bin/python -m pip install it${PIP_EXTRA}"
elif [ "$PIP_MODE" != none ]; then
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    mkdir "$BUILD/src" "$BUILD/dist"
    tar -C "$SRC" --exclude=./.git --exclude=./.ci --exclude=./tests --exclude=./build --exclude=./.venv \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache -cf - . | tar -C "$BUILD/src" -xf -
    say "==> pip install gravity-led${PIP_EXTRA} into $ROOT$VENV"
    # The wheel is built here, by setuptools in one Python: pip's build of a
    # source folder starts a Python for each of the backend's hooks, which
    # made a 30 s pip run out of a 12 s one on an emulated Pi (more on a Pi
    # Zero). The wheel's version carries this source's hash as a local label
    # (0.1.0+src.<12 hex digits>), because pip skips a wheel whose version is
    # the one installed, and a git pull need not change __version__.
    # A Python without setuptools >= 64 and wheel (pyproject.toml's
    # build-system) exits 3, and pip then builds the folder in an isolated
    # environment instead (online only).
    if [ "$PIP_MODE" = offline ]; then BUILDER=$PYTHON; else BUILDER=$ROOT$VENV/bin/python; fi
    # PyPI has lgpio's wheels up to Python 3.12 only: on a newer Python
    # without the OS's python3-lgpio (Debian, Ubuntu: Raspberry Pi OS has it)
    # pip builds it from source. PYPI=1 makes lgpio's setup.py link its own C
    # library in statically, as in its wheels (else it wants liblgpio, which
    # those systems lack too); that build needs SWIG, a C compiler and
    # Python's headers.
    pip_failed() {
        case " $PIP_EXTRA " in
            *" lgpio "*) if "$ROOT$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 13))'; then
                die "pip could not install lgpio (its output above), which PyPI has only as source for this Python: install what building it needs (sudo apt-get install swig gcc python3-dev), then run this again"
            fi ;;
        esac
        die "pip could not install gravity-led (its output above)"
    }
    set +e
    (cd "$BUILD/src" && "$BUILDER" - "$BUILD/dist" "src.$(printf %s "$SOURCE_ID" | cut -c1-12)" > "$BUILD/build.log" 2>&1 <<'PY'
import re, sys
from importlib.metadata import PackageNotFoundError, version
try:
    if int(version("setuptools").split(".")[0]) < 64 or not version("wheel"):
        sys.exit(3)
except PackageNotFoundError:
    sys.exit(3)
with open("daemon/__init__.py") as f:
    text = f.read()
text = re.sub(r'^__version__ = "([^"+]+)\+?([^"]*)"$',
              lambda m: f'__version__ = "{m[1]}+{m[2] + "." if m[2] else ""}{sys.argv[2]}"', text, count=1, flags=re.M)
with open("daemon/__init__.py", "w") as f:
    f.write(text)
from setuptools import build_meta
build_meta.build_wheel(sys.argv[1])
PY
    )
    built=$?
    set -e
    if [ "$built" -eq 0 ]; then
        if [ "$PIP_MODE" = offline ]; then
            # No network: just this wheel; the dependencies must already be
            # visible to the venv (--system-site-packages).
            "$ROOT$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
                --no-index --no-deps "$BUILD"/dist/*.whl
        else
            # shellcheck disable=SC2086 # a list of package names
            PYPI=1 "$ROOT$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$BUILD"/dist/*.whl $PIP_EXTRA \
                || pip_failed
        fi
    elif [ "$built" -eq 3 ] && [ "$PIP_MODE" != offline ]; then
        # shellcheck disable=SC2086 # a list of package names
        PYPI=1 "$ROOT$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$BUILD/src" $PIP_EXTRA \
            || pip_failed
    elif [ "$built" -eq 3 ]; then
        die "--offline builds the package with $PYTHON, which needs setuptools >= 64 and wheel (pip install wheel)"
    else
        cat "$BUILD/build.log" >&2
        die "building the package from $SRC failed (setuptools' output above)"
    fi
    printf '%s\n' "$SOURCE_ID" > "$ROOT$STAMP"
fi
# On the PATH that sudo uses (secure_path has /usr/local/bin): sudo gravity-led-daemon make-cert.
if [ "$PIP_MODE" != none ]; then
    act mkdir -p "$ROOT$BIN_DIR"
    for p in $PROGRAMS; do
        if [ -e "$ROOT$BIN_DIR/$p" ] && [ "$(readlink "$ROOT$BIN_DIR/$p")" != "$VENV/bin/$p" ]; then
            say "warning: $ROOT$BIN_DIR/$p exists and is not ours: left as it is"
        else
            act ln -sfn "$VENV/bin/$p" "$ROOT$BIN_DIR/$p"
        fi
    done
fi

# 4. Configuration: never overwrite the user's.
if [ -e "$ROOT$CONF" ]; then
    say "==> keeping existing $ROOT$CONF"
    if [ "$MAKE_USER" -eq 1 ]; then
        # An uninstall removed the group; the file kept its old number. The
        # service must read it: give it (and its folder) to today's group.
        act chgrp "$NAME" "$ROOT$CONF" "$ROOT$CONF_DIR"
        act chmod g+r "$ROOT$CONF"
        act chmod g+rx "$ROOT$CONF_DIR"
    fi
else
    say "==> writing $ROOT$CONF"
    act mkdir -p "$ROOT$CONF_DIR"
    if [ "$MAKE_USER" -eq 1 ]; then
        # readable by the service's group only: it may name a token file.
        act install -m 0640 -o root -g "$NAME" "$DEPLOY/daemon.toml" "$ROOT$CONF"
        act chown root:"$NAME" "$ROOT$CONF_DIR"
        act chmod 0750 "$ROOT$CONF_DIR"
    else
        act install -m 0644 "$DEPLOY/daemon.toml" "$ROOT$CONF"
    fi
fi

# 5. Units (rewritten for a non-default --prefix), after the PWM udev rule
# the service relies on for hardware PWM.
install_pwm_udev_rule
act mkdir -p "$ROOT$UNIT_DIR"
UNITS_CHANGED=0
for unit in $UNITS; do
    if ! sed "s#/opt/gravity-led#$PREFIX#g" "$DEPLOY/$unit" | cmp -s - "$ROOT$UNIT_DIR/$unit"; then
        if [ "$DRY" -eq 1 ]; then
            say "would write: $ROOT$UNIT_DIR/$unit"
        else
            tmp=$(mktemp)
            sed "s#/opt/gravity-led#$PREFIX#g" "$DEPLOY/$unit" > "$tmp"
            install -m 0644 "$tmp" "$ROOT$UNIT_DIR/$unit"
            rm -f "$tmp"
            say "==> installed $ROOT$UNIT_DIR/$unit"
        fi
        UNITS_CHANGED=1
    fi
done
if [ "$USE_SYSTEMCTL" -eq 1 ]; then
    # Enabling and disabling only change symlinks here (--no-reload); systemd
    # then rereads its units once, and only when something changed: each
    # reload costs seconds on a small Pi (a unit, a drop-in someone edited,
    # or a symlink).
    RELOAD=$UNITS_CHANGED
    if [ "$SOCKET" -eq 1 ]; then OFF=gravity-led.service ON=gravity-led.socket; else OFF=gravity-led.socket ON=gravity-led.service; fi
    if systemctl -q is-enabled "$OFF" 2>/dev/null; then act systemctl disable -q --no-reload "$OFF"; RELOAD=1; fi
    if ! systemctl -q is-enabled "$ON" 2>/dev/null; then act systemctl enable -q --no-reload "$ON"; RELOAD=1; fi
    if [ "$RELOAD" -eq 1 ] || [ "$(systemctl show -p NeedDaemonReload --value gravity-led.service gravity-led.socket | sort -u | tail -n 1)" != no ]; then
        act systemctl daemon-reload
    fi
    if [ "$SOCKET" -eq 1 ]; then
        # systemd refuses to start a socket whose service already runs on a
        # port of its own (a plain install): stop the service first. With the
        # socket listening, the first connection starts the service on it.
        if ! systemctl -q is-active gravity-led.socket; then
            act systemctl stop gravity-led.service
        fi
        act systemctl start gravity-led.socket
        # a running daemon must run the new code (the socket stays open meanwhile)
        act systemctl try-restart gravity-led.service
    else
        # back from --socket: the service listens by itself again
        if systemctl -q is-active gravity-led.socket; then
            act systemctl stop gravity-led.service gravity-led.socket
        fi
        # restart, not start: a reinstall must run the new code
        act systemctl restart gravity-led.service
    fi
fi

# 6. Where to point the phone. Phones give a web page the tilt sensor only
# over HTTPS, so the page needs a certificate. phone prints "tls+ca" (issued
# by this Pi's CA, which phones download from the daemon), "tls" (self-signed)
# or "plain", and the port, then the URL, then (with tls) its QR code.
phone() {
    "$ROOT$VENV/bin/python" - "$ROOT$CONF" "$ROOT" <<'PY'
import os
import sys
try:
    from argparse import Namespace
    from gravity_led.daemon.config import load_config
    from gravity_led.daemon.mobileconfig import deferred_ca_downloads
    from gravity_led.daemon.certnames import phone_urls, served_names
    from gravity_led.daemon.urls import beside, local_name_url, qr_text, urls_to_open
    conf, root = sys.argv[1], sys.argv[2]
    cfg, _ = load_config(Namespace(config=conf), {})

    def here(path):  # the config's paths are the booted system's: with --root, below it if there
        inside = root + path if root and os.path.isabs(path) else path
        return inside if os.path.exists(inside) else path

    if cfg.tls:  # a daemon without its certificate does not start: no address to give
        missing = [f"{what} {path}" for what, path in (("certfile", cfg.certfile), ("keyfile", cfg.keyfile)) if not os.path.exists(here(path))]
        if missing:
            sys.exit(f"{' and '.join(missing)}, named in {conf}, {'does' if len(missing) == 1 else 'do'} not exist ('sudo gravity-led-daemon make-cert' makes them)")
    names = served_names(here(cfg.certfile)) if cfg.tls else None  # only what the certificate names, as the daemon announces
    urls, local_url, _ = phone_urls(urls_to_open(cfg.host, cfg.port, tls=cfg.tls), local_name_url(cfg.host, cfg.port, tls=cfg.tls), names)
    print(("tls+ca" if deferred_ca_downloads(here(cfg.certfile))() else "tls") if cfg.tls else "plain", cfg.port)
    if urls:
        print(beside(urls[0], local_url))
        if cfg.tls:
            print(qr_text(urls[0]))
except Exception as e:  # one line for phone_answer, never a traceback
    sys.exit(str(e) or type(e).__name__)
PY
}
# phone's answer; if it fails (an unreadable certificate, say), one line on
# stderr saying why, rather than advice that assumes there is no certificate.
phone_answer() {
    err=$(mktemp)
    if out=$(phone 2>"$err"); then
        rm -f "$err"
        printf '%s\n' "$out"
        return 0
    fi
    printf "install.sh: cannot work out the phone's address: %s\n" "$(tail -n 1 "$err")" >&2
    rm -f "$err"
    return 1
}
# 7. mDNS: after the config's last change (the port, the certificate) but the one below.
[ "$PIP_MODE" = none ] || advertise
if [ "$DRY" -eq 1 ]; then
    say "dry run: nothing was changed."
    exit 0
fi
PHONE=
[ "$PIP_MODE" = none ] || PHONE=$(phone_answer) || PHONE=unknown
say ""
if [ -n "$ROOT" ]; then
    say "gravity-led is installed into $ROOT: the venv in $ROOT$VENV, the settings in $ROOT$CONF, the units in $ROOT$UNIT_DIR."
    say "On the system that boots from it:"
else
    say "gravity-led is installed."
fi
HOW=${PHONE%%
*}
if [ "${HOW% *}" = plain ] && [ -z "$ROOT" ] && [ -t 0 ] && [ -t 1 ]; then
    printf 'Phones need HTTPS for the tilt sensor. Make a certificate authority for this Pi, and a certificate, now? [Y/n] '
    read -r answer || answer=n
    case $answer in
        ""|[Yy]*)
            "$VENV/bin/gravity-led-daemon" make-cert --out-dir "$CONF_DIR" >/dev/null
            printf '\n# added by deploy/install.sh (make-cert)\ncertfile = "%s/cert.pem"\nkeyfile = "%s/key.pem"\n' "$CONF_DIR" "$CONF_DIR" >> "$CONF"
            say "==> wrote $CONF_DIR/cert.pem and key.pem, and named them in $CONF"
            if [ "$SOCKET" -eq 1 ]; then systemctl try-restart gravity-led.service; else systemctl restart gravity-led.service; fi
            advertise  # now with tls=1
            PHONE=$(phone_answer) || PHONE=unknown
            HOW=${PHONE%%
*} ;;
    esac
fi
if [ "${HOW% *}" = tls+ca ]; then
    URL=$(printf '%s\n' "$PHONE" | sed -n '2{s/ .*//;p;}')  # the address alone, not the .local name beside it
    say "  On each phone, trust this Pi's certificate authority once (the page shows the steps):"
    say "    iPhone, iPad: ${URL}ca.mobileconfig"
    say "    Android:      ${URL}ca.crt"
    say "  Then open on the phone:"
    printf '%s\n' "$PHONE" | sed -n '2,$s/^/    /p'
elif [ "${HOW% *}" = tls ]; then
    say "  Open on the phone (the certificate is self-signed: iPhones cannot use it for the"
    say "  WebSocket; 'sudo gravity-led-daemon make-cert --force' makes this Pi's CA instead):"
    printf '%s\n' "$PHONE" | sed -n '2,$s/^/    /p'
elif [ "$HOW" = unknown ]; then  # phone_answer said why
    say "  Where to point the phone: the daemon says so when it starts (journalctl -u gravity-led)."
else
    say "  Phones need HTTPS for the tilt sensor. Make a certificate, then restart:"
    say "      sudo gravity-led-daemon make-cert"
    say "      (add the certfile and keyfile lines it prints to $CONF)"
    say "      sudo systemctl restart gravity-led"
    say "  Then run this script again to see the https:// address and its QR code."
    case $HOW in plain\ *) PORT=${HOW#plain } ;; *) PORT=5678 ;; esac
    if [ -n "$ROOT" ]; then ADDR=THE-PI; else ADDR=$(hostname -I 2>/dev/null | awk '{print $1}'); fi
    if [ -n "$ADDR" ] && [ -z "$ROOT" ]; then
        say "  A computer's browser works without it:  http://$ADDR:$PORT/ (or http://$(hostname).local:$PORT/ where .local names resolve)"
    else
        say "  A computer's browser works without it:  http://${ADDR:-$(hostname).local}:$PORT/"
    fi
fi
say "  Service state:      systemctl status gravity-led"
say "  Follow the log:     journalctl -u gravity-led -f"
say "  Settings:           $CONF  (then: sudo systemctl reload gravity-led)"
