"""The hardware PWM backend (daemon/hwpwm.py, daemon/pwmpins.py) against a
fake sysfs that enforces the kernel's rules (tests/support/fake_sysfs.py)."""

from __future__ import annotations

import errno

import pytest

from gravity_led.daemon.config import ConfigError, load_config
from gravity_led.daemon.errors import HardwareError
from gravity_led.daemon.hwpwm import PwmChannel, SysfsWriter, find_channels, parse_overrides
from gravity_led.daemon.leds import LedPair
from gravity_led.daemon.mapping import Duties
from tests.support.fake_sysfs import FakeSysfs

BCM = "brcm,bcm2835-pwm"
PI4 = "raspberrypi,4-model-b\0brcm,bcm2711"
PI5 = "raspberrypi,5-model-b\0brcm,bcm2712"


@pytest.fixture
def sysfs(tmp_path):
    fake = FakeSysfs(tmp_path)
    yield fake
    fake.close()


def pi4(sysfs: FakeSysfs, pins=(18, 19)):
    # An unrelated chip comes first: the number must not matter.
    sysfs.add_chip(0, "other.pwm", npwm=1, compatible="vendor,unrelated-pwm")
    return sysfs.add_chip(1, "fe20c000.pwm", compatible=BCM, pins=pins, board=PI4)


def leds(sysfs: FakeSysfs, right="GPIO18", left="GPIO19", pwm="auto", **kw) -> LedPair:
    return LedPair(right_pin=right, left_pin=left, pin_factory="mock", pwm=pwm, sysfs_root=sysfs.root, sysfs_writer=sysfs, **kw)


def test_channels_are_found_by_their_device_and_the_overlays_pins(sysfs):
    chip = pi4(sysfs)
    found = find_channels(sysfs.root)
    assert {g: (s.chip, s.channel, s.device) for g, s in found.items()} == {18: (chip, 0, "fe20c000.pwm"), 19: (chip, 1, "fe20c000.pwm")}


def test_pins_the_overlay_did_not_mux_have_no_channel(sysfs):
    pi4(sysfs, pins=(12, 13))
    assert sorted(find_channels(sysfs.root)) == [12, 13]


def test_a_pi_5s_rp1_puts_gpio18_and_19_on_channels_2_and_3(sysfs):
    chip = sysfs.add_chip(2, "1f00098000.pwm", npwm=4, compatible="raspberrypi,rp1-pwm", pins=(18, 19), board=PI5)
    assert {g: (s.chip, s.channel) for g, s in find_channels(sysfs.root).items()} == {18: (chip, 2), 19: (chip, 3)}


def test_channels_named_in_the_config_need_no_device_tree(sysfs):
    chip = sysfs.add_chip(0, "pwm-gpio.0", npwm=1)
    sysfs.add_chip(1, "pwm-gpio.1", npwm=1)
    assert find_channels(sysfs.root) == {}
    found = find_channels(sysfs.root, parse_overrides(("GPIO18=pwm-gpio.0:0", "19=pwmchip1:0")))
    assert (found[18].chip, found[18].channel) == (chip, 0)
    assert found[19].device == "pwm-gpio.1"
    with pytest.raises(HardwareError, match=r"no PWM chip 'pwm-gpio.7' for GPIO18; the chips here: pwmchip0 \(pwm-gpio.0\), pwmchip1 \(pwm-gpio.1\)"):
        find_channels(sysfs.root, parse_overrides(("GPIO18=pwm-gpio.7:0",)))


def test_a_malformed_channel_override_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="pwm_channels: 'GPIO18=pwmchip0' is not GPIO=DEVICE:CHANNEL"):
        load_config(None, {"GRAVITY_LED_PWM_CHANNELS": "GPIO18=pwmchip0"})
    cfg, _ = load_config(None, {"GRAVITY_LED_PWM_CHANNELS": "GPIO18=pwm-gpio.0:0", "GRAVITY_LED_PWM": "HARDWARE"})
    assert (cfg.pwm, cfg.pwm_channels, cfg.hardware_frequency_hz) == ("hardware", ("GPIO18=pwm-gpio.0:0",), 1000.0)
    assert load_config(None, {})[0].pwm == "auto"


def test_hardware_on_a_pin_without_a_channel_fails_in_one_sentence(sysfs):
    pi4(sysfs)
    with pytest.raises(HardwareError) as e:
        leds(sysfs, left="GPIO22", pwm="hardware")
    msg = str(e.value)
    assert msg.startswith("pwm = hardware, but GPIO22 has no hardware PWM channel here: GPIO12 or GPIO18 (PWM0) and GPIO13 or GPIO19 (PWM1)")
    assert "dtoverlay=pwm-2chan,pin=18,func=2,pin2=19,func2=2" in msg and msg.count(". ") == 0 and "\n" not in msg
    assert sysfs.writes == []  # nothing exported on the way


