#!/bin/sh
# Test only: make the guest a Raspberry Pi stand-in. A real Pi needs none of this.
#   setup.sh pi4|pi5
# - the board check of deploy/install.sh reads /sys/firmware/devicetree/base/model:
#   a tmpfs carries a Pi's model string there;
# - gpio-sim chips give /dev/gpiochip0 (and on a Pi 5, gpiochip0-4, as its RP1
#   chip is gpiochip4 on older kernels), owned by group gpio (the image's udev rule);
# - gpiozero reads the board revision from /proc/cpuinfo, rpi-lgpio from
#   $RPI_LGPIO_REVISION: a drop-in gives the service both (ProtectProc=
#   mounts a fresh /proc, so a bind mount must come from the unit itself);
# - rpi-lgpio finds a Pi's GPIO chip by its device-tree node (on a Pi 5 the
#   RP1's, "raspberrypi,rp1-gpio"), which gpio-sim has not, and else opens
#   gpiochip0: the drop-in names a Pi 5's chip with $RPI_LGPIO_CHIP;
# - pip's package source is the wheelhouse on the share (no network needed).
set -eu
BOARD=$1
case $BOARD in
    pi4) MODEL="Raspberry Pi 4 Model B Rev 1.5"; REV=c03115; CHIPS=1; RP1= ;;
    pi5) MODEL="Raspberry Pi 5 Model B Rev 1.0"; REV=d04170; CHIPS=5; RP1="Environment=RPI_LGPIO_CHIP=4" ;;
    *) echo "setup.sh: pi4 or pi5" >&2; exit 2 ;;
esac
mountpoint -q /sys/firmware/devicetree 2>/dev/null || {
    mountpoint -q /sys/firmware || mount -t tmpfs -o mode=0755,size=1M standin /sys/firmware
    mkdir -p /sys/firmware/devicetree/base
}
printf '%s\000' "$MODEL" > /sys/firmware/devicetree/base/model

modprobe gpio-sim
i=0
while [ $i -lt $CHIPS ]; do
    c=/sys/kernel/config/gpio-sim/chip$i
    if [ ! -d $c ]; then
        mkdir $c $c/gpio-bank0
        echo 58 > $c/gpio-bank0/num_lines
        echo 1 > $c/live
    fi
    i=$((i + 1))
done
udevadm settle
# The kernel's record of every value and direction set on a GPIO line, which
# standin/lines.py reads: on once, for good (see there why).
T=/sys/kernel/tracing
if [ "$(cat $T/events/gpio/gpio_value/enable)" != 1 ]; then
    echo mono > $T/trace_clock
    echo 4096 > $T/buffer_size_kb
    echo 1 > $T/events/gpio/gpio_direction/enable
    echo 1 > $T/events/gpio/gpio_value/enable
fi
mkdir -p /etc/gravity-led-standin
{ cat /proc/cpuinfo; printf 'Hardware\t: BCM2835\nRevision\t: %s\nModel\t\t: %s\n' "$REV" "$MODEL"; } > /etc/gravity-led-standin/cpuinfo
mkdir -p /etc/systemd/system/gravity-led.service.d
cat > /etc/systemd/system/gravity-led.service.d/50-pi-standin.conf <<CONF
# Test only (tests/pi_vm): the Pi stand-in's board revision.
[Service]
BindReadOnlyPaths=/etc/gravity-led-standin/cpuinfo:/proc/cpuinfo
Environment=RPI_LGPIO_REVISION=$REV
$RP1
CONF
printf '[global]\nno-index = true\nfind-links = /mnt/share/wheelhouse\n' > /etc/pip.conf
systemctl daemon-reload
