"""Energy-journal benchmark: flash wear and power-cut loss over simulated years.

usage: python tools/bench_journal.py [--days N] [--naive-commits N] [--write] [--plot DIR]
                                    [--mpy PATH] [--mpy32 PATH]
       micropython tools/bench_journal.py --naive-only|--alloc-only [--naive-commits N] [--json]

Runs the real ``EnergyStore`` and ``CommitPolicy`` on the NOR-flash test device (16 blocks x
4 KiB, 2 channels, default policy) while a load profile feeds the totals once a second:

- household: about 4 MWh/year over two channels (house circuits, water heater), daily and
  seasonal shape, appliance events from a seeded generator;
- pathological: 3.68 kW (16 A at 230 V) drawn continuously on both channels.

It reports commits per year, the erase count of the most-erased block after the simulated
year, the lifetime that gives at 100k erase cycles, erases done inside a commit (0 when the
gateway calls ``prepare()`` when idle) and the worst energy a power cut could lose per
channel: the uncommitted energy just before a commit, the most it ever reaches, since totals
only grow between commits.

The naive alternative rewrites a small file on littlefs (``VfsLfs2`` mounted on the same NOR
device) at every commit. Only MicroPython has VfsLfs2: under CPython the script runs itself
under MicroPython (``--mpy``, ``$XRT_MPY64`` or ``.venv/bin/micropython``) for that part.

The heap a commit allocates is measured under the 32-bit MicroPython (``--mpy32``,
``$XRT_MPY32`` or ``.cache/mpy32/micropython-32-plain``).

``--write`` replaces the section between ``<!-- journal:begin -->`` and ``<!-- journal:end -->``
in BENCHMARKS.md and draws docs/bench/journal_wear.png, the erases of every block per year for
each profile, journal against the littlefs file; ``--plot DIR`` draws that plot into DIR
instead. The whole run (a simulated year, 200000 littlefs rewrites) takes about five minutes;
``--days`` and ``--naive-commits`` shorten it.
"""

import sys

try:
    import os
except ImportError:  # pragma: no cover
    os = None

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_REPO = _HERE + "/.."
if __name__ == "__main__":
    # Run as a program: find the gateway package and the test device next to this file.
    for _path in (_REPO + "/lib", _HERE):
        if _path not in sys.path:
            sys.path.append(_path)

from gateway.commit_policy import CommitPolicy  # noqa: E402
from gateway.store import EnergyStore, REASON_GROWTH, REASON_INTERVAL, REASON_SHUTDOWN  # noqa: E402
from norflash import NorFlash  # noqa: E402

BLOCK_SIZE = 4096
BLOCKS = 16
CHANNELS = 2
CYCLES = 100000
STEP_S = 1
NAIVE_COMMITS = 200000
DAYS_PER_YEAR = 365
# A constant load wears the flash linearly in time: four weeks scaled to a year are exact to
# within the one-erase granularity, and keep the run short.
PATHOLOGICAL_DAYS = 28
CIRCUIT_MAX_W = 3680


def _runtime_name():
    if sys.implementation.name != "micropython":
        return "cpython"
    return "mpy64" if sys.maxsize > (1 << 31) else "mpy32"


class _Rng:
    """xorshift32: the same sequence on every runtime."""

    def __init__(self, seed):
        self.state = (seed * 2654435761 + 7) & 0xFFFFFFFF or 1

    def below(self, bound):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x % bound


class _SimClock:
    """Just the clock seam the policy reads, wrapping at 2**30 ms like the boards' ticks."""

    def __init__(self):
        self.now = 0

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        d = (a - b) & 0x3FFFFFFF
        return d - 0x40000000 if d >= 0x20000000 else d

    def advance_ms(self, ms):
        self.now = (self.now + ms) & 0x3FFFFFFF