def test_a_pi_5_is_told_its_own_pins(sysfs):
    sysfs.add_chip(0, "1f00098000.pwm", npwm=4, compatible="raspberrypi,rp1-pwm", pins=(), board=PI5)
    with pytest.raises(HardwareError, match=r"GPIO18 and GPIO19 have no hardware PWM channel here: GPIO12, GPIO13, GPIO18 and GPIO19 \(the RP1's PWM0"):
        leds(sysfs, pwm="hardware")


def test_auto_puts_pins_with_a_channel_on_the_hardware_and_the_rest_on_software(sysfs):
    chip = pi4(sysfs)
    with leds(sysfs, left="GPIO22") as pair:
        assert list(pair.hardware) == ["GPIO18"]
        assert pair.frequencies_hz == (1000.0, 100.0)
        for right in (0.0, 0.123, 0.5, 0.987, 1.0):
            pair.write(Duties(right=right, left=0.25))
            out = sysfs.channel(chip, 0)
            assert out["enable"] == 1 and out["period"] == 1_000_000
            assert out["duty_cycle"] / out["period"] == pytest.approx(right, abs=0.01)
            assert pair.duties.right == pytest.approx(right, abs=0.01)
        assert pair.duties.left == 0.25  # gpiozero's mock pin: software PWM
        assert sysfs.channel(chip, 1) is None  # GPIO19's channel untouched


def test_software_leaves_the_pwm_hardware_alone(sysfs):
    pi4(sysfs)
    with leds(sysfs, pwm="software") as pair:
        pair.write(Duties(0.5, 0.5))
        assert pair.hardware == {}
    assert sysfs.writes == []



def test_mock_pins_leave_the_real_pwm_hardware_alone_unless_given_a_tree(sysfs, monkeypatch):
    """A dry run with mock pins on a Pi must not drive its real PWM outputs:
    "auto" looks at no sysfs but one a test hands over."""
    import gravity_led.daemon.hwpwm as hwpwm

    pi4(sysfs)
    looked = []
    real_find = hwpwm.find_channels
    monkeypatch.setattr(hwpwm, "find_channels", lambda root, *a: looked.append(root) or real_find(root, *a))
    monkeypatch.delenv("GRAVITY_LED_SYSFS_ROOT", raising=False)
    with LedPair(right_pin="GPIO18", left_pin="GPIO19", pin_factory="mock", pwm="auto") as pair:
        assert pair.hardware == {} and pair.frequencies_hz == (100.0, 100.0)
    assert looked == []
    monkeypatch.setenv("GRAVITY_LED_SYSFS_ROOT", str(sysfs.root))
    with LedPair(right_pin="GPIO18", left_pin="GPIO19", pin_factory="mock", pwm="auto", sysfs_writer=sysfs) as pair:
        assert list(pair.hardware) == ["GPIO18", "GPIO19"]
    assert looked == [sysfs.root]


def test_frequency_changes_live_in_an_order_the_kernel_accepts(sysfs):
    chip = pi4(sysfs)
    with leds(sysfs) as pair:
        pair.write(Duties(right=0.9, left=0.1))
        for hz in (4000.0, 250.0, 4000.0):  # shrink (duty first), grow (period first), shrink
            pair.set_frequency(frequency_hz=100.0, hardware_frequency_hz=hz)
            for n, duty in ((0, 0.9), (1, 0.1)):
                out = sysfs.channel(chip, n)
                assert out["period"] == round(1e9 / hz)
                assert out["duty_cycle"] / out["period"] == pytest.approx(duty, abs=0.01)
        assert pair.frequencies_hz == (4000.0, 4000.0)


def test_the_fake_refuses_what_the_kernel_refuses(sysfs):
    """The fake is only worth the tests above if it says no: a period below
    the duty, a duty above the period, a second export."""
    chip = pi4(sysfs)
    with leds(sysfs) as pair:
        pair.write(Duties(right=0.9, left=0.0))
        with pytest.raises(OSError) as e:
            sysfs.write(chip / "pwm0/period", "100000")  # 900 us duty
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            sysfs.write(chip / "pwm0/duty_cycle", "2000000")
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            sysfs.write(chip / "export", "0")
        assert e.value.errno == errno.EBUSY


def test_the_backend_waits_for_export_and_udev(tmp_path):
    sysfs = FakeSysfs(tmp_path, export_delay_s=0.1, udev_delay_s=0.1)
    chip = pi4(sysfs)
    spec = find_channels(sysfs.root)[18]
    with_channel = PwmChannel(spec, frequency_hz=1000.0, writer=sysfs)
    assert sysfs.channel(chip, 0) == {"period": 1_000_000, "duty_cycle": 0, "enable": 1}
    with_channel.close()
    sysfs.close()


