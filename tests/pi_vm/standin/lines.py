"""Test only: measure gpio-sim lines from the simulator's side.

  lines.py measure CHIP SECONDS OFFSET...   duty and frequency of each line (JSON), from the
                                            kernel's record (the trace below) of what was set
  lines.py watch CHIP SECONDS OFFSET...     every level change, with CLOCK_MONOTONIC times (JSON)
  lines.py wait-low CHIP SECONDS OFFSET...  until every line has read 0 for 0.2 s; exit 1 on timeout
  lines.py pull CHIP up|down OFFSET...      the level a line reads when no consumer drives it
  lines.py trace CHIP read FROM TO OFFSET... the kernel's own record (gpiolib's gpio_direction and
                                            gpio_value tracepoints, stamped with CLOCK_MONOTONIC):
                                            each line's events between FROM and TO (monotonic
                                            seconds) as (time, pid, task, event) (JSON)

setup.sh turns the tracepoints on once, at boot: switching them on and off,
or resizing or clearing the buffer, patches kernel text or waits on every
CPU, and a guest that did so for each measurement under a loaded host once
locked up for a minute (an RCU stall, then "soft lockup ... [python3]").

watch ends early once the file named by $STOP_FILE exists. watch and
wait-low read the lines every 10 ms or so.

CHIP is the gpio-sim chip's number (chipN in configfs), or for measure and
trace any chip's gpiochipN name. The simulator's sysfs
value is what a consumer drives (or the pull, once the line is released).
"""
import json, os, re, sys, time
from statistics import median

TRACING = "/sys/kernel/tracing"

def base(chip):
    dev = open(f"/sys/kernel/config/gpio-sim/chip{chip}/dev_name").read().strip()
    name = open(f"/sys/kernel/config/gpio-sim/chip{chip}/gpio-bank0/chip_name").read().strip()
    return f"/sys/devices/platform/{dev}/{name}"

def fds(chip, offsets):
    return [os.open(f"{base(chip)}/sim_gpio{o}/value", os.O_RDONLY) for o in offsets]

def chip_base(chip):
    """The global number of the chip's line 0, which the tracepoints print.
    CHIP may also name any GPIO chip ("gpiochip5": the PWM stand-in's lines,
    standin/pwm/pwm-standin.c) for measure and trace."""
    if str(chip).startswith("gpiochip"):
        name = str(chip)
    else:
        name = open(f"/sys/kernel/config/gpio-sim/chip{chip}/gpio-bank0/chip_name").read().strip()
    for line in open("/sys/kernel/debug/gpio"):
        m = re.match(rf"{name}: GPIOs (\d+)-", line)
        if m:
            return int(m.group(1))
    raise SystemExit(f"lines.py: {name} not in /sys/kernel/debug/gpio")

def trace(chip, action, offsets):
    if action != "read":
        raise SystemExit(f"lines.py: trace {action}? (only read: setup.sh turns the record on)")
    t_from, t_to, *offsets = offsets
    print(json.dumps(traced(chip, float(t_from), float(t_to), offsets)))
    return 0

def traced(chip, t_from, t_to, offsets):
    """Each line's events between t_from and t_to, from the record."""
    base = chip_base(chip)
    wanted = {base + int(o): o for o in offsets}
    out = {o: [] for o in offsets}
    # "  python3-1234  [001] .....   123.456789: gpio_value: 470 set 0"
    pat = re.compile(r"^\s*(.+)-(\d+)\s+\[\d+\].*?\s(\d+\.\d+): (gpio_direction|gpio_value): (\d+)\s+(.*)$")
    for line in open(f"{TRACING}/trace"):
        m = pat.match(line)
        if m and int(m.group(5)) in wanted and t_from <= float(m.group(3)) <= t_to:
            task, pid, t, event, gpio, what = m.groups()
            out[wanted[int(gpio)]].append((float(t), int(pid), task.strip(), f"{event} {what.strip()}"))
    return out