class Household:
    """Watts per channel for each minute of the year: house circuits and a water heater.

    Channel 0: standby and fridge cycling, morning/day/evening use that grows in winter, and
    appliance runs (kettle, oven, washing machine, dishwasher) at random times, at most 3.68 kW
    (a 16 A circuit). Channel 1: a
    3 kW water-heater element, a long night run and a short evening one, longer in winter.
    """

    name = "household"
    description = "about 4 MWh/year, 2 channels (house circuits + water heater)"

    def __init__(self, seed=2024):
        self.rng = _Rng(seed)
        self.watts = [0] * CHANNELS
        self._events = []
        self._day = -1

    def _plan_day(self, day):
        rng = self.rng
        events = []
        for _ in range(2 + rng.below(3)):  # kettle
            events.append((6 * 60 + rng.below(16 * 60), 3, 2000))
        if rng.below(10) < 6:  # oven
            events.append((17 * 60 + rng.below(150), 40, 2200))
        if rng.below(10) < 4:  # washing machine: heating, then the drum
            start = 8 * 60 + rng.below(12 * 60)
            events.append((start, 20, 2000))
            events.append((start + 20, 70, 250))
        if rng.below(10) < 7:  # dishwasher
            events.append((19 * 60 + rng.below(240), 35, 1800))
        self._events = events

    def minute(self, day, minute):
        if day != self._day:
            self._day = day
            self._plan_day(day)
        # 0 at midsummer, 100 at midwinter (a triangle is shape enough for wear figures).
        winter = abs(((day + 10) % 365) - 182) * 100 // 182
        hour = minute // 60
        house = 70
        if minute % 50 < 18:
            house += 85  # fridge compressor
        if 6 * 60 + 30 <= minute < 8 * 60:
            house += 200 + winter
        elif 8 <= hour < 17:
            house += 60
        elif 17 * 60 + 30 <= minute < 23 * 60:
            house += 300 + 2 * winter
        for start, length, watts in self._events:
            if start <= minute < start + length:
                house += watts
        heater = 0
        night_run = 30 + 40 * winter // 100
        if 2 * 60 <= minute < 2 * 60 + night_run:
            heater = 3000
        elif 19 * 60 <= minute < 19 * 60 + 8 + 12 * winter // 100:
            heater = 3000
        self.watts[0] = house if house < CIRCUIT_MAX_W else CIRCUIT_MAX_W  # a 16 A circuit
        self.watts[1] = heater


class Pathological:
    name = "pathological"
    description = "3.68 kW continuous on each of 2 channels"

    def __init__(self):
        self.watts = [3680] * CHANNELS

    def minute(self, day, minute):
        pass


