"""Flash-life benchmark: the erases the energy journal and the period-record backlog cost, and the
years of flash that leaves, at the default config and at ``period_s: 1``.

usage: python tools/bench_flash_life.py [--write] [--scale F] [--json] [--mpy32 PATH]
       micropython tools/bench_flash_life.py --simulate SPEC_JSON

What runs (under the 32-bit single-float MicroPython, ``--mpy32``, ``$XRT_MPY32`` or
``.cache/mpy32/micropython-32-plain``; VfsLfs2 is MicroPython's own littlefs), on a ``VirtualClock``:

- the gateway's own set-up: ``Gateway._make_modules`` (one UI2 module, 2 channels, a simulated
  household load on channel 0 and a water heater's schedule on channel 1) and
  ``Gateway._open_journal``, which builds the ``EnergyStore`` exactly as the gateway does (so its
  record length, slots and capacity are whatever the store makes of this module layout);
- the gateway's real tasks ``Metering.period_loop`` (``period_s``) and ``Metering.journal_upkeep``
  (once a second: the ``CommitPolicy`` as ``Gateway.run`` builds it, plus ``prepare()``), so the
  journal commits at the cadence the gateway uses. The 5 Hz RT sampler does not run (it only
  adds export energy, which this load has none of, and would take hours);
- each period record goes through ``Gateway._on_period`` to a stand-in for ``MqttLink`` that does
  with the backlog what the link does: while the broker is connected the record is held in a
  ``StagedBacklog`` and published, and the broker acknowledges it 100 ms later; the stage is
  checked for overdue records every second; when the connection drops the stage is flushed and
  records go to the durable ``Backlog`` until the broker is back, then the backlog is sent oldest
  first, one round trip each. "before" is the backlog as it was: every record appended to the
  file, then its acknowledgement mark.

Placements:

- Pico W image: the journal on its own 64 KiB region (``NorFlash`` 16 x 4 KiB, as ``rp2.Flash``
  gives it), the backlog on the board's littlefs (``VfsLfs2`` with rp2's ``progsize=256`` on a
  ``NorFlash`` of 196 x 4 KiB, the 784 KiB filesystem region).
- stock firmware: the journal is the folder ``energy.d`` of block files (``BlockFilesDevice``, 16 x
  4 KiB, what ``Board.journal_device`` makes) on the
  same littlefs as the backlog: the stock Pico W filesystem, 212 x 4 KiB (848 KiB).

Every erase of every block is counted from the moment the gateway is set up (mkfs, journal
format and the first hour excluded: the steady state is what wears). Years = 100,000 cycles / the
most-erased block's erases per day / 365, for each flash region; the life of the board is the
shorter. ``--write`` replaces the ``flash-life`` section of BENCHMARKS.md; ``--scale F`` multiplies
every scenario's simulated hours (at least what the scenario needs). The whole run takes about
ten minutes.
"""

import sys

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_REPO = _HERE + "/.."
if __name__ == "__main__":
    for _path in (_REPO + "/lib", _HERE):
        if _path not in sys.path:
            sys.path.append(_path)

CYCLES = 100000
BLOCK = 4096
JOURNAL_BLOCKS = 16
PICO_FS_BLOCKS = 196
STOCK_FS_BLOCKS = 212
PROGSIZE = 256
ACK_MS = 100  # broker round trip of a period record, well inside the 5 s hold
LINK_ROUND_MS = 1000  # how often the stand-in link looks at the stage (the real one: every 50 ms)
WARMUP_H = 1
OUTAGE_AT_H = 2  # the outage hour: measured with the hour after it (the catch-up), the rest scaled
OUTAGE_H = 1
RECOVERY_H = 1
TARGET_YEARS = 20
RUNTIME_NAME = "mpy32: MicroPython 1.25 unix port, 32-bit, single-precision float"


# ---------------------------------------------------------------------------------------------
# The simulation (MicroPython)

class _QuietLog:
    def __init__(self):
        self.errors = []

    def debug(self, fmt, *args):
        pass

    def info(self, fmt, *args):
        pass

    def warning(self, fmt, *args):
        pass

    def error(self, fmt, *args):
        self.errors.append(fmt % args if args else fmt)


class _BenchBoard:
    """What ``Gateway.run`` asks of a board: the bus and the journal; no DRDY, watchdog or network."""

    name = "bench"
    config_path = "config.json"  # only named in the log: the config comes in as a LoadResult
    last_good_path = "config.last_good.json"

    def __init__(self, clock, bus, journal):
        self.clock = clock
        self._bus = bus
        self._journal = journal

    def i2c(self, cfg):
        return self._bus

    def drdy_pin(self, cfg):
        return None

    def journal_device(self):
        return self._journal

    def path(self, name):
        return None  # no files beside the journal: no day totals (gateway.services)

    def web_address(self, cfg):
        return None  # no network: no web page

    def watchdog(self, timeout_ms):
        return None

    async def background(self):
        return


