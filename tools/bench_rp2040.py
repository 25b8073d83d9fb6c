"""RP2040 benchmark: our Pico W image on the emulated chip (tools/picow: rp2040js 1.3.3 on Node).

usage: python tools/bench_rp2040.py [--write] [--hour-s S] [--repeats N]

What it measures, each on a fresh emulated board with our image (``pico_w_image()``, built once
per change of its sources) and a simulated UI2 module, config without Wi-Fi/MQTT (the CYW43 is
not emulated: the gateway's safe mode):

- the image: the .bin's size and what is left of the 1200 KiB app area before the storage region;
- boot: emulated time from the chip's reset to the gateway's first RT sample, read on the chip
  (``time.ticks_us()``, the RP2040 timer, which the emulator derives from its cycle count) by a
  main.py that wraps ``Metering.sample_once`` and then runs the gateway as the image does;
- heap: the gateway's own health lines (30 s after boot, then every 10 minutes) over an emulated
  hour (``--hour-s``; 0 skips it), running exactly as the image starts it;
- CPU on the chip (REPL, the gateway not started: an empty main.py): ``read_all(into=)`` and the
  rest of the driver's hot path on v1.3 and v1.2, driver alone (the register-image bus of
  tools/bench_driver.py, so no bus time), the journal's ``commit`` and ``prepare`` on the board's
  own journal region (``Rp2Board().journal_device()``, erased on the fresh flash), and, for
  comparison, ``read_all`` on the real I2C controller at 50 kHz (bus time included).

Emulated time is cycles: the runner advances the clock 8 ns per cycle of each instruction
(125 MHz) and the RP2040 timer that ``ticks_us``/``ticks_cpu`` read (on RP2040 both are
``time_us_32()``) is derived from that clock. What rp2040js does not model is listed in the report.
"""

import inspect
import json
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "lib"), HERE):
    if _path not in sys.path:
        sys.path.append(_path)

APP_AREA = 1200 * 1024  # flash before MicroPython's storage region (firmware/README.md)
UP = "gateway 0.1.0 up"
FIRST_SAMPLE = "bench: first sample at "
REPEATS = 300
COMMITS = 1300  # once round the 16-block ring of a 2-channel layout (73 records a block): prepares too
BUS_REPEATS = {"v1.3": 30, "v1.2": 10}  # real-bus reads take 11 ms (v1.3) and ~130 ms (v1.2) each
HOUR_S = 3600
READ_ALL_TARGET_US = 1000
HEAP_TARGET_B = 100 * 1000
MICROPYTHON = "MicroPython v1.25.0"
RP2040JS = "rp2040js 1.3.3"

CONFIG = {
    "device_id": "bench-rp2040",
    "i2c": {"bus": 0, "scl": 5, "sda": 4, "freq": 50000},
    "drdy_pin": 6,
    "modules": [{"address": "0x50", "label": "mains"}],
    "period_s": 60,
    "ntp": {"enabled": False},
    "log_level": "info",
}
# Boots without a label: a label (or class, CT model) the module does not hold yet is written and
# saved by the gateway, a 700 ms wait for the module's own flash (SAVE_MS) on that one boot.
BOOT_CONFIG = dict(CONFIG, modules=[{"address": "0x50"}])
SIM_V13 = "UI2@1.3:0x50:1000,-300"
SIM_V12 = "UI2@1.2:0x51:1000,-300"

# The boot measurement's main.py: the gateway as the image's frozen main.py starts it, with the
# first RT sample marked on the console in the chip's own microseconds since reset.
BOOT_MAIN = """import time
print("bench: main.py at %d us" % time.ticks_us())
from gateway import metering
_sample_once = metering.Metering.sample_once
def _marked(self):
    _sample_once(self)
    if self.samples == 1:
        print("bench: first sample at %d us" % time.ticks_us())
metering.Metering.sample_once = _marked
from gateway.app import main
main()
"""