def test_without_the_udev_rule_the_error_names_it(tmp_path):
    sysfs = FakeSysfs(tmp_path, udev_rule=False)
    pi4(sysfs)
    spec = find_channels(sysfs.root)[18]
    with pytest.raises(HardwareError, match=r"cannot open pwmchip1 channel 0 \(fe20c000.pwm\) for GPIO18: permission denied: the udev rule 99-gravity-led-pwm.rules"):
        PwmChannel(spec, frequency_hz=1000.0, writer=sysfs, wait_s=0.2)
    assert sysfs.writes[-1] == ("unexport", "0")  # not left exported
    sysfs.close()


def test_stop_leaves_the_channels_dark_disabled_and_unexported(sysfs):
    chip = pi4(sysfs)
    pair = leds(sysfs)
    pair.write(Duties(0.7, 0.3))
    pair.close()
    pair.close()
    assert sysfs.channel(chip, 0) is None and sysfs.channel(chip, 1) is None
    tail = [w for w in sysfs.writes if w[0].startswith("pwm0") or w == ("unexport", "0")][-3:]
    assert tail == [("pwm0/duty_cycle", "0"), ("pwm0/enable", "0"), ("unexport", "0")]


def test_a_killed_daemons_channel_is_taken_over_and_turned_off(sysfs):
    """The failsafe's path (it opens and closes the same LedPair): the
    channel is still exported and lit, since nobody closed it."""
    chip = pi4(sysfs)
    killed = leds(sysfs)
    killed.write(Duties(0.8, 0.6))  # ... and never closed
    with leds(sysfs):
        assert sysfs.channel(chip, 0)["duty_cycle"] == 0
    assert sysfs.channel(chip, 0) is None and sysfs.channel(chip, 1) is None
    assert sysfs.writes.count(("export", "0")) == 1  # the second was EBUSY, taken as "exported already"


def test_the_real_writer_reports_the_kernels_errno(tmp_path):
    with pytest.raises(FileNotFoundError):
        SysfsWriter().write(tmp_path / "missing", "1")


def test_the_fake_refuses_all_but_period_after_an_export(sysfs):
    """As the PWM core does (6.1 and 6.12: a state with period 0 is EINVAL,
    enabled or not): so the backend may not probe a fresh channel by writing."""
    from tests.support.harness import wait_until

    chip = pi4(sysfs)
    sysfs.write(chip / "export", "1")
    wait_until(lambda: sysfs.channel(chip, 1) is not None and sysfs.writable(chip / "pwm1/enable"), what="pwm1 exported")
    for name in ("enable", "duty_cycle"):
        with pytest.raises(OSError) as e:
            sysfs.write(chip / f"pwm1/{name}", "0")
        assert e.value.errno == errno.EINVAL
    sysfs.write(chip / "pwm1/period", "1000000")
    sysfs.write(chip / "pwm1/enable", "0")


def test_the_real_writer_rewrites_a_kept_open_file_whole(tmp_path):
    # duty_cycle stays open between LED writes; each rewrite replaces the
    # value, a shorter one too (sysfs takes each write whole; a plain file,
    # as in the e2e tier's tree, must be cut).
    attr = tmp_path / "duty_cycle"
    attr.write_text("0\n")
    w = SysfsWriter()
    fd = w.open(attr)
    try:
        w.rewrite(fd, "1000000")
        w.rewrite(fd, "25")
        assert attr.read_text() == "25"
    finally:
        w.release(fd)


def test_duty_writes_go_through_the_kept_open_file(sysfs, monkeypatch):
    opened, rewritten = [], []
    sysfs_open, sysfs_rewrite = sysfs.open, sysfs.rewrite
    monkeypatch.setattr(sysfs, "open", lambda path: opened.append(path.name) or sysfs_open(path))
    monkeypatch.setattr(sysfs, "rewrite", lambda handle, text: rewritten.append(text) or sysfs_rewrite(handle, text))
    chip = pi4(sysfs)
    ch = PwmChannel(find_channels(sysfs.root)[18], frequency_hz=1000, writer=sysfs)
    ch.set(duty=0.5)
    ch.set(duty=0.25)
    assert opened == ["duty_cycle"] and rewritten == ["500000", "250000"]
    assert sysfs.channel(chip, 0)["duty_cycle"] == 250000
    ch.close()
    assert sysfs.channel(chip, 0) is None, "released and unexported"


def test_mock_pins_chosen_through_gpiozeros_variable_leave_the_real_pwm_alone_too(monkeypatch):
    import gravity_led.daemon.hwpwm as hwpwm

    monkeypatch.setattr(hwpwm, "find_channels", lambda *a: pytest.fail("looked for PWM channels"))
    monkeypatch.delenv("GRAVITY_LED_SYSFS_ROOT", raising=False)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    with LedPair(right_pin="GPIO18", left_pin="GPIO19", pwm="auto") as pair:
        assert pair.factory_name == "mock" and pair.hardware == {}