def simulate(profile, days, step_s=STEP_S, block_size=BLOCK_SIZE, blocks=BLOCKS, prepare=True):
    """Run the store and the default policy over ``days`` of ``profile``; return the figures."""
    dev = NorFlash(block_size, blocks)
    store = EnergyStore(dev, channels=CHANNELS)
    if store.load() is not None:
        raise RuntimeError("the simulated flash should start blank")
    clock = _SimClock()
    policy = CommitPolicy(store.counters, clock=clock)
    counters = store.counters
    energy_mj = [0] * counters
    totals = [0] * counters
    policy.committed(totals, 0)
    committed = [0] * counters
    worst_lost = [0] * CHANNELS
    by_reason = {REASON_GROWTH: 0, REASON_INTERVAL: 0, REASON_SHUTDOWN: 0}
    step_ms = step_s * 1000
    watts = profile.watts
    channel_range = range(CHANNELS)
    for day in range(days):
        for minute in range(1440):
            profile.minute(day, minute)
            for _ in range(0, 60, step_s):
                for ch in channel_range:
                    w = watts[ch]
                    i = 2 * ch if w >= 0 else 2 * ch + 1
                    energy_mj[i] += (w if w >= 0 else -w) * step_ms
                    totals[i] = energy_mj[i] // 3600
                clock.advance_ms(step_ms)
                reason = policy.due(totals)
                if not reason:
                    continue
                for ch in channel_range:
                    lost = (totals[2 * ch] - committed[2 * ch]
                            + totals[2 * ch + 1] - committed[2 * ch + 1])
                    if lost > worst_lost[ch]:
                        worst_lost[ch] = lost
                store.commit(totals, reason=reason)
                policy.committed(totals)
                by_reason[reason] += 1
                for i in range(counters):
                    committed[i] = totals[i]
                if prepare:
                    store.prepare()
    # Whatever is left at the end could have been lost too, then the orderly shutdown.
    for ch in channel_range:
        lost = totals[2 * ch] - committed[2 * ch] + totals[2 * ch + 1] - committed[2 * ch + 1]
        if lost > worst_lost[ch]:
            worst_lost[ch] = lost
    if policy.at_shutdown(totals):
        store.commit(totals, reason=REASON_SHUTDOWN)
        by_reason[REASON_SHUTDOWN] += 1
    reloaded = EnergyStore(dev, channels=CHANNELS).load()
    if reloaded is None or reloaded.totals != totals:
        raise RuntimeError("the journal does not hold the final totals")
    commits = by_reason[REASON_GROWTH] + by_reason[REASON_INTERVAL] + by_reason[REASON_SHUTDOWN]
    return {
        "profile": profile.name,
        "description": profile.description,
        "days": days,
        "step_s": step_s,
        "geometry": "%d x %d B" % (blocks, block_size),
        "slots": store.capacity,
        "record_bytes": store.record_len,
        "commits": commits,
        "commits_growth": by_reason[REASON_GROWTH],
        "commits_interval": by_reason[REASON_INTERVAL],
        "import_kwh": [totals[2 * ch] // 1000000 for ch in channel_range],
        "export_kwh": [totals[2 * ch + 1] // 1000000 for ch in channel_range],
        "total_import_mwh_x1000": sum(totals[2 * ch] for ch in channel_range) // 1000000,
        "max_erases": dev.max_erases(),
        "min_erases": dev.min_erases(),
        "erase_counts": list(dev.erase_counts),
        "inline_erases": store.inline_erases,
        "programs": dev.programs,
        "bytes_programmed": dev.bytes_programmed,
        "overwrites": dev.overwrites,
        "worst_lost_mwh": worst_lost,
    }


def naive_littlefs(commits=NAIVE_COMMITS, block_size=BLOCK_SIZE, blocks=BLOCKS):
    """Rewrite a 42-byte file on littlefs at every commit; return the flash wear it causes."""
    import vfs

    dev = NorFlash(block_size, blocks, fast=False)
    vfs.VfsLfs2.mkfs(dev)
    fs = vfs.VfsLfs2(dev)
    erases_before = list(dev.erase_counts)
    record = bytearray(42)
    for k in range(commits):
        record[0] = k & 0xFF
        record[1] = (k >> 8) & 0xFF
        with fs.open("totals.bin", "wb") as f:
            f.write(record)
    erase_counts = [after - before for after, before in zip(dev.erase_counts, erases_before)]
    return {
        "commits": commits,
        "geometry": "%d x %d B" % (blocks, block_size),
        "erases": sum(erase_counts),
        "erase_counts": erase_counts,
        "max_erases": max(erase_counts),
        "min_erases": min(erase_counts),
        "programs": dev.programs,
        "bytes_programmed": dev.bytes_programmed,
        "runtime": _runtime_name(),
    }


def commit_allocation(commits=200):
    """Heap bytes per prepared commit (MicroPython only: gc.mem_alloc is exact there)."""
    import gc

    def measure(start_value):
        dev = NorFlash(1024, 4, fast=False)
        store = EnergyStore(dev, channels=CHANNELS)
        store.load()
        totals = [start_value] * store.counters
        store.commit(totals)
        store.prepare()
        used = 0
        for k in range(commits):
            totals[0] += 1234
            totals[3] += 5
            gc.collect()
            gc.disable()
            before = gc.mem_alloc()
            store.commit(totals, backlog_seq=k, reason=REASON_GROWTH)
            used += gc.mem_alloc() - before
            gc.enable()
            store.prepare()
        return used // commits

    dev = NorFlash(BLOCK_SIZE, BLOCKS, fast=False)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    store = EnergyStore(dev, channels=CHANNELS)  # the first one also builds the CRC tables
    construct = gc.mem_alloc() - before
    gc.enable()
    # A full ring, then what a boot's load() allocates (freed again once it returns).
    store.load()
    totals = [0] * store.counters
    for _ in range(store.capacity + store.slots_per_block // 2):
        totals[0] += 1000
        store.commit(totals)
        store.prepare()
    store = EnergyStore(dev, channels=CHANNELS)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    store.load()
    load = gc.mem_alloc() - before
    gc.enable()
    return {"runtime": _runtime_name(), "small": measure(0), "big": measure(1 << 40),
            "construct": construct, "load": load}


def _via_micropython(binary, mode, *options):
    import json
    import subprocess

    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:%s/lib:%s" % (_REPO, _HERE)
    out = subprocess.run([binary, __file__, mode, "--json"] + list(options), env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _find_micropython(explicit, env_name, default):
    candidates = [explicit, os.environ.get(env_name), _REPO + default]
    for path in candidates:
        if path and os.path.exists(path):
            return path
    return None


def _years(max_erases_per_year):
    return CYCLES / max_erases_per_year if max_erases_per_year else float("inf")


def _per_year(r):
    return DAYS_PER_YEAR / r["days"]


def _format_report(results, naive, days, allocation=None, plot=None):
    lines = []
    add = lines.append
    r0 = results[0]
    add("`python tools/bench_journal.py --write` (profiles simulated on %s%s). Geometry %s: "
        "%d slots of %d-byte records (2 channels = 4 counters of 48 bits), default "
        "`CommitPolicy` (5 Wh step with 1022 mWh headroom, 60 s interval), totals handed to "
        "the policy every %d s, `prepare()` called after each commit. Erase figures are the "
        "most-erased block of the NOR test device at the end of the run."
        % (r0["runtime"], ", naive littlefs on %s" % naive["runtime"] if naive else "",
           r0["geometry"], r0["slots"], r0["record_bytes"], r0["step_s"]))
    add("")
    add("| profile | simulated | import/year | commits/year | max erases/block/year "
        "| lifetime at 100k cycles | erases inside a commit | worst loss by a power cut |")
    add("|---|---|---|---|---|---|---|---|")
    for r in results:
        scale = _per_year(r)
        per_year = r["max_erases"] * scale
        add("| %s: %s | %s | %.0f kWh | %.0f (%.0f growth, %.0f interval) | %.0f | %.0f years "
            "| %d | %s |"
            % (r["profile"], r["description"],
               "%d days" % r["days"] if r["days"] == DAYS_PER_YEAR
               else "%d days, x %.2f" % (r["days"], scale),
               (r["import_kwh"][0] + r["import_kwh"][1]) * scale, r["commits"] * scale,
               r["commits_growth"] * scale, r["commits_interval"] * scale, per_year,
               _years(per_year), r["inline_erases"],
               " / ".join("%.2f Wh" % (x / 1000) for x in r["worst_lost_mwh"])))
    add("")
    add("Targets: >= 50 years household, >= 15 years pathological, <= 5 Wh lost per channel "
        "(the loss column gives channel 0 / channel 1). Wear is even: least..most erased block "
        "%s. A commit programs one or two 256-byte pages (the program unit of rp2 flash), "
        "%d bytes on average, and never asks NOR flash to set a bit (%d such programs)."
        % (", ".join("%d..%d" % (r["min_erases"], r["max_erases"]) for r in results),
           r0["bytes_programmed"] // max(r0["programs"], 1),
           sum(r["overwrites"] for r in results)))
    if allocation:
        add("")
        add("Heap per prepared `commit()` on %s: %d bytes with totals below 2**30, %d bytes with "
            "48-bit totals (big ints on the 32-bit boards). Building an `EnergyStore` for this "
            "geometry allocates %d bytes once (buffers, CRC tables, short-lived temporaries); "
            "`load()` of a full ring %d bytes, given back when it returns (a block buffer and "
            "4 bytes per slot)."
            % (allocation["runtime"], allocation["small"], allocation["big"],
               allocation["construct"], allocation["load"]))
    if not naive:
        add("")
        add("Naive littlefs comparison not measured (no MicroPython with VfsLfs2 found).")
        if plot:
            add("")
            add("![erases per flash block per year](%s)" % plot)
        return "\n".join(lines)
    per_commit = naive["max_erases"] / naive["commits"]
    add("")
    add("Naive alternative, measured: rewrite a 42-byte file on littlefs (`vfs.VfsLfs2` with "
        "MicroPython's settings on the same NOR test device, %s) at every commit. %d commits "
        "cost %d erases (%.4f per commit, every one of them inside a commit), the most-erased "
        "block %d, the least %d: %.5f erases of the worst block per commit, against %.5f for the "
        "journal (1 per %d-slot ring). Same commits per year as above:"
        % (naive["geometry"], naive["commits"], naive["erases"],
           naive["erases"] / naive["commits"], naive["max_erases"], naive["min_erases"],
           per_commit, 1 / r0["slots"], r0["slots"]))
    add("")
    add("| profile | journal: max erases/block/year | littlefs file: max erases/block/year "
        "| journal lifetime | littlefs file lifetime |")
    add("|---|---|---|---|---|")
    for r in results:
        ours = r["max_erases"] * _per_year(r)
        theirs = r["commits"] * _per_year(r) * per_commit
        add("| %s | %.0f | %.0f | %.0f years | %.1f years |"
            % (r["profile"], ours, theirs, _years(ours), _years(theirs)))
    if plot:
        add("")
        add("![erases per flash block per year, journal and littlefs file](%s)" % plot)
        add("")
        add("Erases of every block per year: the journal as simulated (%s), the littlefs file "
            "as measured (%s) scaled to the same commits per year; the dashed line is the "
            "target lifetime. Least..most erased block: littlefs file %d..%d over its %d "
            "commits, journal %s."
            % (r0["runtime"], naive["runtime"], naive["min_erases"], naive["max_erases"],
               naive["commits"],
               ", ".join("%d..%d (%s)" % (r["min_erases"], r["max_erases"], r["profile"])
                         for r in results)))
    return "\n".join(lines)


TARGET_YEARS = {"household": 50, "pathological": 15}
PLOT_NAME = "journal_wear"


def plot_wear(results, naive, directory=None):
    """Erases of every block per year, one panel per profile: the journal as simulated and the
    littlefs file at the same commit rate. Returns the PNG's path (see benchreport.save_plot)."""
    from benchreport import pyplot, save_plot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.4))
    if len(results) == 1:
        axes = [axes]
    for ax, r in zip(axes, results):
        scale = _per_year(r)
        blocks = range(len(r["erase_counts"]))
        width = 0.4 if naive else 0.8
        ax.bar([b - width / 2 if naive else b for b in blocks],
               [n * scale for n in r["erase_counts"]], width,
               label="journal, default policy (%s)" % r["runtime"], color="#2166ac")
        if naive and len(naive["erase_counts"]) == len(r["erase_counts"]):
            per_commit = r["commits"] * scale / naive["commits"]
            ax.bar([b + width / 2 for b in blocks], [n * per_commit for n in naive["erase_counts"]],
                   width, label="littlefs file rewrite (%s)" % naive["runtime"], color="#b2182b")
        target = TARGET_YEARS.get(r["profile"])
        if target:
            ax.axhline(CYCLES / target, color="black", linestyle="--", linewidth=1,
                       label="%d years at %dk cycles" % (target, CYCLES // 1000))
        ax.set_title("%s: %.0f commits/year" % (r["profile"], r["commits"] * scale))
        ax.set_xlabel("flash block (%s)" % r["geometry"])
        ax.set_ylabel("erases per year")
        ax.set_xticks(list(blocks))
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # headroom: the legend sits above the bars
        ax.legend(fontsize="small", loc="upper left")
    fig.suptitle("Erases per flash block per year: energy journal vs naive littlefs file")
    if directory:
        return save_plot(fig, PLOT_NAME, directory)
    return save_plot(fig, PLOT_NAME)


def _usage_error(message):
    print("bench_journal: %s" % message)
    sys.exit(2)


def _option(argv, name, convert=str):
    """The value after ``name`` in argv, converted; None when the option is absent."""
    if name not in argv:
        return None
    k = argv.index(name)
    if k + 1 >= len(argv):
        _usage_error("%s needs a value" % name)
    try:
        return convert(argv[k + 1])
    except ValueError:
        _usage_error("%s: not a valid value: %s" % (name, argv[k + 1]))


def _positive(text):
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


def main(argv):
    days = _option(argv, "--days", _positive) or DAYS_PER_YEAR
    naive_commits = _option(argv, "--naive-commits", _positive) or NAIVE_COMMITS
    write = "--write" in argv
    plot_dir = _option(argv, "--plot")
    as_json = "--json" in argv
    mpy = _option(argv, "--mpy")
    mpy32 = _option(argv, "--mpy32")
    if "--naive-only" in argv or "--alloc-only" in argv:
        figures = naive_littlefs(naive_commits) if "--naive-only" in argv else commit_allocation()
        if as_json:
            import json

            print(json.dumps(figures))
        else:
            print(figures)
        return 0
    if (write or plot_dir) and sys.implementation.name == "micropython":
        _usage_error("--write and --plot run under CPython (they need matplotlib)")
    results = []
    for profile, profile_days in ((Household(), days), (Pathological(), PATHOLOGICAL_DAYS)):
        r = simulate(profile, min(days, profile_days))
        r["runtime"] = _runtime_name()
        results.append(r)
        print("%s: %r" % (profile.name, r))
    naive = None
    allocation = None
    if sys.implementation.name == "micropython":
        naive = naive_littlefs(naive_commits)
        allocation = commit_allocation()
    else:
        binary = _find_micropython(mpy, "XRT_MPY64", "/.venv/bin/micropython")
        if binary:
            naive = _via_micropython(binary, "--naive-only", "--naive-commits", str(naive_commits))
        binary = _find_micropython(mpy32, "XRT_MPY32", "/.cache/mpy32/micropython-32-plain")
        if binary:
            allocation = _via_micropython(binary, "--alloc-only")
    print("naive littlefs: %r" % (naive,))
    print("allocation: %r" % (allocation,))
    plot = None
    if write or plot_dir:
        plot = plot_wear(results, naive, plot_dir)
        print("plot: %s" % plot)
    section = _format_report(results, naive, days, allocation, plot)
    print()
    print(section)
    if write:
        from benchreport import replace_section

        replace_section("journal", section)
        print("\nBENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