# Run on the chip in the raw REPL. Each figure is one line "R name median min max n" (us).
# Every series starts on a collected heap (garbage slows even allocation-free calls until the
# next collection); the list of timings is made before the series, so filling it allocates
# nothing.
CHIP_COMMON = """import gc, time
from rbamp import RbAmp, RbAmpSample, RbAmpSnapshot, RbAmpPeriodSnapshot
def allocated(call, before):
    least = None
    for _ in range(3):
        if before is not None:
            before()
        gc.collect()
        gc.disable()
        start = gc.mem_alloc()
        call()
        used = gc.mem_alloc() - start
        gc.enable()
        least = used if least is None or used < least else least
    return least
def series(name, call, n, before=None):
    ticks = time.ticks_us
    diff = time.ticks_diff
    out = [0] * n
    gc.collect()
    for i in range(n):
        if before is not None:
            before()
        t0 = ticks()
        call()
        out[i] = diff(ticks(), t0)
    out.sort()
    print("R", name, out[n // 2], out[0], out[-1], n, allocated(call, before))
"""

CHIP_DRIVER = """
{bus_class}
gc.collect()
print("H", gc.mem_free(), gc.mem_alloc())
series("timer", lambda: None, {n})
for label, image in (("v1.3", {v13!r}), ("v1.2", {v12!r})):
    dev = RbAmp(RegisterImageBus(bytearray(image), None), 0x50)
    dev.begin()
    snap = RbAmpSnapshot(dev.channels)
    sample = RbAmpSample(dev.channels)
    period = RbAmpPeriodSnapshot(dev.channels)
    series("read_all " + label, lambda: dev.read_all(into=snap), {n})
    if label == "v1.3":
        # where read_all's time goes: the bench's own bus copy, and the plausibility checks
        bus = dev._t.bus
        raw = bytearray(56)
        series("image bus 56-byte read", lambda: bus.readfrom_mem_into(0x50, 0x86, raw), {n})
        from rbamp.floatbits import f32_plausible
        from rbamp.device import RT_MAX_EXP, RT_SIGNED
        def checks():
            view = snap.raw
            for k in range(14):
                f32_plausible(view, 4 * k, RT_MAX_EXP[k], RT_SIGNED[k])
        series("f32_plausible x14", checks, {n})
    series("sample_bidirectional " + label, lambda: dev.sample_bidirectional(into=sample), {n})
    # the gateway's period path: latch_period(), 50 ms later read_period_snapshot(skip_latch=True)
    series("read_period_snapshot " + label,
           lambda: dev.read_period_snapshot(into=period, skip_latch=True, settle_ms=0), {n},
           lambda: dev.latch_period())
    dev.latch_period()
    series("latch_period " + label, lambda: dev.latch_period(), {n},
           lambda: dev.read_period_snapshot(into=period, skip_latch=True, settle_ms=0))
    del dev, snap, period
from gateway.boards import Rp2Board
from gateway.store import EnergyStore
store = EnergyStore(Rp2Board().journal_device())
print("J", store.load() is None, store.block_count, store.block_size)
store.set_layout([(0x50, 2)])
totals = [0, 0, 0, 0]
def commit():
    totals[0] += 1000
    totals[3] += 300
    store.commit(totals, reason=1)
commit()  # the first record of a layout opens a block: not a typical commit
prepares = []
def prepare():
    if store.needs_prepare:
        t0 = time.ticks_us()
        store.prepare()
        prepares.append(time.ticks_diff(time.ticks_us(), t0))
series("commit", commit, {commits}, prepare)
prepares.sort()
if prepares:
    print("R", "prepare", prepares[len(prepares) // 2], prepares[0], prepares[-1], len(prepares), -1)
print("J", store.seq, store.erases, store.inline_erases, store.skipped_slots)
"""

CHIP_BUS = """
from machine import I2C, Pin
i2c = I2C(0, scl=Pin(5), sda=Pin(4), freq=50000)
for label, addr, n in (("v1.3", 0x50, {n13}), ("v1.2", 0x51, {n12})):
    dev = RbAmp(i2c, addr)
    dev.begin()
    snap = RbAmpSnapshot(dev.channels)
    series("i2c read_all " + label, lambda: dev.read_all(into=snap), n)
"""


class BenchError(Exception):
    """A prerequisite is missing or the chip did not do what was asked: one line for the user."""


def _prerequisites(call):
    """Run a tests/support_* call; their pytest skip/fail (a missing toolchain, Node...) becomes
    a BenchError with the same message."""
    import pytest

    try:
        return call()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        raise BenchError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))


def firmware():
    import support_firmware

    return _prerequisites(support_firmware.pico_w_image)


def _picow():
    import support_picow

    return support_picow


