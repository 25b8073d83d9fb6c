"""Driver benchmark: bus cost per call, CPU time per call and bytes allocated per call.

Run under any runtime to print its figures::

    micropython tools/bench_driver.py            # with MICROPYPATH=.frozen:lib:tools
    .venv/bin/python tools/bench_driver.py --write   # CPython: also runs mpy64/mpy32, updates
                                                     # BENCHMARKS.md and docs/bench/driver_*.png

Bus figures come from the simulator's accounting at 50 kHz (start/stop, 9 bits a byte, 100 us gap)
and do not depend on the runtime; they are taken under CPython, for every variant (UI1..I3) and
both protocol versions, as the average of many calls at every phase of the module's 200 ms window
(a v1.2 pass that meets a commit costs more). The baseline is the naive loop a user writes without
the package: every float the variant has (I-variants have no voltage, power or power factor) as
four single-byte register reads, and for a period the latch, PERIOD_VALID and the average power
per channel; for the 5 Hz sample the voltage and power floats.
"""

import gc
import sys
import time

if __name__ == "__main__" and sys.implementation.name != "micropython":
    # Run as a program under CPython: the driver and the simulator live next to this file.
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path[:0] = [_here + "/../lib", _here]

from rbamp import RbAmp, RbAmpPeriodSnapshot, RbAmpSample, RbAmpSnapshot  # noqa: E402
from rbamp import registers as R  # noqa: E402
from rbampsim import SimI2C, SimModule, VirtualClock, loads  # noqa: E402

VARIANTS = ("UI1", "UI2", "UI3", "I1", "I2", "I3")
VERSIONS = (0x04, 0x03)
CPU_REPEATS = 300
WINDOW_STEP_MS = 203
BUS_CALLS = 200  # calls averaged per bus figure, after BUS_WARMUP calls (the v1.2 phase learning)
BUS_WARMUP = 20
ENERGY_HOURS = 2
PROTOCOL_V13 = "v1.3"
PROTOCOL_V12 = "v1.2"
PROTOCOL_V12_DRDY = "v1.2 + DRDY"


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


def _protocol(version):
    return PROTOCOL_V13 if version == 0x04 else PROTOCOL_V12


def rig(variant, version):
    clock = VirtualClock()
    module = SimModule(variant, version, addr=0x50, clock=clock,
                       load=loads.Noisy([1500.0, 300.0, 20.0], 10.0))
    bus = SimI2C([module], freq=50000, clock=clock)
    clock.advance_ms(300)
    dev = RbAmp(bus, 0x50)
    dev.begin()
    return clock, module, bus, dev


def naive_rt_registers(channels, has_voltage):
    """The RT floats a variant has, in register order: what a naive loop reads."""
    regs = [R.U_RMS, R.U_PEAK] if has_voltage else []
    regs += [R.I_RMS0 + 4 * ch for ch in range(channels)]
    regs += [R.I_PEAK0 + 4 * ch for ch in range(channels)]
    if has_voltage:
        regs += [R.P0 + 4 * ch for ch in range(channels)]
        regs += [R.PF0 + 4 * ch for ch in range(channels)]
    return regs


def _naive_rt(bus, registers):
    buf = bytearray(4)
    for reg in registers:
        for i in range(4):
            buf[i] = bus.readfrom_mem(0x50, reg + i, 1)[0]


def _naive_period(bus, channels):
    bus.writeto_mem(0x50, R.COMMAND, bytes([R.CMD_LATCH_PERIOD]))
    bus.clock.advance_ms(R.LATCH_SETTLE_MS)
    bus.readfrom_mem(0x50, R.PERIOD_VALID, 1)
    for reg in (R.PERIOD_AVG_P, R.PERIOD_AVG_P_CH1, R.PERIOD_AVG_P_CH2)[:channels]:
        for i in range(4):
            bus.readfrom_mem(0x50, reg + i, 1)


def _cost(bus, call):
    bus.reset_stats()
    call()
    stats = bus.stats
    return stats.transactions, stats.bytes, stats.total_bus_time_us


def _phase_step_us(i):
    return 7919 * i % 200000  # successive calls land at every phase of the 200 ms window