async def _not_run(self):
    """Stands in for the 5 Hz sampler and the state publisher: they wear no flash and would
    take hours of host time (the sampler only adds export energy, which this load has none of)."""
    return


class _BrokerLink:
    """What MqttLink does with period records, against a broker that acknowledges after ACK_MS."""

    def __init__(self, clock, backlog, staged):
        from gateway.payloads import encode_json as _encode_json

        self._encode = _encode_json
        self.clock = clock
        self.backlog = backlog
        self.staged = staged  # False: the backlog as it was, every record written then marked
        self.online = True
        self.records = 0
        self.record_bytes = 0
        self.delivered = 0

    def publish_period(self, record):
        data = self._encode(record)
        self.records += 1
        self.record_bytes += len(data)
        if self.staged and self.online:
            self.backlog.hold(record["seq"], data)
        else:
            self.backlog.append(record["seq"], data)

    def publish_totals(self, payload):
        pass

    def publish_state(self, payload):
        pass

    def set_discovery(self, messages, published=None):
        pass

    def set_module_available(self, key, available):
        pass

    def set_online(self, online):
        if not online and self.staged:
            self.backlog.flush()  # MqttLink._close: the session ended
        self.online = online

    async def run(self):
        backlog = self.backlog
        clock = self.clock
        while True:
            if self.staged:
                backlog.spill_due()
            while self.online and len(backlog):
                seq = backlog.oldest()[0]
                await clock.asleep_ms(ACK_MS)
                backlog.ack(seq)
                self.delivered += 1
            await clock.asleep_ms(LINK_ROUND_MS)


async def _alive(task):
    """Gateway.run never returns: if it did, its exception (or this error) ends the benchmark."""
    if task.done():
        await task
        raise RuntimeError("Gateway.run returned")