def _run(tmp, **kwargs):
    picow = _picow()
    return _prerequisites(lambda: picow.run(tmp, **kwargs))


# ---------------------------------------------------------------------- the measurements
def image_figures(image):
    size = os.path.getsize(image.bin)
    return {"bin_bytes": size, "app_bytes": APP_AREA, "free_bytes": APP_AREA - size,
            "image": os.path.relpath(image.uf2, ROOT)}


def register_image(version):
    """The registers of a simulated UI2 just after a good period latch (PERIOD_VALID set), the
    image bench_driver's driver-alone figures use."""
    import bench_driver

    return bytes(bench_driver.image_rig("UI2", version)[0].image)


def _register_bus_source():
    import bench_driver

    return inspect.getsource(bench_driver.RegisterImageBus)


def _parse_lines(out):
    figures, extra = {}, {}
    for line in out.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "R":
            name = " ".join(fields[1:-5])
            median, low, high, n, alloc = (int(x) for x in fields[-5:])
            figures[name] = {"median_us": median, "min_us": low, "max_us": high, "n": n,
                             "alloc_bytes": None if alloc < 0 else alloc}
        elif fields[0] in ("H", "J"):
            extra.setdefault(fields[0], []).append(fields[1:])
    return figures, extra


def measure_cpu(tmp, repeats=REPEATS, commits=COMMITS, bus_repeats=None):
    """CPU figures on the chip: the driver alone, the journal, and read_all on the real bus."""
    bus_repeats = bus_repeats or BUS_REPEATS
    driver = CHIP_COMMON + CHIP_DRIVER.format(bus_class=_register_bus_source(), n=repeats, commits=commits,
                                              v13=register_image(0x04), v12=register_image(0x03))
    bus = CHIP_COMMON + CHIP_BUS.format(n13=bus_repeats["v1.3"], n12=bus_repeats["v1.2"])
    result = _run(tmp, files={"main.py": ""}, config=CONFIG, sims=[SIM_V13, SIM_V12], timeout_s=600,
                  steps=[{"send": "\r"}, {"wait": ">>> "}, {"exec": driver, "capture": "driver"},
                         {"exec": bus, "capture": "bus"}])
    if result.exit != 0:
        raise BenchError("the CPU run did not finish: %s" % result.reason)
    figures, extra = {}, {}
    for name in ("driver", "bus"):
        out, err = result.exec_output(name)
        if err:
            raise BenchError("the chip raised in the %s run: %s" % (name, err.strip().splitlines()[-1]))
        more_figures, more_extra = _parse_lines(out)
        figures.update(more_figures)
        extra.update(more_extra)
    heap = extra["H"][0]
    journal_first, journal_last = extra["J"]
    return {"figures": figures, "repl_heap_free": int(heap[0]), "repl_heap_used": int(heap[1]),
            "journal_blank": journal_first[0] == "True", "journal_blocks": int(journal_first[1]),
            "journal_block_size": int(journal_first[2]), "journal_seq": int(journal_last[0]),
            "journal_erases": int(journal_last[1]), "journal_inline_erases": int(journal_last[2]),
            "journal_skipped": int(journal_last[3]), "emulated_s": result.emulated_s, "wall_s": result.wall_s}


def measure_boot(tmp):
    """From the chip's reset to the gateway's first RT sample (its ticks_us), and to 'up': the
    first boot of a fresh board, then a power cycle of board and module with that flash (the
    journal and the files kept; the simulated module starts afresh, so it is provisioned again).

    Not a machine.reset() with the module powered through: after a reset the runner's simulated
    modules run ahead of the chip by the previous boot's length (tools/picow/run.mjs wires the
    new chip's I2C bridge while nowNs() still adds the old chip's clock), so no DRDY edge reaches
    the new chip for that long and its first sample waits for the 300 ms DRDY timeout."""
    files = {"config.json": BOOT_CONFIG, "main.py": BOOT_MAIN}
    steps = [{"wait": "bench: main.py at "}, {"wait": UP, "capture": "up"}, {"wait": FIRST_SAMPLE},
             {"wait": " us"}]
    first = _run(os.path.join(tmp, "first"), files=files, sims=[SIM_V13], timeout_s=30, steps=steps)
    second = None
    if first.exit == 0:
        second = _run(os.path.join(tmp, "again"), flash=first.flash, image=False, sims=[SIM_V13],
                      config=BOOT_CONFIG, timeout_s=30, steps=steps)
    boots = []
    for result in (first, second):
        if result is None or result.exit != 0:
            raise BenchError("a boot run did not reach the first sample: %s" % (result or first).reason)
        console = result.console
        main_us = int(re.search(r"bench: main\.py at (\d+) us", console).group(1))
        first_us = int(re.search(r"bench: first sample at (\d+) us", console).group(1))
        boots.append({"cause": result.boots[0]["cause"], "main_s": main_us / 1e6,
                      "first_sample_s": first_us / 1e6, "up_s": result.report.get("capture_s", {}).get("up"),
                      "clean": "Traceback" not in console})
    return {"boots": boots, "wall_s": first.wall_s + second.wall_s}


