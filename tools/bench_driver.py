"""Driver benchmark: bus cost per call, CPU time per call and bytes allocated per call.

Run under any runtime to print its figures::

    micropython tools/bench_driver.py            # with MICROPYPATH=.frozen:lib:tools
    .venv/bin/python tools/bench_driver.py --write   # CPython: also runs mpy64/mpy32, updates BENCHMARKS.md

Bus figures come from the simulator's accounting at 50 kHz (start/stop, 9 bits a byte, 100 us gap)
and do not depend on the runtime. The baseline is the naive loop a user writes without the
package: every float as four single-byte register reads.
"""

import gc
import sys
import time

from rbamp import RbAmp, RbAmpPeriodSnapshot, RbAmpSnapshot
from rbampsim import SimI2C, SimModule, VirtualClock, loads

CASES = (("UI1", 0x04), ("UI3", 0x04), ("UI1", 0x03), ("UI3", 0x03))
RT_FLOATS = 14


def _ticks_us():
    if hasattr(time, "ticks_us"):
        return time.ticks_us()
    return int(time.perf_counter() * 1000000)


def _diff(a, b):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(a, b)
    return a - b


def _runtime():
    if sys.implementation.name != "micropython":
        return "cpython"
    return "mpy32" if 1.0 + 1e-10 == 1.0 else "mpy64"  # single-precision floats: the 32-bit build


def rig(variant, version):
    clock = VirtualClock()
    module = SimModule(variant, version, addr=0x50, clock=clock,
                       load=loads.Noisy([1500.0, 300.0, 20.0], 10.0))
    bus = SimI2C([module], freq=50000, clock=clock)
    clock.advance_ms(300)
    dev = RbAmp(bus, 0x50)
    dev.begin()
    return clock, module, bus, dev


def _naive_rt(bus):
    buf = bytearray(4)
    for k in range(RT_FLOATS):
        for i in range(4):
            buf[i] = bus.readfrom_mem(0x50, 0x86 + 4 * k + i, 1)[0]


def _naive_period(bus, channels):
    bus.writeto_mem(0x50, 0x01, b"\x27")
    bus.clock.advance_ms(50)
    bus.readfrom_mem(0x50, 0x07, 1)
    for reg in (0xDC, 0xC2, 0xC6)[:channels]:
        for i in range(4):
            bus.readfrom_mem(0x50, reg + i, 1)


def bus_costs():
    rows = []
    for variant, version in CASES:
        clock, module, bus, dev = rig(variant, version)
        channels = dev.channels
        snap = RbAmpSnapshot(channels)
        period = RbAmpPeriodSnapshot(channels)
        measured = []
        for name, call in (
                ("read_all", lambda: dev.read_all(into=snap)),
                ("period snapshot", lambda: dev.read_period_snapshot(into=period)),
                ("naive RT loop", lambda: _naive_rt(bus)),
                ("naive period loop", lambda: _naive_period(bus, channels))):
            clock.advance_ms(1000)
            bus.reset_stats()
            call()
            stats = bus.stats
            measured.append((name, stats.transactions, stats.bytes, stats.total_bus_time_us))
        rows.append((variant, version, measured))
    return rows


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def _allocated(call, locked_ok):
    """Bytes a call allocates: 0 when it runs under heap_lock (the simulator unlocks only for its
    own work); otherwise the gc.mem_alloc() delta."""
    import micropython

    micropython.heap_lock()
    try:
        call()
        return 0
    except MemoryError:
        pass
    finally:
        micropython.heap_unlock()
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    call()
    used = gc.mem_alloc() - before
    gc.enable()
    return used