def simulate(spec):
    """Run one scenario; returns its figures (a dict)."""
    import asyncio

    import vfs

    from gateway.app import Gateway
    from gateway.backlog import Backlog, StagedBacklog
    from gateway.config import LoadResult, parse_config
    from gateway.flashdev import BlockFilesDevice
    from gateway.metering import Metering
    from norflash import NorFlash
    from rbampsim import SimI2C, SimModule, VirtualClock, loads

    import gc

    gc.collect()  # the flash images are large blocks: start each run on a collected heap
    period_s = spec["period_s"]
    hours = spec["hours"]
    stock = spec["placement"] == "stock"
    config = parse_config({"mqtt": {"host": "broker.invalid"}, "period_s": period_s, "device_id": "bench",
                           "modules": [{"address": 0x50, "label": "house"}]})
    config["mqtt"]["host"] = None  # no MqttLink from Gateway.run: the stand-in below is the link
    clock = VirtualClock()
    # channel 0: house circuits; channel 1 idle (no PV: its export would need the 5 Hz sampler)
    sim = SimModule("UI2", 0x04, addr=0x50, clock=clock, seed=11,
                    load=loads.Household(seed=5, start_hour=0.0, pv_peak_w=0.0))
    bus = SimI2C([sim], clock=clock)
    clock.advance_ms(300)
    # a smaller filesystem only for the host test (the unix port's default heap is small)
    fs_blocks = spec.get("fs_blocks") or (STOCK_FS_BLOCKS if stock else PICO_FS_BLOCKS)
    fs_flash = NorFlash(BLOCK, fs_blocks, fast=spec.get("fast", True))
    vfs.VfsLfs2.mkfs(fs_flash, progsize=PROGSIZE)
    mount = "/flash_life"
    vfs.mount(vfs.VfsLfs2(fs_flash, progsize=PROGSIZE), mount)
    try:
        if stock:
            journal_flash = None
            journal_dev = BlockFilesDevice(mount + "/energy.d", BLOCK, JOURNAL_BLOCKS)
        else:
            journal_flash = NorFlash(BLOCK, JOURNAL_BLOCKS)
            journal_dev = journal_flash
        log = _QuietLog()
        saved = Metering.sampler, Gateway.publisher
        Metering.sampler = _not_run
        Gateway.publisher = _not_run
        gateway = Gateway(_BenchBoard(clock, bus, journal_dev), LoadResult(config, True, None, "file", False), log)
        durable = Backlog(mount + "/backlog.bin")
        staged = spec["backlog"] == "staged"
        backlog = StagedBacklog(durable, clock) if staged else durable
        link = _BrokerLink(clock, backlog, staged)
        gateway.link = link  # no mqtt host in the config: Gateway.run keeps this one
        gateway._seeded = True
        snaps = {}
        info = {}
        holder = []

        def snapshot(name):
            metering = holder[0]
            snaps[name] = {"journal": list(journal_flash.erase_counts) if journal_flash else None,
                           "fs": list(fs_flash.erase_counts), "commits": metering.commits,
                           "periods": metering.periods, "writes": durable.writes}

        outage_hours = (OUTAGE_AT_H, OUTAGE_AT_H + OUTAGE_H) if spec["outage"] else ()

        async def run():
            tasks = [asyncio.create_task(gateway.run()), asyncio.create_task(link.run())]
            await clock.asleep_ms(1)  # Gateway.run sets up (journal, modules, first commit)
            await _alive(tasks[0])
            metering = gateway.metering
            store = gateway.store
            info.update({"record_len": store.record_len, "slot_size": store.slot_size, "slots": store.capacity})
            holder.append(metering)
            snapshot("start")
            for hour in range(hours):
                if hour == WARMUP_H:
                    snapshot("warm")
                if outage_hours and hour == outage_hours[0]:
                    snapshot("down")
                    link.set_online(False)
                if outage_hours and hour == outage_hours[1]:
                    link.set_online(True)
                if outage_hours and hour == outage_hours[1] + RECOVERY_H:
                    snapshot("recovered")
                await clock.asleep_ms(3600 * 1000)
                await _alive(tasks[0])
            snapshot("end")
            for task in tasks:
                task.cancel()
            await asyncio.sleep(0)

        try:
            asyncio.run(run())
        finally:
            Metering.sampler, Gateway.publisher = saved
            # MicroPython's asyncio.run leaves cancelled tasks queued, holding the flash images
            asyncio.new_event_loop()
        if staged:
            backlog.flush()  # the orderly stop
        durable.close()
        if stock:
            journal_dev.close()

        def delta(key, a, b):
            if snaps[a][key] is None:
                return None
            if isinstance(snaps[a][key], list):
                return [y - x for x, y in zip(snaps[a][key], snaps[b][key])]
            return snaps[b][key] - snaps[a][key]

        def day(key):
            """Per block (or a count) for one day: the outage window as measured, the online hours
            scaled to the rest of the day."""
            if snaps["warm"][key] is None:
                return None
            if not outage_hours:
                online = delta(key, "warm", "end")
                scale = 24.0 / (hours - WARMUP_H)
                return [n * scale for n in online] if isinstance(online, list) else online * scale
            window = delta(key, "down", "recovered")
            before = delta(key, "warm", "down")
            after = delta(key, "recovered", "end")
            online_h = (outage_hours[0] - WARMUP_H) + (hours - outage_hours[1] - RECOVERY_H)
            scale = (24.0 - OUTAGE_H - RECOVERY_H) / online_h
            if isinstance(window, list):
                return [w + (x + y) * scale for w, x, y in zip(window, before, after)]
            return window + (before + after) * scale

        return {
            "spec": spec,
            "period_s": period_s,
            "hours": hours,
            "record_len": info["record_len"],
            "slot_size": info["slot_size"],
            "slots": info["slots"],
            "period_record_bytes": link.record_bytes // max(link.records, 1),
            "journal_day": day("journal"),
            "fs_day": day("fs"),
            "commits_day": day("commits"),
            "periods_day": day("periods"),
            "backlog_writes_day": day("writes"),
            "setup_fs_erases": sum(delta("fs", "start", "warm")),
            "commit_errors": holder[0].commit_errors,
            "backlog_held": backlog.held if staged else 0,
            "delivered": link.delivered,
            "pending_at_end": len(durable),
            "errors": log.errors[:5],
        }
    finally:
        vfs.umount(mount)


def _simulate_main(argv):
    import json

    spec = json.loads(argv[argv.index("--simulate") + 1])
    print(json.dumps(simulate(spec)))
    return 0


# ---------------------------------------------------------------------------------------------
# The host side (CPython)

# (period_s, placement, backlog, daily outage, simulated hours). The littlefs of stock firmware is
# slow to simulate (every journal commit rewrites a block file), so those runs are shorter;
# the Pico W journal erases each block about once a day at period_s 60, so that run is longer.
SCENARIOS = (
    (60, "pico", "staged", False, 73), (60, "pico", "staged", True, 73), (60, "pico", "direct", False, 73),
    (60, "stock", "staged", False, 25), (60, "stock", "staged", True, 25), (60, "stock", "direct", False, 25),
    (1, "pico", "staged", False, 3), (1, "pico", "direct", False, 3),
    (1, "stock", "staged", False, 2), (1, "stock", "direct", False, 2),
)