def initial_levels(chip, offsets):
    """Each line's level now: gpio-sim's sysfs value, or for another chip
    what gpiolib's debugfs says of a requested line ("out hi")."""
    if not str(chip).startswith("gpiochip"):
        return [int(os.pread(f, 2, 0)[:1] == b"1") for f in fds(chip, offsets)]
    first, level = chip_base(chip), {}
    for line in open("/sys/kernel/debug/gpio"):
        m = re.match(r"\s*gpio-(\d+)\s.*\b(hi|lo)\b", line)
        if m:
            level[int(m.group(1))] = int(m.group(2) == "hi")
    return [level.get(first + int(o), 0) for o in offsets]

def measure(chip, seconds, offsets):
    """Each line's duty and frequency over SECONDS, from the kernel's record of
    every value a consumer set: exact edges, and no sampler competing with the
    PWM thread for the emulated CPU (a sampler, on a busy host, read a duty
    0.07 off and missed periods).

    Both are medians over the whole periods seen (rising edge to rising edge):
    lgpio's software PWM is a thread timed by sleeps, and when the busy host
    wakes it late, that one period comes out long, its duty off. The median
    reports the duty the daemon set, which is the question here; a PWM that is
    off in most periods still fails."""
    t0 = time.monotonic()
    levels = initial_levels(chip, offsets)
    time.sleep(seconds)
    t1 = time.monotonic()
    events = traced(chip, t0, t1, offsets)
    out = {}
    for o, level in zip(offsets, levels):
        edges = [(t0, level)]  # (time, new level), changes only
        for t, _pid, _task, event in events[o]:
            if event.startswith("gpio_value set ") and int(event[-1]) != edges[-1][1]:
                edges.append((t, int(event[-1])))
        rises = [n for n, (_, v) in enumerate(edges) if v and n > 0]
        if len(rises) < 3:  # no PWM (a steady level, or a change) over the window
            high = sum(min(t_next, t1) - t for (t, v), (t_next, _) in zip(edges, edges[1:] + [(t1, None)]) if v)
            out[o] = {"duty": high / (t1 - t0), "hz": 0.0, "periods": 0}
            continue
        duties, periods = [], []
        for a, b in zip(rises, rises[1:]):
            start, end = edges[a][0], edges[b][0]
            fall = next(t for t, v in edges[a + 1:b + 1] if not v) if b > a + 1 else end
            duties.append((fall - start) / (end - start))
            periods.append(end - start)
        out[o] = {"duty": median(duties), "hz": 1 / median(periods), "periods": len(periods)}
    return out

def main():
    mode, chip, seconds, *offsets = sys.argv[1:]
    if mode == "trace":
        return trace(chip, seconds, offsets)
    if mode == "measure":
        print(json.dumps(measure(chip, float(seconds), offsets)))
        return 0
    if mode == "pull":
        for o in offsets:
            with open(f"{base(chip)}/sim_gpio{o}/pull", "w") as f:
                f.write(f"pull-{seconds}")
        return 0
    stop_file = os.environ.get("STOP_FILE")
    seconds = float(seconds)
    fs = fds(chip, offsets)
    now = time.monotonic
    read = lambda f: os.pread(f, 2, 0)[:1] == b"1"
    t0 = now()
    last = [read(f) for f in fs]
    since = [t0] * len(fs)
    changes = [[(t0, int(v))] for v in last]
    n = 0
    while True:
        t = now()
        if t - t0 > seconds or (stop_file and n % 20 == 0 and os.path.exists(stop_file)):
            break
        for i, f in enumerate(fs):
            v = read(f)
            n += 1
            if v != last[i]:
                since[i] = t
                last[i] = v
                changes[i].append((t, int(v)))
        if mode == "wait-low" and not any(last) and all(t - s >= 0.2 for s in since):
            print(json.dumps({"low_after_s": round(max(since) - t0, 3)}))
            return 0
        # levels, not duties: a read every 10 ms sees them (what they show
        # lasts seconds), and leaves the (emulated) CPU to the daemon and the failsafe
        time.sleep(0.01)
    if mode == "wait-low":
        print(json.dumps({"timeout": True, "levels": [int(v) for v in last]}))
        return 1
    print(json.dumps({o: changes[i] for i, o in enumerate(offsets)}))
    return 0

sys.exit(main())