def cpu_and_alloc(repeats=300):
    """Median CPU us per call (driver + simulated bus) and bytes allocated per call."""
    results = []
    on_micropython = sys.implementation.name == "micropython"
    for variant, version in (("UI3", 0x04), ("UI3", 0x03)):
        clock, module, bus, dev = rig(variant, version)
        snap = RbAmpSnapshot(3)
        period = RbAmpPeriodSnapshot(3)
        raw = bytearray(56)
        calls = (
            ("simulated bus only: 56-byte read", lambda: bus.readfrom_mem_into(0x50, 0x86, raw)),
            ("read_all(into=)", lambda: dev.read_all(into=snap)),
            ("read_period_snapshot(into=) + energy", lambda: dev.read_period_snapshot(into=period)),
            ("sample_bidirectional()", lambda: dev.sample_bidirectional(into=snap)),
            ("voltage property", lambda: dev.voltage),
        )
        for name, call in calls:
            if version == 0x03 and name.startswith("simulated"):
                continue
            timings = []
            for _ in range(repeats):
                clock.advance_ms(200)
                module.sync()  # the simulator's own window work is not the driver's
                t0 = _ticks_us()
                call()
                timings.append(_diff(_ticks_us(), t0))
            alloc = None
            if on_micropython:
                clock.advance_ms(200)
                module.sync()
                alloc = _allocated(call, True)
            results.append((variant, version, name, _median(timings), alloc))
    return results


def print_report():
    runtime = _runtime()
    print("## runtime %s" % runtime)
    if runtime == "cpython":
        print("### bus")
        for variant, version, measured in bus_costs():
            for name, transactions, nbytes, bus_us in measured:
                print("bus|%s|v1.%d|%s|%d|%d|%d" % (variant, version - 1, name, transactions, nbytes, bus_us))
    for variant, version, name, cpu_us, alloc in cpu_and_alloc():
        print("cpu|%s|%s|v1.%d|%s|%d|%s" % (runtime, variant, version - 1, name, cpu_us,
                                           "-" if alloc is None else alloc))


def _collect_all():
    import os
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    lines = []
    out = subprocess.run([sys.executable, __file__], capture_output=True, text=True, check=True)
    lines += out.stdout.splitlines()
    for runtime in ("mpy64", "mpy32"):
        binary = os.environ.get("XRT_" + runtime.upper())
        if not binary or not os.path.exists(binary):
            print("warning: %s interpreter not found (XRT_%s); its figures are missing" % (
                runtime, runtime.upper()), file=sys.stderr)
            continue
        env = dict(os.environ, MICROPYPATH=".frozen:%s/lib:%s/tools" % (root, root))
        out = subprocess.run([binary, __file__], capture_output=True, text=True, check=True, env=env)
        lines += out.stdout.splitlines()
    return lines


def _rows(lines, prefix):
    """Markdown table rows from the report lines that start with prefix ("bus|", "cpu|")."""
    return ["| " + " | ".join(line.split("|")[1:]) + " |" for line in lines if line.startswith(prefix)]


def _markdown(lines):
    md = ["Measured with `make bench-driver` (tools/bench_driver.py) against the simulator at 50 kHz.",
          "",
          "### Bus cost per call (simulated 50 kHz bus; identical on every runtime)",
          "",
          "| variant | protocol | call | transactions | bytes | bus time (us) |",
          "|---|---|---|---:|---:|---:|"]
    md += _rows(lines, "bus|")
    md += ["",
           "The period snapshot includes the LATCH write, ERROR+PERIOD_VALID, EVENT_FLAGS and UPTIME "
           "(reboot detection) and the period block; the naive loop reads only PERIOD_VALID and the "
           "averages, without torn-value, reboot or sanity protection.",
           "",
           "### CPU time (median, us per call, driver + simulated bus) and bytes allocated per call",
           "",
           "| runtime | variant | protocol | call | CPU (us) | allocated (bytes) |",
           "|---|---|---|---|---:|---:|"]
    md += _rows(lines, "cpu|")
    md += ["",
           "Allocation on MicroPython: 0 means the call ran under `micropython.heap_lock()` (the "
           "simulator unlocks only for its own work); otherwise the `gc.mem_alloc()` delta. The "
           "voltage property allocates exactly its float result (one GC block). CPython: not measured. "
           "CPU figures are host (x86-64) figures and include the simulator's bus model and, for the "
           "period snapshot, the simulator's latch work; compare rows, not boards."]
    return "\n".join(md)


def write_benchmarks(path):
    text = open(path).read()
    begin = text.index("<!-- driver:begin -->") + len("<!-- driver:begin -->")
    end = text.index("<!-- driver:end -->")
    body = _markdown(_collect_all())
    open(path, "w").write(text[:begin] + "\n" + body + "\n" + text[end:])
    print(body)


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_benchmarks("BENCHMARKS.md")
    else:
        print_report()