HEALTH = re.compile(r"health: uptime (\d+) s, heap free (\d+) B, used (\d+) B, samples (\d+), periods (\d+), "
                    r"commits (\d+), commit errors (\d+), mains losses (\d+)")


def measure_hour(tmp, seconds):
    """The gateway as the image starts it for ``seconds`` of emulated time: its health lines."""
    files = {"config.json": CONFIG}
    if not _picow().image_starts_gateway():
        raise BenchError("the image has no frozen main.py that starts the gateway")
    result = _run(tmp, files=files, sims=[SIM_V13], timeout_s=seconds + 120, wall_timeout_s=seconds + 1800,
                  steps=[{"wait": UP}, {"run_s": seconds + 40}])
    if result.exit != 0:
        raise BenchError("the hour run stopped early: %s" % result.reason)
    lines = [tuple(int(x) for x in m.groups()) for m in HEALTH.finditer(result.console)]
    if not lines:
        raise BenchError("no health line on the console in %d s" % seconds)
    keys = ("uptime_s", "heap_free", "heap_used", "samples", "periods", "commits", "commit_errors",
            "mains_losses")
    return {"health": [dict(zip(keys, line)) for line in lines], "reboots": result.reboots,
            "clean": "Traceback" not in result.console and "fatal error" not in result.console,
            "emulated_s": result.emulated_s, "wall_s": result.wall_s}


def measure(hour_s=HOUR_S, repeats=REPEATS, commits=COMMITS, bus_repeats=None, tmp=None):
    own = tmp is None
    tmp = tmp or tempfile.mkdtemp(prefix="bench-rp2040-")
    result = {"image": image_figures(firmware())}
    result["boot"] = measure_boot(os.path.join(tmp, "boot"))
    result["cpu"] = measure_cpu(os.path.join(tmp, "cpu"), repeats, commits, bus_repeats)
    result["hour"] = measure_hour(os.path.join(tmp, "hour"), hour_s) if hour_s else None
    if own:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result


# ---------------------------------------------------------------------- the report
def _ms(us):
    return "%.3f" % (us / 1000.0)


def _met(ok):
    return "met" if ok else "**not met**"


