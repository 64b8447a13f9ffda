#!/usr/bin/env bash
# Build (or reuse from the cache) the Pi stand-in's PWM hardware: the kernel's
# pwm-gpio driver (drivers/pwm/pwm-gpio.c of Linux 6.12, from Debian's
# linux-source-6.12) backported to the guest's 6.1 kernel, and pwm-standin.c
# (its lines and platform devices), out of tree as build.sh builds gpio-sim.
#
#   tests/pi_vm/standin/pwm/build.sh CACHE_DIR    prints the folder with pwm-gpio.ko and pwm-standin.ko
#
# The backport, all mechanical (Debian's 6.1 has <linux/cleanup.h>' guards
# from the stable series): no devm_pwmchip_alloc() in 6.1 (the chip is
# embedded, as drivers did before 6.9) and no pwm_chip.atomic; pwmchip_add()
# becomes devm_pwmchip_add() (6.1 has no devm-managed chip to remove it
# otherwise). The driver's logic is untouched.
set -euo pipefail
CACHE=${1:?usage: build.sh CACHE_DIR}
HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
say() { printf 'pi_vm: %s\n' "$*" >&2; }
KVER=$(apt-cache depends "linux-image-amd64" 2>/dev/null | sed -n 's/^ *Depends: linux-image-\(.*\)$/\1/p' | head -n1)
HEADERS=/usr/src/linux-headers-$KVER
SRC612=/usr/src/linux-source-6.12.tar.xz
[ -d "$HEADERS" ] || { say "missing $HEADERS: apt-get install linux-headers-$KVER"; exit 1; }
[ -f "$SRC612" ] || { say "missing $SRC612: apt-get install linux-source-6.12"; exit 1; }
KEY=$( (echo "$KVER"; cat "$HERE/build.sh" "$HERE/pwm-standin.c"; stat -c %s "$SRC612") | sha256sum | cut -c1-16)
OUT=$CACHE/pwm-$KEY
mkdir -p "$CACHE"
exec 9>"$CACHE/pwm.lock"
flock 9
if [ ! -f "$OUT/pwm-gpio.ko" ]; then
    say "building pwm-gpio (Linux 6.12's, backported) and pwm-standin for $KVER"
    t=$(mktemp -d)
    tar -C "$t" -xJf "$SRC612" --strip-components=1 linux-source-6.12/drivers/pwm/pwm-gpio.c
    mkdir "$t/m"
    python3 - "$t/drivers/pwm/pwm-gpio.c" "$t/m/pwm-gpio.c" <<'PY'
import sys
src = open(sys.argv[1]).read()
shim = """/* backport to 6.1 (tests/pi_vm/standin/pwm/build.sh) */
#define pwmchip_get_drvdata(c) container_of(c, struct pwm_gpio, chip)
"""
edits = [
    ("#include <linux/types.h>\n", "#include <linux/types.h>\n" + shim),
    ("struct pwm_gpio {\n", "struct pwm_gpio {\n\tstruct pwm_chip chip;\n"),
    ("\tchip = devm_pwmchip_alloc(dev, 1, sizeof(*gpwm));\n\tif (IS_ERR(chip))\n\t\treturn PTR_ERR(chip);\n\n\tgpwm = pwmchip_get_drvdata(chip);\n",
     "\tgpwm = devm_kzalloc(dev, sizeof(*gpwm), GFP_KERNEL);\n\tif (!gpwm)\n\t\treturn -ENOMEM;\n\tchip = &gpwm->chip;\n\tchip->dev = dev;\n\tchip->npwm = 1;\n"),
    ("\tchip->atomic = true;\n", ""),
    ("\tret = pwmchip_add(chip);\n", "\tret = devm_pwmchip_add(dev, chip);\n"),
    ("\t.get_state = pwm_gpio_get_state,\n", "\t.get_state = pwm_gpio_get_state,\n\t.owner = THIS_MODULE,\n"),
]
for old, new in edits:
    if src.count(old) != 1:
        sys.exit(f"pwm-gpio.c changed: {old!r} is not there once")
    src = src.replace(old, new)
open(sys.argv[2], "w").write(src)
PY
    cp "$HERE/pwm-standin.c" "$t/m/"
    printf 'obj-m := pwm-gpio.o pwm-standin.o\n' > "$t/m/Kbuild"
    make -s -C "$HEADERS" M="$t/m" -j2 modules >&2
    rm -rf "$CACHE"/pwm-????????????????
    mkdir -p "$OUT"
    strip --strip-debug "$t/m/pwm-gpio.ko" "$t/m/pwm-standin.ko"
    cp "$t/m/pwm-gpio.ko" "$t/m/pwm-standin.ko" "$OUT/"
    rm -rf "$t"
fi
echo "$OUT"
