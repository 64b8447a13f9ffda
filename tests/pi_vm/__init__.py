"""The Raspberry Pi stand-in tier: the project installed and checked in a QEMU guest with gpio-sim."""