def _average_cost(clock, bus, call, pace_ms=0):
    """Average (transactions, bytes, bus time in us) of BUS_CALLS calls, each after pace_ms and
    a step to another phase of the window, after BUS_WARMUP calls that are not counted."""
    for i in range(BUS_WARMUP):
        clock.advance_ms(pace_ms)
        clock.advance_us(_phase_step_us(i))
        call()
    bus.reset_stats()
    for i in range(BUS_CALLS):
        clock.advance_ms(pace_ms)
        clock.advance_us(_phase_step_us(BUS_WARMUP + i))
        call()
    stats = bus.stats
    return (stats.transactions // BUS_CALLS, stats.bytes // BUS_CALLS,
            stats.total_bus_time_us // BUS_CALLS)


def naive_sample_registers(channels, has_voltage):
    """What a naive 5 Hz import/export sampler reads: the voltage and each channel's power."""
    if not has_voltage:
        return [R.I_RMS0 + 4 * ch for ch in range(channels)]  # no power to read: the currents
    return [R.U_RMS] + [R.P0 + 4 * ch for ch in range(channels)]


def _cost_after_drdy(clock, module, bus, dev, snap):
    """read_all started right after a DRDY edge: v1.2 trusts a single byte-wise pass then."""
    import asyncio

    dev.attach_drdy(module.drdy)
    costs = []

    async def read_after_edge():
        if not await dev.wait_drdy():
            raise RuntimeError("no DRDY edge from the simulated module")
        costs.append(_cost(bus, lambda: dev.read_all(into=snap)))

    asyncio.run(read_after_edge())
    return costs[0]


def bus_costs():
    """Rows (call, variant, protocol, driver cost, naive cost); a cost is (transactions, bytes,
    bus time in us). call is "rt" (the RT block) or "period" (a period snapshot)."""
    rows = []
    for version in VERSIONS:
        for variant in VARIANTS:
            clock, module, bus, dev = rig(variant, version)
            channels = dev.channels
            snap = RbAmpSnapshot(channels)
            period = RbAmpPeriodSnapshot(channels)
            naive_regs = naive_rt_registers(channels, module.has_voltage)
            clock.advance_ms(1000)
            driver_rt = _average_cost(clock, bus, lambda: dev.read_all(into=snap))
            clock.advance_ms(1000)
            naive_rt = _cost(bus, lambda: _naive_rt(bus, naive_regs))
            sample = RbAmpSample(channels)
            dev.sample_bidirectional(into=sample)
            driver_sample = _average_cost(clock, bus, lambda: dev.sample_bidirectional(into=sample),
                                          pace_ms=200)
            naive_sample_regs = naive_sample_registers(channels, module.has_voltage)
            naive_sample = _cost(bus, lambda: _naive_rt(bus, naive_sample_regs))
            clock.advance_ms(1000)
            driver_period = _cost(bus, lambda: dev.read_period_snapshot(into=period))
            clock.advance_ms(1000)
            naive_period = _cost(bus, lambda: _naive_period(bus, channels))
            protocol = _protocol(version)
            rows.append(("rt", variant, protocol, driver_rt, naive_rt))
            rows.append(("period", variant, protocol, driver_period, naive_period))
            rows.append(("sample", variant, protocol, driver_sample, naive_sample))
            if version == 0x03:
                clock.advance_ms(1000)
                rows.append(("rt", variant, PROTOCOL_V12_DRDY,
                             _cost_after_drdy(clock, module, bus, dev, snap), naive_rt))
    return rows


def sampled_energy(hours=ENERGY_HOURS):
    """Import and export integrated from 5 Hz samples over ``hours`` of a midday household whose
    ch1 exports PV power, once from the digest (whole watts) and once from the RT block (float
    watts), against the simulator's ground truth. Rows (channel, kind, truth, digest, RT block),
    energies in mWh."""
    totals = {}
    for source in ("digest", "rt"):
        clock = VirtualClock()
        module = SimModule("UI2", 0x04, addr=0x50, clock=clock, load=loads.Household(seed=5, start_hour=11.0))
        bus = SimI2C([module], freq=50000, clock=clock)
        clock.advance_ms(300)
        dev = RbAmp(bus, 0x50)
        dev.begin()
        into = RbAmpSample(2) if source == "digest" else RbAmpSnapshot(2)
        dev.sample_bidirectional(into=into)
        start = module.truth.snapshot()
        t0 = clock.now_us()
        for i in range(1, hours * 3600 * 5 + 1):
            clock.advance_us(t0 + 200000 * i - clock.now_us())  # every 200 ms, whatever the read took
            dev.sample_bidirectional(into=into)
        for ch in range(2):
            for kind, counters in (("import", dev.energy.imported), ("export", dev.energy.exported)):
                # energy is counted up to the last sample: the truth up to the same instant
                truth = getattr(module.truth, kind + "_wh_since")(start, ch)
                totals[(source, ch, kind)] = (int(truth * 1000 + 0.5), counters[ch].mwh())
    rows = []
    for ch in range(2):
        for kind in ("import", "export"):
            truth, digest = totals[("digest", ch, kind)]
            rt_truth, rt = totals[("rt", ch, kind)]
            if rt_truth != truth:
                raise RuntimeError("the two runs saw different energy: %d / %d mWh" % (truth, rt_truth))
            rows.append((ch, kind, truth, digest, rt))
    return rows


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def _allocated(call, before_each, attempts=5):
    """Bytes a call allocates: 0 when it runs under heap_lock (the simulator unlocks only for its
    own work); otherwise the smallest gc.mem_alloc() delta of a few calls, each after
    before_each() (which moves the simulated module on by a window and a bit, so one of the calls
    falls where the simulator has no window of its own to compute)."""
    import micropython

    before_each()
    micropython.heap_lock()
    try:
        call()
        return 0
    except MemoryError:
        pass
    finally:
        micropython.heap_unlock()
    smallest = None
    for _ in range(attempts):
        before_each()
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()
        call()
        used = gc.mem_alloc() - before
        gc.enable()
        if smallest is None or used < smallest:
            smallest = used
    return smallest


class RegisterImageBus:
    """A bus that answers every read from a fixed copy of the module's registers, at almost no
    cost: timing the driver on it leaves the driver's own work and one copy per read. Reads
    allocate nothing but a slice object for a multi-byte copy (16 bytes on mpy32), so the figures
    do not carry garbage collections the driver did not cause."""

    def __init__(self, image, clock):
        self.image = image
        self.clock = clock
        self._chunks = {}  # reg * 512 + length -> those bytes of the image, made once

    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        n = len(buf)
        if n == 1:
            buf[0] = self.image[reg]
            return
        key = reg * 512 + n
        chunk = self._chunks.get(key)
        if chunk is None:
            chunk = self._chunks[key] = bytes(self.image[reg:reg + n])
        buf[:] = chunk

    def readfrom_mem(self, addr, reg, nbytes, addrsize=8):
        return bytes(self.image[reg:reg + nbytes])

    def writeto_mem(self, addr, reg, buf, addrsize=8):
        pass

    def writeto(self, addr, buf, stop=True):
        return len(buf)

    def scan(self):
        return [0x50]


def image_rig(variant, version):
    """A begun driver on a RegisterImageBus holding the simulated module's registers just after a
    good period latch (PERIOD_VALID set), and the bus."""
    clock, module, bus, dev = rig(variant, version)
    clock.advance_ms(1000)
    dev.read_period_snapshot()
    image_bus = RegisterImageBus(bytearray(module.read_reg(0, 256)), VirtualClock())
    driver = RbAmp(image_bus, 0x50)
    driver.begin()
    return image_bus, driver


def _median_us(call, repeats, before_each):
    # Each series starts on a collected heap: measured on MicroPython, the garbage an earlier
    # series of simulated calls leaves behind slows even the non-allocating driver-alone calls
    # up to sevenfold until the next collection, which would make the order of series matter.
    gc.collect()
    timings = []
    for _ in range(repeats):
        before_each()
        t0 = _ticks_us()
        call()
        timings.append(_diff(_ticks_us(), t0))
    return _median(timings)


def _calls(dev, snap, period, sample):
    return (
        ("read_all(into=)", lambda: dev.read_all(into=snap)),
        ("read_period_snapshot(into=) + energy", lambda: dev.read_period_snapshot(into=period)),
        ("sample_bidirectional(into=RbAmpSample)", lambda: dev.sample_bidirectional(into=sample)),
        ("voltage property", lambda: dev.voltage),
    )


def cpu_and_alloc(repeats=CPU_REPEATS):
    """Per call: median CPU us with the simulated bus, median CPU us of the driver alone (on a
    RegisterImageBus; None for the bus-only row) and bytes allocated (None on CPython)."""
    results = []
    on_micropython = sys.implementation.name == "micropython"
    for variant, version in (("UI3", 0x04), ("UI3", 0x03)):
        clock, module, bus, dev = rig(variant, version)
        image_bus, image_dev = image_rig(variant, version)
        snap = RbAmpSnapshot(3)
        period = RbAmpPeriodSnapshot(3)
        sample = RbAmpSample(3)

        def next_window():
            # A window and a bit: successive calls start at different points of the 200 ms
            # window, not always at the same one.
            clock.advance_ms(WINDOW_STEP_MS)
            module.sync()  # the simulator's own window work is not the driver's

        def next_image_window():
            image_bus.clock.advance_ms(200)

        if version == 0x04:
            raw = bytearray(56)
            bus_only = lambda: bus.readfrom_mem_into(0x50, 0x86, raw)  # noqa: E731
            results.append((variant, version, "simulated bus only: 56-byte read",
                            _median_us(bus_only, repeats, next_window), None,
                            _allocated(bus_only, next_window) if on_micropython else None))
        for (name, call), (_, image_call) in zip(_calls(dev, snap, period, sample),
                                                 _calls(image_dev, snap, period, sample)):
            simulated_us = _median_us(call, repeats, next_window)
            driver_us = _median_us(image_call, repeats, next_image_window)
            alloc = _allocated(call, next_window) if on_micropython else None
            results.append((variant, version, name, simulated_us, driver_us, alloc))
    return results


def _dash(value):
    return "-" if value is None else str(value)


def print_report():
    """One line per figure, "|"-separated, for the CPython side to collect from every runtime."""
    runtime = _runtime()
    print("## runtime %s" % runtime)
    if runtime == "cpython":
        for call, variant, protocol, driver, naive in bus_costs():
            print("bus|%s|%s|%s|%d|%d|%d|%d|%d|%d" % ((call, variant, protocol) + driver + naive))
        for ch, kind, truth, digest, rt in sampled_energy():
            print("energy|%d|%s|%d|%d|%d" % (ch, kind, truth, digest, rt))
    for variant, version, name, cpu_us, driver_us, alloc in cpu_and_alloc():
        print("cpu|%s|%s|%s|%s|%d|%s|%s" % (runtime, variant, _protocol(version), name, cpu_us,
                                            _dash(driver_us), _dash(alloc)))


# ---------------------------------------------------------------- CPython side: collect and report

def _collect_all():
    """Report lines from CPython (this interpreter) and from mpy64 and mpy32 ($XRT_MPY64/32)."""
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


def parse(lines):
    """Report lines -> (bus rows, cpu rows, energy rows) with numbers as ints (None for an
    unmeasured "-")."""
    bus, cpu, energy = [], [], []
    for line in lines:
        fields = line.split("|")
        if fields[0] == "energy":
            energy.append((int(fields[1]), fields[2]) + tuple(int(x) for x in fields[3:6]))
        elif fields[0] == "bus":
            bus.append(tuple(fields[1:4]) + (tuple(int(x) for x in fields[4:7]),
                                             tuple(int(x) for x in fields[7:10])))
        elif fields[0] == "cpu":
            numbers = tuple(None if x == "-" else int(x) for x in fields[5:8])
            cpu.append(tuple(fields[1:5]) + numbers)
    return bus, cpu, energy


def _bus_table(bus, call):
    share = call == "sample"
    md = ["| variant | protocol | transactions | bytes | bus time (ms) | naive: transactions "
          "| naive: bytes | naive: bus time (ms) | driver / naive bus time |%s" % (
              " share of the bus at 5 Hz |" if share else ""),
          "|---|---|---:|---:|---:|---:|---:|---:|---:|%s" % ("---:|" if share else "")]
    for kind, variant, protocol, driver, naive in bus:
        if kind == call:
            md.append("| %s | %s | %d | %d | %.2f | %d | %d | %.2f | %.2f |%s" % (
                variant, protocol, driver[0], driver[1], driver[2] / 1000.0,
                naive[0], naive[1], naive[2] / 1000.0, driver[2] / naive[2],
                " %.1f %% |" % (driver[2] * 5 / 10000.0) if share else ""))
    return md


def _energy_table(energy):
    md = ["| channel | energy | ground truth (Wh) | from the digest (Wh) | digest error | from the RT "
          "block (Wh) | RT block error |",
          "|---|---|---:|---:|---:|---:|---:|"]
    for ch, kind, truth, digest, rt in energy:
        md.append("| ch%d | %s | %.3f | %.3f | %+.4f %% | %.3f | %+.4f %% |" % (
            ch, kind, truth / 1000.0, digest / 1000.0, 100.0 * (digest - truth) / truth if truth else 0.0,
            rt / 1000.0, 100.0 * (rt - truth) / truth if truth else 0.0))
    return md


def markdown(bus, cpu, energy, plots):
    md = ["Measured with `make bench-driver` (tools/bench_driver.py) against the simulator at 50 kHz.",
          "",
          "### Bus cost per call (simulated 50 kHz bus; measured on cpython, identical on every runtime)",
          "",
          "![bus time per call, driver and naive loop](%s)" % plots["bus"],
          "",
          "Every figure is the average of %d calls at every phase of the module's 200 ms window "
          "(after %d calls to learn it), except the naive loops and the DRDY rows (one call)." % (
              BUS_CALLS, BUS_WARMUP),
          "",
          "RT read: `read_all(into=)`, one 200 ms window of the floats the variant has (U and U "
          "peak on UI variants, I, I peak, P on UI variants and PF per channel). v1.3: one "
          "read-frozen burst from the variant's first float to its last (UI1 48 bytes, UI3 56); an "
          "I1, whose three floats are 40 bytes apart, reads I..I peak (16 bytes) as one burst and "
          "PF before and after it: equal PF copies prove the burst's window (one commit at most "
          "can fall within those few ms). v1.2: one byte-wise pass between two reads of the "
          "digest's commit counter `seq` (equal: no commit inside), started after the commit the "
          "learned window phase expects within it; or a single pass right after a DRDY edge. "
          "Naive: the variant's own floats (without PF on I variants), each as four single-byte "
          "reads, with no torn-value or sanity protection.",
          ""]
    md += _bus_table(bus, "rt")
    md += ["",
           "Period snapshot: `read_period_snapshot(into=)` with its LATCH write, ERROR+PERIOD_VALID, "
           "EVENT_FLAGS and UPTIME (reboot detection) and the period block. Naive: LATCH, "
           "PERIOD_VALID and the average power of each channel, byte by byte, without torn-value, "
           "reboot or sanity protection.",
           ""]
    md += _bus_table(bus, "period")
    md += ["",
           "5 Hz sample: `sample_bidirectional(into=RbAmpSample)`, the gateway's sampling path, "
           "called every 200 ms. v1.3: one read-frozen burst of the digest's prefix "
           "`[status][seq][U][P per channel]` (DIGEST_CONFIG voltage + power; I variants only "
           "power). v1.2: those bytes one by one between two reads of `seq`. Naive: U and each "
           "channel's P as floats (I variants: the currents), four single-byte reads each. Before "
           "this sample path the 5 Hz sample was `read_all` (v1.3: 10.78 ms, 5.4 % of the bus).",
           ""]
    md += _bus_table(bus, "sample")
    md += ["",
           "Energy from the 5 Hz samples: a UI2 (ch0 a house circuit, ch1 with PV export around "
           "midday, `loads.Household`), %d simulated hours from 11:00 sampled every 200 ms, v1.3. "
           "The digest carries power in whole watts (rounded, so each sample is off by at most "
           "0.5 W, without bias); the RT block carries float watts. Ground truth: the simulator's "
           "exact energy over the same span." % ENERGY_HOURS,
           ""]
    md += _energy_table(energy)
    md += ["",
           "### CPU time per call (median of %d calls, us) and bytes allocated per call" % CPU_REPEATS,
           "",
           "![driver CPU time per call on each runtime](%s)" % plots["cpu"],
           "",
           "| runtime | variant | protocol | call | CPU with simulated bus (us) | driver alone (us) "
           "| allocated (bytes) |",
           "|---|---|---|---|---:|---:|---:|"]
    for runtime, variant, protocol, name, cpu_us, driver_us, alloc in cpu:
        md.append("| %s | %s | %s | %s | %d | %s | %s |" % (
            runtime, variant, protocol, name, cpu_us, _dash(driver_us), _dash(alloc)))
    md += ["",
           "UI3 is the variant with the most data per call. *CPU with simulated bus* includes the "
           "simulator's bus model and, for the period snapshot, its latch work (the first row is "
           "that model alone). *Driver alone* is the same call on a bus that answers from a fixed "
           "copy of the module's registers (taken after a good latch), so it is the driver's own "
           "work plus one copy per read; on v1.2 the copy always agrees with itself, so "
           "no torn-value re-read happens there. Allocation on MicroPython, with the simulated "
           "bus: 0 means the call ran under `micropython.heap_lock()` (the simulator unlocks only "
           "for its own work); otherwise the `gc.mem_alloc()` delta. The voltage property "
           "allocates exactly its float result (one GC block). CPython: not measured. All CPU "
           "figures are x86-64 host figures; compare runtimes and rows, not boards."]
    return "\n".join(md)


def plot_bus(bus):
    from benchreport import pyplot, save_plot

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    series = (("driver, v1.3", "#1b7837", lambda protocol: protocol == PROTOCOL_V13, 3),
              ("driver, v1.2", "#c51b7d", lambda protocol: protocol == PROTOCOL_V12, 3),
              ("driver, v1.2 + DRDY", "#f1b6da", lambda protocol: protocol == PROTOCOL_V12_DRDY, 3),
              ("naive byte-by-byte", "#7f7f7f", lambda protocol: protocol == PROTOCOL_V13, 4))
    width = 0.2
    for ax, call, title in zip(axes, ("rt", "period", "sample"),
                               ("RT read (read_all)", "period snapshot", "5 Hz sample")):
        for k, (label, colour, wanted, which) in enumerate(series):
            xs, heights = [], []
            for i, variant in enumerate(VARIANTS):
                for kind, v, protocol, driver, naive in bus:
                    if kind == call and v == variant and wanted(protocol):
                        xs.append(i + (k - 1.5) * width)
                        heights.append((driver if which == 3 else naive)[2] / 1000.0)
            if xs:
                ax.bar(xs, heights, width, label=label, color=colour)
        ax.set_xticks(range(len(VARIANTS)))
        ax.set_xticklabels(VARIANTS)
        ax.set_title(title)
        ax.set_xlabel("variant")
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylabel("bus time per call (ms)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("Bus time per call at 50 kHz (simulator accounting, measured on cpython; "
                 "the same on every runtime)")
    return save_plot(fig, "driver_bus_time")


CPU_PLOT_LABELS = {
    "simulated bus only: 56-byte read": "bus only\n56 B read",
    "read_all(into=)": "read_all",
    "read_period_snapshot(into=) + energy": "period\nsnapshot",
    "sample_bidirectional(into=RbAmpSample)": "5 Hz sample\n(digest)",
    "voltage property": "voltage",
}


def plot_cpu(cpu):
    from benchreport import pyplot, save_plot

    plt = pyplot()
    calls = []
    for row in cpu:
        if row[5] is not None and row[2:4] not in calls:
            calls.append(row[2:4])
    runtimes = [r for r in ("cpython", "mpy64", "mpy32") if any(row[0] == r for row in cpu)]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / max(len(runtimes), 1)
    colours = {"cpython": "#4575b4", "mpy64": "#fdae61", "mpy32": "#d73027"}
    for k, runtime in enumerate(runtimes):
        values = {(p, n): us for r, v, p, n, simulated, us, a in cpu if r == runtime and us is not None}
        xs = [i + (k - (len(runtimes) - 1) / 2) * width for i, key in enumerate(calls) if key in values]
        ax.bar(xs, [values[key] for key in calls if key in values], width, label=runtime,
               color=colours[runtime])
    ax.set_yscale("log")
    ax.set_xticks(range(len(calls)))
    ax.set_xticklabels(["%s\n%s" % (CPU_PLOT_LABELS.get(name, name), protocol)
                        for protocol, name in calls], fontsize="small")
    ax.set_ylabel("median driver CPU per call (us, log scale)")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend()
    ax.set_title("Driver CPU time per call (driver alone: register-image bus), UI3, "
                 "on each runtime (x86-64 host)")
    return save_plot(fig, "driver_cpu")


def write_benchmarks():
    from benchreport import replace_section

    bus, cpu, energy = parse(_collect_all())
    plots = {"bus": plot_bus(bus), "cpu": plot_cpu(cpu)}
    body = markdown(bus, cpu, energy, plots)
    replace_section("driver", body)
    print(body)


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_benchmarks()
    else:
        print_report()