def find_mpy32(explicit=None):
    import os

    for path in (explicit, os.environ.get("XRT_MPY32"), _REPO + "/.cache/mpy32/micropython-32-plain"):
        if path and os.path.exists(path):
            return path
    raise SystemExit("bench_flash_life: no 32-bit MicroPython (build it with `make mpy32`, or --mpy32 PATH)")


def run_scenario(binary, spec):
    import json
    import os
    import subprocess

    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:%s/lib:%s:%s" % (_REPO, _HERE, _HERE)
    out = subprocess.run([binary, "-X", "heapsize=8M", __file__, "--simulate", json.dumps(spec)], env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("scenario %r failed under %s:\n%s%s" % (spec, binary, out.stdout, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def years(max_per_day):
    return CYCLES / (max_per_day * 365) if max_per_day else float("inf")


def figures(r):
    """Erases per day of the most-worn block of each region, and the years they give."""
    out = {"fs_max_day": max(r["fs_day"]), "fs_total_day": sum(r["fs_day"])}
    out["fs_years"] = years(out["fs_max_day"])
    if r["journal_day"] is not None:
        out["journal_max_day"] = max(r["journal_day"])
        out["journal_years"] = years(out["journal_max_day"])
        out["life"] = min(out["journal_years"], out["fs_years"])
    else:
        out["journal_max_day"] = None
        out["journal_years"] = None
        out["life"] = out["fs_years"]
    return out


def _fmt_years(y):
    if y == float("inf"):
        return "no erase"
    if y >= 10:
        return "%.0f" % y
    return "%.1f" % y if y >= 1 else "%.2f" % y


def _label(r):
    spec = r["spec"]
    if spec["backlog"] == "direct":
        return "before: every record and its ack written, broker online"
    return "staged, 1 h outage a day" if spec["outage"] else "staged, broker online"


def _hours_text(results):
    seen = []
    for r in results:
        text = "%s %d h at period_s %d" % ("Pico W" if r["spec"]["placement"] == "pico" else "stock", r["hours"],
                                           r["period_s"])
        if text not in seen:
            seen.append(text)
    return ", ".join(seen)


def report(results, wall_s):
    lines = []
    add = lines.append
    r0 = results[0]
    add("Measured with `make bench-flash` (`python tools/bench_flash_life.py --write`) on %s, %.0f s of host "
        "time. The gateway's own set-up and tasks in virtual time: one UI2 module (2 channels; `loads.Household` "
        "on channel 0, about 10 kWh a day), `Gateway._open_journal` (here: journal records of %d bytes in "
        "%d-byte slots, %d slots in 16 x 4 KiB), `Metering.period_loop` and `journal_upkeep` with the commit "
        "policy as `Gateway.run` builds it from the default config (5 Wh growth, 60 s interval), period records "
        "(about %d bytes of JSON) through `Gateway._on_period` to a stand-in of `MqttLink` doing what the link "
        "does with the backlog, against a broker that acknowledges %d ms after a record is sent. Simulated: %s; "
        "the first hour (mkfs, journal start) is not counted, the rest is scaled to a day; with an outage, the "
        "outage hour and the catch-up hour after it count as measured and the other hours are scaled to 22."
        % (RUNTIME_NAME, wall_s, r0["record_len"], r0["slot_size"], r0["slots"], r0["period_record_bytes"],
           ACK_MS, _hours_text(results)))
    add("")
    add("Pico W image: journal on its own 64 KiB flash region (16 x 4 KiB), backlog on the littlefs region "
        "(196 x 4 KiB, `VfsLfs2` with rp2's progsize 256). Stock firmware: the journal is the folder energy.d of "
        "16 block files (`BlockFilesDevice`) on the same littlefs as the backlog (212 x 4 KiB, the stock Pico W "
        "filesystem). "
        "NOR endurance 100,000 erase cycles per 4 KiB sector: years = 100,000 / (erases of the most-erased "
        "block per day x 365), for each region; the projected life is the shorter.")
    add("")
    add("| period_s | placement | backlog | journal commits/day | journal region: max erases/block/day "
        "| littlefs: max erases/block/day (all blocks) | backlog writes/period | projected life |")
    add("|---|---|---|---|---|---|---|---|")
    for r in results:
        f = figures(r)
        spec = r["spec"]
        journal = ("%.1f (%s years)" % (f["journal_max_day"], _fmt_years(f["journal_years"]))
                   if f["journal_max_day"] is not None else "(block files on littlefs)")
        add("| %d | %s | %s | %.0f | %s | %.1f (%.0f) | %.3f | **%s years** |"
            % (r["period_s"], "Pico W image" if spec["placement"] == "pico" else "stock firmware",
               _label(r), r["commits_day"], journal, f["fs_max_day"], f["fs_total_day"],
               r["backlog_writes_day"] / max(r["periods_day"], 1), _fmt_years(f["life"])))
    add("")
    by = {}
    for r in results:
        s = r["spec"]
        by[(r["period_s"], s["placement"], s["backlog"], s["outage"])] = r
    notes = []
    for period_s in sorted(set(r["period_s"] for r in results), reverse=True):
        before = by.get((period_s, "pico", "direct", False))
        after = by.get((period_s, "pico", "staged", False))
        if before and after:
            notes.append("period_s %d: %.2f block erases per period before (%.0f a day), %.3f with the stage "
                         "(%.0f a day)"
                         % (period_s, sum(before["fs_day"]) / before["periods_day"], sum(before["fs_day"]),
                            sum(after["fs_day"]) / after["periods_day"], sum(after["fs_day"])))
    if notes:
        add("Backlog on the Pico W image's littlefs, broker online: " + "; ".join(notes) + ". A record the "
            "broker acknowledges within the 5 s hold is never written, nor is its acknowledgement; a day with a "
            "1-hour outage writes that hour's records, one mark per record acknowledged in the catch-up, and a "
            "mark when the connection drops.")
        add("")
    stock = by.get((60, "stock", "staged", False))
    if stock:
        add("Stock firmware, broker online, staged: the backlog writes nothing, so all of its littlefs wear "
            "is the journal's block files: %.1f block erases per journal commit (%.0f a day for %.0f commits), "
            "spread by littlefs over the whole filesystem. A commit programs 256 bytes of one 4 KiB block file, "
            "which littlefs writes to a new place, plus its folder's metadata (a folder per block file: the metadata "
            "rewrites, every few commits, are spread over 16 metadata pairs). The single 64 KiB energy.img of earlier "
            "versions cost 10.6 erases per commit (littlefs rewrites a changed block and every block of the "
            "file after it): 3.3 years at the default config. The dedicated region of the Pico W image programs "
            "the same 256 bytes in place and erases a block once per %d commits."
            % (sum(stock["fs_day"]) / stock["commits_day"], sum(stock["fs_day"]), stock["commits_day"],
               stock["slots"] // JOURNAL_BLOCKS))
        add("")
    verdicts = []
    for placement, name in (("pico", "Pico W image"), ("stock", "stock firmware")):
        lives = [figures(r)["life"] for r in results
                 if r["period_s"] == 60 and r["spec"]["backlog"] == "staged" and r["spec"]["placement"] == placement]
        if lives:
            worst = min(lives)
            verdicts.append("%s %s (shortest: %s years)" % (name, "met" if worst >= TARGET_YEARS else "NOT met",
                                                            _fmt_years(worst)))
    if verdicts:
        add("Target: >= %d years at the default config (period_s 60): %s. period_s 1 has no target."
            % (TARGET_YEARS, "; ".join(verdicts)))
    return "\n".join(lines)


def _option(argv, name, convert=str):
    if name not in argv:
        return None
    k = argv.index(name)
    if k + 1 >= len(argv):
        raise SystemExit("bench_flash_life: %s needs a value" % name)
    return convert(argv[k + 1])


def main(argv):
    if "--simulate" in argv:
        return _simulate_main(argv)
    import json
    import time

    scale = _option(argv, "--scale", float) or 1.0
    binary = find_mpy32(_option(argv, "--mpy32"))
    started = time.time()
    results = []
    for period_s, placement, backlog, outage, hours in SCENARIOS:
        hours = max(int(hours * scale), OUTAGE_AT_H + OUTAGE_H + RECOVERY_H + 1 if outage else WARMUP_H + 1)
        spec = {"period_s": period_s, "hours": hours, "placement": placement, "backlog": backlog, "outage": outage}
        r = run_scenario(binary, spec)
        print("%s: %s" % (json.dumps(spec), json.dumps(figures(r))), flush=True)
        results.append(r)
    section = report(results, time.time() - started)
    if "--json" in argv:
        print(json.dumps(results))
    print()
    print(section)
    if "--write" in argv:
        from benchreport import replace_section

        replace_section("flash-life", section)
        print("\nBENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