def report(result):
    image, boot, cpu, hour = result["image"], result["boot"], result["cpu"], result["hour"]
    fig = cpu["figures"]
    timer = fig["timer"]["median_us"]
    lines = [
        "Measured by `make bench-rp2040` (tools/bench_rp2040.py): our image (%s, `pico_w_image()`), "
        "%s, on an emulated RP2040 (%s on Node, tools/picow) at 125 MHz, with simulated UI2 modules "
        "on I2C0 at 50 kHz; config without Wi-Fi/MQTT (the CYW43 is not emulated: safe mode, metering "
        "and the journal only)." % (MICROPYTHON, os.path.basename(image["image"]), RP2040JS),
        "",
        "| figure | value | how |",
        "|---|---:|---|",
        "| image (.bin) | %s B | the whole flash image from offset 0, boot2 included |"
        % format(image["bin_bytes"], ","),
        "| free in the app area | %s B (%.0f KiB) | %s B (1200 KiB) before the storage region, minus the "
        "image |" % (format(image["free_bytes"], ","), image["free_bytes"] / 1024.0, format(image["app_bytes"], ",")),
    ]
    first_boot, reset_boot = boot["boots"]
    for label, entry in (("first boot (fresh flash and module)", first_boot),
                         ("power cycle (that flash: journal kept; module afresh)", reset_boot)):
        lines += [
            "| %s: to main.py | %.3f s | chip's `ticks_us()` from reset: MicroPython up, `_boot.py` mounted "
            "littlefs, the frozen main.py handed over |" % (label, entry["main_s"]),
            "| %s: to \"%s\" | %.3f s | emulated time the line reached the console (1 ms resolution): "
            "config, journal, module `begin()` |" % (label, UP, entry["up_s"]),
            "| **%s: to the first reading** | **%.3f s** | chip's `ticks_us()` when the first RT sample "
            "(`Metering.sample_once`, after a DRDY edge) returned |" % (label, entry["first_sample_s"]),
        ]
    if hour is not None:
        first, last = hour["health"][0], hour["health"][-1]
        lowest = min(line["heap_free"] for line in hour["health"])
        lines += [
            "| heap free 30 s after boot | %s B | the gateway's health line (after `gc.collect()`); "
            "used %s B |" % (format(first["heap_free"], ","), format(first["heap_used"], ",")),
            "| **heap free after %d s** | **%s B** | the last health line; used %s B; lowest of %d "
            "lines %s B; %d samples, %d periods, %d commits, %d commit errors |" % (
                last["uptime_s"], format(last["heap_free"], ","), format(last["heap_used"], ","),
                len(hour["health"]), format(lowest, ","), last["samples"], last["periods"], last["commits"],
                last["commit_errors"]),
        ]
    if hour is not None and len(hour["health"]) > 1:
        first, last = hour["health"][0], hour["health"][-1]
        minutes = (last["uptime_s"] - first["uptime_s"]) / 60.0
        lines.append("| heap used, growth | %+d B in %.0f min (%+.1f B per minute) | last health line minus "
                     "the first, both after `gc.collect()`; the log keeps its last 16 lines in RAM "
                     "(`Logger.recent`) and each health line (about 160 B) takes a place in it until the "
                     "16 are full: bounded at about 4 KB |" % (
                         last["heap_used"] - first["heap_used"], minutes,
                         (last["heap_used"] - first["heap_used"]) / minutes))
    lines.append("| heap free at the REPL | %s B | nothing running (empty main.py), after "
                 "`gc.collect()`; used %s B |" % (format(cpu["repl_heap_free"], ","),
                                                  format(cpu["repl_heap_used"], ",")))
    lines += [
        "",
        "Boots: config without Wi-Fi/MQTT and without a module label (a label, class or CT model the "
        "module does not hold yet is written and saved once, adding the module's 700 ms save wait to "
        "that boot); the first reading is the first DRDY-paced sample after \"up\". The boot "
        "measurement's main.py (on the filesystem, run by the image's frozen one) only wraps "
        "`Metering.sample_once` to print the time; the heap run uses the image's own start-up.",
        "",
        "CPU time per call on the chip (ms; median of n calls, min .. max), timed with `time.ticks_us()` "
        "around each call (1 us resolution; `ticks_cpu()` is the same timer on RP2040), each series on a "
        "collected heap, the gateway not running (REPL). *Driver alone*: the bus answers from a copy of "
        "a UI2's registers taken after a good latch (`RegisterImageBus` of tools/bench_driver.py), so "
        "the figure is the driver's work plus one buffer copy per read, no bus time. The empty timed "
        "call (`lambda: None`) costs %d us and is included in every figure." % timer,
        "",
        "| call | protocol | median (ms) | min .. max (ms) | n | allocated (B) |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def row(label, protocol, key):
        entry = fig[key]
        alloc = "-" if entry["alloc_bytes"] is None else str(entry["alloc_bytes"])
        lines.append("| %s | %s | %s | %s .. %s | %d | %s |" % (
            label, protocol, _ms(entry["median_us"]), _ms(entry["min_us"]), _ms(entry["max_us"]), entry["n"], alloc))

    for protocol in ("v1.3", "v1.2"):
        row("**read_all(into=)**, driver alone", protocol, "read_all " + protocol)
        if protocol == "v1.3":
            row("of which: the register-image bus's 56-byte copy (bench overhead)", protocol, "image bus 56-byte read")
            row("of which: `f32_plausible()` of the 14 RT floats (driver)", protocol, "f32_plausible x14")
        row("sample_bidirectional(into=RbAmpSample), driver alone (the gateway's 5 Hz digest sample)", protocol,
            "sample_bidirectional " + protocol)
        row("latch_period(), driver alone", protocol, "latch_period " + protocol)
        row("read_period_snapshot(into=, skip_latch=True, settle_ms=0), driver alone (the period snapshot)",
            protocol, "read_period_snapshot " + protocol)
    row("`EnergyStore.commit()` on the board's journal region (one 2-channel record: program 256 B, "
        "sync, read back)", "-", "commit")
    if "prepare" in fig:
        row("`EnergyStore.prepare()` on it (erase the 4 KiB block ahead, check it blank)", "-", "prepare")
    for protocol in ("v1.3", "v1.2"):
        row("read_all(into=) on the I2C controller at 50 kHz, bus time included", protocol, "i2c read_all " + protocol)
    lines += [
        "",
        "Repeatability: runs of this benchmark with other series lengths gave the same v1.3 figures "
        "within 10%, but the v1.2 driver-alone figures moved between runs (read_all 15.2, 23.6 and "
        "32.9 ms for the same image): their cause is not found yet; compare v1.2 rows as orders of "
        "magnitude only.",
        "",
        "*Allocated*: the smallest `gc.mem_alloc()` delta of 3 calls with the collector disabled (-: not "
        "measured). The register-image bus allocates a slice object per multi-byte copy (16 B), so a "
        "driver-alone v1.3 read shows 16 B that the driver itself does not allocate.",
    ]
    read_all = fig["read_all v1.3"]["median_us"]
    lines += [
        "",
        "The journal: the board's own region (`rp2.Flash`, %d blocks of %d B, blank on the fresh flash), "
        "layout 1 module of 2 channels; %d records written (the layout's first, the timed ones, 3 for the "
        "allocation figure), `prepare()` called untimed before each timed commit when a block was due "
        "(%d erases, %d inline, %d slots skipped)." % (
            cpu["journal_blocks"], cpu["journal_block_size"], cpu["journal_seq"], cpu["journal_erases"],
            cpu["journal_inline_erases"], cpu["journal_skipped"]),
        "",
        "What the emulator does not model, so the chip may be slower than these figures: flash wait "
        "states and XIP cache misses (every fetch and load costs rp2040js one cycle, as if all code ran "
        "from the XIP cache or SRAM; MicroPython's VM and our frozen bytecode run from flash through a "
        "16 KiB cache; after each flash program or erase the cache is flushed and the code that runs "
        "next refills it); the flash chip's busy time (a 256-byte page program is about 0.7 ms typical "
        "on a W25Q16, a 4 KiB sector erase about 45 ms, here both end at once, so `commit` and `prepare` "
        "are CPU only); bus contention and DMA between the two cores (core 1 idles); the CYW43 and "
        "its interrupts. rp2040js counts cycles per instruction (taken branches, loads and stores, "
        "peripheral accesses) and the runner advances emulated time 8 ns per cycle, so emulated "
        "microseconds are cycles / 125. Boot times start at the chip's reset with the runner jumping "
        "straight into boot2 (the bootrom and the crystal's start-up, a few ms on a board, are not in "
        "them).",
        "",
        "Targets: `read_all` under 1 ms CPU on v1.3 (driver alone): %s (%s ms). Steady heap free at "
        "least 100 KB: %s." % (
            _met(read_all < READ_ALL_TARGET_US), _ms(read_all),
            ("%s (%s B after %d s)" % (_met(hour["health"][-1]["heap_free"] >= HEAP_TARGET_B),
                                       format(hour["health"][-1]["heap_free"], ","),
                                       hour["health"][-1]["uptime_s"])) if hour is not None
            else "not measured (--hour-s 0)"),
    ]
    return "\n".join(lines)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the rp2040 section of BENCHMARKS.md")
    parser.add_argument("--hour-s", type=int, default=HOUR_S,
                        help="emulated seconds the gateway runs for the heap figures (default 3600; 0 skips)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="calls per CPU figure (default %d)" % REPEATS)
    parser.add_argument("--json", help="also save the raw figures to this file")
    args = parser.parse_args(argv)
    if args.hour_s < 0:
        parser.error("--hour-s must be 0 or more")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        result = measure(args.hour_s, args.repeats)
    except BenchError as exc:
        print("bench_rp2040: %s" % exc, file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    text = report(result)
    print(text)
    if args.write:
        from benchreport import replace_section

        replace_section("rp2040", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
