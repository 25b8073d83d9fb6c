"""Energy-accuracy benchmark: 30 simulated days of the gateway's metering path under faults, on mpy32.

usage: python tools/bench_energy.py [--days N] [--write] [--plot PATH] [--json] [--mpy32 PATH]
       micropython tools/bench_energy.py --simulate [--days N]

What runs (under the 32-bit single-float MicroPython, ``--mpy32``, ``$XRT_MPY32`` or
``.cache/mpy32/micropython-32-plain``), on a ``VirtualClock``:

- the gateway's own set-up code (``Gateway._make_modules`` and ``_open_journal`` with the default
  ``config.json`` settings): a UI2 module (house circuit on ch0, PV inverter exporting on ch1,
  ``loads.Household``) and a UI1 module (a second house circuit), both v1.3, on ``SimI2C``; the
  journal (``EnergyStore`` on the ``NorFlash`` test device, ``CommitPolicy`` as ``Gateway.run``
  builds it);
- ``Metering`` with the gateway's period records going through ``Gateway._on_period``, so the
  totals a subscriber receives are built by ``Gateway.totals_payload`` and encoded as the MQTT
  link encodes them. The link is a stand-in that delivers at once while the broker is reachable
  and, like ``MqttLink``, keeps only the latest totals during an outage and sends them on
  reconnect.

Rates: the period latch (import), the journal commits and the publishing run for every 60 s
period of every day. One hour a day (a different hour each day) runs the gateway's real tasks
(``Metering.sampler`` paced by the DRDY pin at the module's 5 Hz, ``period_loop``,
``journal_upkeep`` once a second). The other 23 hours sample RT power (export) twice a minute, at
the minute boundary and at the latch: the household profile holds its power for whole minutes, so
these samples integrate the same energy as the 5 Hz sampler would, at a fraction of the cost
(5 Hz for 30 days is 13 million samples, hours on mpy32).

Faults, all in the 5 Hz hour, planned relative to ``period_loop``'s real latches: EMI bursts
(20 ms .. 250 ms, 2/3 of transactions fail, ESP32 ghost bytes after every NACK), every day a module
reboot just before a latch (the latch is refused or finds no window: a stale latch), every third
day a reboot in the middle of a period. Every second day a publish outage of hours. The simulator
keeps exact ground-truth energy per channel.

The mpy32 program prints one JSON line per simulated hour (``H``) and a summary (``S``); the
CPython side compares what the subscriber last received with the ground truth at the instant it
was published (error) and at the instant of the record (lag, the subscriber's value behind the
meter during an outage), plots both to ``docs/bench/energy_error.png`` and, with ``--write``,
replaces the ``energy`` section of BENCHMARKS.md.
"""

import sys

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_REPO = _HERE + "/.."

DAYS = 30
DAY_S = 86400
HOUR_S = 3600
MINUTE_US = 60000000
PERIOD_US = 60000000  # the default config's period_s
LATCH_OFFSET_MS = 30000  # where in each minute the period latch falls (sparse hours)
DENSE_HOURS = (11, 8, 13, 17, 10, 15, 9)  # the 5 Hz hour of day d: DENSE_HOURS[d % 7]
# EMI bursts in the 5 Hz hour: (minute, ms after the latch of that minute, duration ms)
EMI_BURSTS = ((4, 100, 20), (9, 5030, 40), (14, 12000, 60), (19, 20180, 80), (24, 33000, 120),
              (29, -10, 250), (39, 40060, 250), (49, -20, 120))
EMI_FAIL_RATE = 0.67
# Module reboots, in the 5 Hz hour too: this long before the latch of minute 44 (cycled by day; the
# latch is refused while booting or finds no window since boot: a stale latch), and every third
# day one this long after the latch of minute 52 (in the middle of a period).
PRE_LATCH_REBOOT = (44, (30, 120, 5))
MID_PERIOD_REBOOT = (52, 17000)
OUTAGES = ((18, 5), (2, 3), (6, 9), (20, 2))  # every second day: (start hour, hours), cycled
RUNTIME_NAME = "mpy32: MicroPython 1.25 unix port, 32-bit, single-precision float"
SERIES = (("0x50", "import", 0, "UI2 ch0 (house) import"),
          ("0x50", "export", 1, "UI2 ch1 (PV) export"),
          ("0x51", "import", 0, "UI1 ch0 (house) import"))
TARGET = 0.0001  # 0.01 %


# ---------------------------------------------------------------------------------------------
# The simulation (MicroPython; also runs under CPython for debugging)

def fault_schedule(days):
    """Per day: the 5 Hz hour, the faults of its periods and the publish outage (start s, end s) or
    None. ``faults`` maps a period of the 5 Hz hour (1 = the first latch of ``period_loop``) to
    (kind, ms relative to that period's latch, duration ms): kind "emi" or "reboot"."""
    plan = []
    for day in range(days):
        faults = {}
        for minute, after_ms, duration_ms in EMI_BURSTS:
            faults.setdefault(minute, []).append(("emi", after_ms, duration_ms))
        minute, offsets = PRE_LATCH_REBOOT
        faults.setdefault(minute, []).append(("reboot", -offsets[day % len(offsets)], 0))
        if day % 3 == 0:
            minute, after_ms = MID_PERIOD_REBOOT
            faults.setdefault(minute, []).append(("reboot", after_ms, 0))
        outage = None
        if day % 2 == 0:
            start_h, hours = OUTAGES[(day // 2) % len(OUTAGES)]
            outage = (day * DAY_S + start_h * HOUR_S, day * DAY_S + (start_h + hours) * HOUR_S)
        plan.append({"dense_hour": DENSE_HOURS[day % len(DENSE_HOURS)], "faults": faults, "outage": outage})
    return plan


class _QuietLog:
    """The gateway's logger interface, counting lines per level (stdout carries the results)."""

    def __init__(self):
        self.counts = {}

    def _count(self, level):
        self.counts[level] = self.counts.get(level, 0) + 1

    def debug(self, fmt, *args):
        self._count("debug")

    def info(self, fmt, *args):
        self._count("info")

    def warning(self, fmt, *args):
        self._count("warning")

    def error(self, fmt, *args):
        self._count("error")


class _BenchBoard:
    """What ``Gateway`` asks of a board for metering: the clock, the bus, DRDY and the journal."""

    name = "bench"
    config_path = "config.json"  # only named in the log: the config comes in as a LoadResult
    last_good_path = "config.last_good.json"

    def __init__(self, clock, bus, drdy, flash):
        self.clock = clock
        self._bus = bus
        self._drdy = drdy
        self._flash = flash

    def i2c(self, cfg):
        return self._bus

    def drdy_pin(self, cfg):
        return self._drdy

    def journal_device(self):
        return self._flash

    def path(self, name):
        return None  # no files beside the journal: no day totals (gateway.services)

    def web_address(self, cfg):
        return None  # no network: no web page


class _SubscriberLink:
    """The MQTT link as a subscriber sees it: retained totals delivered at once while the broker is
    reachable; during an outage only the latest totals are kept and sent on reconnect."""

    def __init__(self):
        self.down = False
        self.received = None  # the encoded totals the subscriber holds
        self.received_truth = None  # ground truth (uWh per series) when those totals were built
        self._pending = None
        self._pending_truth = None
        self.truth_now = None  # set by the benchmark before each period record is published
        self.published = 0
        self.delivered = 0

    def publish_period(self, record):
        pass  # period records are the backlog's business, not the totals'

    def publish_state(self, payload):
        pass

    def publish_totals(self, payload):
        from gateway.payloads import encode_json as _encode_json

        self.published += 1
        encoded = _encode_json(payload)
        if self.down:
            self._pending = encoded
            self._pending_truth = self.truth_now
        else:
            self._deliver(encoded, self.truth_now)

    def _deliver(self, encoded, truth):
        self.received = encoded
        self.received_truth = truth
        self.delivered += 1

    def set_down(self, down):
        if self.down and not down and self._pending is not None:
            self._deliver(self._pending, self._pending_truth)
            self._pending = None
        self.down = down


def _wall_ms(time):
    """Host milliseconds for the run time (wraps after days on mpy32; a run takes minutes)."""
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.time() * 1000)


def _truth_uwh(sims):
    """Ground truth in micro-watt-hours, in SERIES order."""
    by_addr = {}
    for sim in sims:
        by_addr["0x%02x" % sim.addr] = sim
    out = []
    for key, kind, ch, _ in SERIES:
        truth = by_addr[key].truth
        out.append(truth.import_uwh(ch) if kind == "import" else truth.export_uwh(ch))
    return out


def simulate(days, emit):
    import asyncio
    import time

    from gateway.app import Gateway
    from gateway.commit_policy import DEFAULT_HEADROOM, CommitPolicy
    from gateway.config import LoadResult, parse_config
    from gateway.metering import Metering
    from norflash import NorFlash
    from rbampsim import SimI2C, SimModule, VirtualClock, loads

    started_ms = _wall_ms(time)
    config = parse_config({"mqtt": {"host": "broker.invalid"},
                           "modules": [{"address": 0x50, "label": "house+pv"},
                                       {"address": 0x51, "label": "workshop"}]})
    clock = VirtualClock()
    sims = [SimModule("UI2", 0x04, addr=0x50, clock=clock, seed=11,
                      load=loads.Household(seed=5, start_hour=0.0)),
            SimModule("UI1", 0x04, addr=0x51, clock=clock, seed=12,
                      load=loads.Household(seed=9, start_hour=0.0))]
    for sim in sims:
        sim.faults.ghost = True  # the ESP32 quirk: stale buffer bytes after every NACK
    bus = SimI2C(sims, clock=clock)
    clock.advance_ms(300)
    flash = NorFlash(block_size=4096, block_count=16)
    log = _QuietLog()
    gateway = Gateway(_BenchBoard(clock, bus, sims[0].drdy, flash), LoadResult(config, True, None, "file", False), log)
    store, state = gateway._open_journal()
    modules = gateway._make_modules(state)
    step = max(1, int(config["commit"]["growth_wh"] * 1000))
    policy = CommitPolicy(1, step=step, headroom=min(DEFAULT_HEADROOM, step // 2),
                          interval_ms=config["commit"]["interval_s"] * 1000, clock=clock)
    link = _SubscriberLink()

    def on_period(record):
        link.truth_now = _truth_uwh(sims)
        gateway._on_period(record)

    metering = Metering(modules, clock, log, config["period_s"], store=store, policy=policy,
                        on_period=on_period, mains_loss_v=config["mains_loss"]["voltage_v"],
                        journal_hold="starting")
    gateway.metering = metering
    gateway.store = store
    metering.start()
    gateway._apply_layout(state)
    gateway.link = link
    gateway._seeded = True  # an empty broker: nothing retained to seed from
    drdy = sims[0].drdy
    handler = drdy._handler
    plan = fault_schedule(days)
    counts = {"emi_bursts": 0, "reboots_scheduled": 0, "outages": 0, "dense_hours": 0, "sparse_samples": 0}
    dense = {"faults": None, "period": 0}
    real_period_once = metering.period_once

    def inject(faults, latch_us):
        for kind, offset_ms, duration_ms in faults:
            at_us = latch_us + offset_ms * 1000
            if kind == "emi":
                for sim in sims:
                    sim.faults.add_emi_burst(at_us, duration_ms * 1000, EMI_FAIL_RATE)
                counts["emi_bursts"] += 1
            else:
                sims[0].reboot_at(at_us)
                counts["reboots_scheduled"] += 1

    async def period_once_in_dense_hour():
        # period_loop latches every 60 s from its start: at this latch, plan the next period's faults
        if dense["faults"] is not None:
            dense["period"] += 1
            inject(dense["faults"].get(dense["period"] + 1, ()), clock.now_us() + PERIOD_US)
        return await real_period_once()

    metering.period_once = period_once_in_dense_hour  # what period_loop calls

    def until_us(target_us):
        now = clock.now_us()
        if target_us > now:
            clock.advance_us(target_us - now)

    async def sparse_minute(minute_start_us):
        # Two samples a minute: one at the minute boundary (the load's step) and one at the latch,
        # so the published export is as current as with the 5 Hz sampler.
        until_us(minute_start_us + 1000)
        metering.sample_once()
        until_us(minute_start_us + LATCH_OFFSET_MS * 1000)
        metering.sample_once()
        counts["sparse_samples"] += 2
        await real_period_once()
        if store.needs_prepare:
            store.prepare()  # what journal_upkeep does when idle

    async def dense_hour(hour_start_us, faults):
        """The real tasks from just after this hour's first latch to the end of the hour."""
        drdy.irq(handler=handler, trigger=drdy.IRQ_FALLING, hard=True)
        dense["faults"] = faults
        dense["period"] = 0
        inject(faults.get(1, ()), clock.now_us() + PERIOD_US)
        tasks = [asyncio.create_task(metering.sampler()), asyncio.create_task(metering.period_loop()),
                 asyncio.create_task(metering.journal_upkeep())]
        await clock.asleep_ms((hour_start_us + HOUR_S * 1000000 - clock.now_us()) // 1000)
        for task in tasks:
            task.cancel()
        await asyncio.sleep(0)
        dense["faults"] = None
        drdy.irq(handler=None)  # the simulator then computes windows lazily, minutes at a time
        for sim in sims:
            sim.faults.bursts = []
        counts["dense_hours"] += 1

    def record(hour):
        until_us(hour * HOUR_S * 1000000)
        emit("H", {"hour": hour, "t_s": clock.now_us() // 1000000, "outage": link.down,
                   "received": link.received.decode() if link.received else None,
                   "received_truth": link.received_truth, "truth": _truth_uwh(sims)})

    async def run():
        drdy.irq(handler=None)
        for day_index in range(days):
            day = plan[day_index]
            for hour_of_day in range(24):
                hour = day_index * 24 + hour_of_day
                hour_start_us = hour * HOUR_S * 1000000
                outage = day["outage"]
                down = outage is not None and outage[0] <= hour * HOUR_S < outage[1]
                if down and not link.down:
                    counts["outages"] += 1
                link.set_down(down)
                if hour:
                    record(hour)
                if hour == 0:
                    await sparse_minute(0)
                    # the reference point: the first totals a subscriber received
                    emit("B", {"received": link.received.decode(), "received_truth": link.received_truth})
                    for minute in range(1, 60):
                        await sparse_minute(minute * MINUTE_US)
                elif hour_of_day == day["dense_hour"]:
                    await sparse_minute(hour_start_us)
                    await dense_hour(hour_start_us, day["faults"])
                else:
                    for minute in range(60):
                        await sparse_minute(hour_start_us + minute * MINUTE_US)
        link.set_down(False)
        until_us(days * DAY_S * 1000000)
        record(days * 24)

    asyncio.run(run())
    ended_ms = _wall_ms(time)
    modules_out = {}
    for module in modules:
        modules_out[module.key] = {"stats": module.dev.stats.to_dict(), "failures": module.failures,
                                   "transient_errors": module.transient_errors,
                                   "refilled_mwh": module.ledger.refilled_mwh}
    sims_out = {}
    for sim in sims:
        sims_out["0x%02x" % sim.addr] = {"boots": sim.boots, "injected_nacks": sim.faults.injected_nacks,
                                         "ghost_reads": sim.faults.ghost_reads}
    emit("S", {"days": days, "modules": modules_out, "sims": sims_out,
               "counts": counts, "log": log.counts, "periods": metering.periods, "samples": metering.samples,
               "commits": metering.commits, "commit_errors": metering.commit_errors,
               "published": link.published, "delivered": link.delivered,
               "run_ms": ended_ms - started_ms, "platform": sys.platform,
               "implementation": sys.implementation.name})


def _emit_line(kind, payload):
    import json

    print(kind + " " + json.dumps(payload))


def _simulate_main(argv):
    days = DAYS
    if "--days" in argv:
        days = int(argv[argv.index("--days") + 1])
    simulate(days, _emit_line)
    return 0


# ---------------------------------------------------------------------------------------------
# The host side (CPython): run the simulation on mpy32, compare, plot, report

MIN_WH = 1.0  # below this a relative error means nothing (the first minutes of a series)


class BenchError(Exception):
    """A problem the user can fix (no interpreter, a failed run): one line, exit status 2."""


def find_mpy32(explicit=None):
    import os

    path = explicit or os.environ.get("XRT_MPY32") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "mpy32", "micropython-32-plain")
    if not os.access(path, os.X_OK):
        raise BenchError("no mpy32 interpreter at %s (run `make deps`, or pass --mpy32 PATH)" % path)
    return path


def run_simulation(binary, days):
    """Run the simulation under ``binary``; returns (parsed lines, wall seconds)."""
    import json
    import os
    import subprocess
    import time

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    # MICROPYPATH replaces sys.path: keep .frozen (asyncio) in it
    env["MICROPYPATH"] = os.pathsep.join([".frozen", os.path.join(os.path.dirname(here), "lib"), here])
    started = time.monotonic()
    proc = subprocess.run([binary, os.path.abspath(__file__), "--simulate", "--days", str(days)],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    wall_s = time.monotonic() - started
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError("the simulation under %s failed (exit %d): %s" % (binary, proc.returncode, last))
    lines = []
    for line in proc.stdout.splitlines():
        kind, _, payload = line.partition(" ")
        if kind in ("B", "H", "S"):
            lines.append((kind, json.loads(payload)))
    return lines, wall_s


def _published_wh(encoded):
    import json

    totals = json.loads(encoded)
    return [totals[key][kind + "_wh"][ch] for key, kind, ch, _ in SERIES]


def analyse(lines):
    """Errors and lags per record, and the summary figures."""
    base = [payload for kind, payload in lines if kind == "B"][0]
    summary = [payload for kind, payload in lines if kind == "S"][0]
    base_pub = _published_wh(base["received"])
    base_truth = base["received_truth"]
    records = []
    for kind, h in lines:
        if kind != "H":
            continue
        pub = _published_wh(h["received"])
        rec = {"t_days": h["t_s"] / 86400, "outage": h["outage"], "energy_wh": [], "published_wh": [],
               "error": [], "lag_wh": []}
        for i in range(len(SERIES)):
            truth_wh = (h["received_truth"][i] - base_truth[i]) / 1e6
            published = pub[i] - base_pub[i]
            rec["energy_wh"].append(truth_wh)
            rec["published_wh"].append(published)
            rec["error"].append((published - truth_wh) / truth_wh if truth_wh >= MIN_WH else None)
            rec["lag_wh"].append((h["truth"][i] - h["received_truth"][i]) / 1e6)
        records.append(rec)
    final = records[-1]
    figures = {"final_error": final["error"], "final_energy_wh": final["energy_wh"],
               "final_published_wh": final["published_wh"], "max_abs_error": [], "max_lag_outage_wh": [],
               "max_lag_online_wh": []}
    for i in range(len(SERIES)):
        errors = [abs(r["error"][i]) for r in records if r["error"][i] is not None]
        figures["max_abs_error"].append(max(errors) if errors else None)
        figures["max_lag_outage_wh"].append(max([r["lag_wh"][i] for r in records if r["outage"]] or [0.0]))
        figures["max_lag_online_wh"].append(max([r["lag_wh"][i] for r in records if not r["outage"]] or [0.0]))
    return records, figures, summary


def plot(records, days, path):
    """Error (%) and subscriber lag (Wh) over time; outages shaded."""
    import os

    from benchreport import pyplot

    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    t = [r["t_days"] for r in records]
    for i, (_, _, _, label) in enumerate(SERIES):
        top.plot(t, [100 * r["error"][i] if r["error"][i] is not None else float("nan") for r in records],
                 label=label, linewidth=1)
        bottom.plot(t, [r["lag_wh"][i] for r in records], label=label, linewidth=1)
    top.axhline(100 * TARGET, color="red", linestyle="--", linewidth=0.8, label="target +-0.01 %")
    top.axhline(-100 * TARGET, color="red", linestyle="--", linewidth=0.8)
    for r in records:
        if r["outage"]:
            for ax in (top, bottom):
                ax.axvspan(r["t_days"], r["t_days"] + 1 / 24, color="0.85", linewidth=0)
    top.set_ylabel("published - ground truth (%)")
    top.set_title("Energy totals a subscriber receives vs the simulator's ground truth\n"
                  "%d simulated days on %s" % (days, RUNTIME_NAME), fontsize=10)
    top.legend(fontsize=8, loc="best")
    bottom.set_ylabel("subscriber behind the meter (Wh)")
    bottom.set_xlabel("simulated day (grey: publish outage)")
    top.grid(True, linewidth=0.3)
    bottom.grid(True, linewidth=0.3)
    fig.tight_layout()
    directory, name = os.path.split(os.path.abspath(path))
    from benchreport import save_plot

    return save_plot(fig, name[:-4] if name.endswith(".png") else name, directory=directory)


def _pct(value):
    return "-" if value is None else "%+.5f %%" % (100 * value)


def report(figures, summary, days, wall_s, plot_link):
    """The Markdown for BENCHMARKS.md."""
    lines = []
    add = lines.append
    plan = fault_schedule(days)
    stats = summary["modules"]
    sims = summary["sims"]
    counts = summary["counts"]

    def total(field):
        return sum(stats[key]["stats"][field] for key in stats)

    add("Measured with `make bench-energy` (`python tools/bench_energy.py --write`) on %s: %d simulated "
        "days in %.0f s of host time (x86-64), %d periods, %d commits, %d RT samples." % (
            RUNTIME_NAME, days, wall_s, summary["periods"], summary["commits"], summary["samples"]))
    add("")
    add("| series | energy (ground truth) | published | final error | max abs error, whole run "
        "| max lag during outages | max lag otherwise |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for i, (_, _, _, label) in enumerate(SERIES):
        add("| %s | %.3f kWh | %.3f kWh | %s | %s | %.1f Wh | %.1f Wh |" % (
            label, figures["final_energy_wh"][i] / 1000, figures["final_published_wh"][i] / 1000,
            _pct(figures["final_error"][i]), _pct(figures["max_abs_error"][i]),
            figures["max_lag_outage_wh"][i], figures["max_lag_online_wh"][i]))
    add("")
    add("Target: final error < 0.01 % on every series. Error: the totals a subscriber last received "
        "(JSON as the MQTT link encodes it, float Wh) minus the ground truth at the instant those "
        "totals were built, counted from the first totals published; sampled every simulated hour. "
        "Lag: the ground truth now minus the ground truth when the subscriber's totals were built "
        "(how far a subscriber is behind; during an outage it grows by construction, after it the "
        "totals catch up at once).")
    add("")
    add("| fault | injected | seen and handled by the gateway |")
    add("|---|---|---|")
    add("| EMI bursts (2/3 of transactions fail) | %d bursts, %d NACKs | %d bus errors, %d retries; %d "
        "samples or periods failed after the retries and were made up by the next one; %d times a "
        "module counted as unreachable |" % (
            counts["emi_bursts"], sum(s["injected_nacks"] for s in sims.values()), total("bus_errors"),
            total("retries"), sum(stats[key]["transient_errors"] for key in stats),
            sum(stats[key]["failures"] for key in stats)))
    add("| ESP32 ghost bytes after a NACK | %d ghost reads | %d rejected values, %d ghosts caught by the "
        "sanity filter (the rest absorbed by the throw-away read before each retry) |" % (
            sum(s["ghost_reads"] for s in sims.values()), total("rejected"), total("ghosts")))
    add("| module reboots | %d | %d detected; %.1f Wh the module lost with its period in progress "
        "put back from the gateway's own RT samples |" % (
            sum(s["boots"] - 1 for s in sims.values()), total("reboots"),
            sum(stats[key]["refilled_mwh"] for key in stats) / 1000))
    add("| stale latches (a latch refused while booting or with no window since boot) | from the "
        "pre-latch reboots | %d, the next period starting where the module's accumulation did |"
        % total("stale"))
    add("| publish outages | %d (%d h in all) | %d totals published, %d delivered (the rest replaced "
        "by newer totals while the broker was away) |" % (
            counts["outages"], sum((d["outage"][1] - d["outage"][0]) // HOUR_S for d in plan if d["outage"]),
            summary["published"], summary["delivered"]))
    add("")
    add("Modules: a UI2 (ch0 a house circuit, ch1 a 2.5 kW PV inverter that exports around midday) and "
        "a UI1 (another house circuit), both protocol v1.3, `loads.Household` (power changes once a "
        "minute), default `config.json` settings (60 s periods, commit every 5 Wh or 60 s). Rates: the "
        "period latch (import), journal commits and publishing every 60 s for all %d days; the "
        "gateway's real tasks (DRDY-paced 5 Hz sampler, period loop, journal upkeep every second) "
        "one hour a day, a different hour each day; the other hours sample RT power (export) twice "
        "a minute, at the minute boundary and at the latch, which integrates the same energy as 5 Hz "
        "for a load that changes once a minute." % days)
    add("")
    add("Fault schedule, all in the day's 5 Hz hour except the outages: EMI bursts of %s ms on "
        "both modules (some on a latch); a reboot of the UI2 %s ms (cycled by day) before the latch "
        "of minute %d, which makes that latch stale (refused while the module boots, or no window "
        "since boot) unless the latch comes a little late; every third day another reboot %d s "
        "after the latch of minute %d, in the "
        "middle of a period. Every second day a publish outage (%s, cycled)." % (
            "/".join(str(d) for _, _, d in EMI_BURSTS), "/".join(str(x) for x in PRE_LATCH_REBOOT[1]),
            PRE_LATCH_REBOOT[0], MID_PERIOD_REBOOT[1] // 1000, MID_PERIOD_REBOOT[0],
            ", ".join("%02d:00 for %d h" % o for o in OUTAGES)))
    add("")
    if plot_link:
        add("![energy error over time](%s)" % plot_link)
    return "\n".join(lines)


def main(argv):
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Energy-accuracy benchmark on mpy32 (see the module docstring).")
    parser.add_argument("--days", type=int, default=DAYS, help="simulated days (default %d)" % DAYS)
    parser.add_argument("--write", action="store_true", help="replace the energy section of BENCHMARKS.md")
    parser.add_argument("--plot", default=None, help="PNG path (default docs/bench/energy_error.png)")
    parser.add_argument("--no-plot", action="store_true", help="no PNG (matplotlib not needed)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--mpy32", default=None, help="the 32-bit MicroPython interpreter")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= 366:
        raise BenchError("--days must be 1..366, got %d" % args.days)
    if args.write and args.no_plot:
        raise BenchError("--write links the plot: drop --no-plot")
    binary = find_mpy32(args.mpy32)
    lines, wall_s = run_simulation(binary, args.days)
    records, figures, summary = analyse(lines)
    plot_link = None
    if not args.no_plot:
        import os

        from benchreport import PLOTS

        plot_link = plot(records, args.days, args.plot or os.path.join(PLOTS, "energy_error.png"))
    section = report(figures, summary, args.days, wall_s, plot_link)
    if args.json:
        print(json.dumps({"figures": figures, "summary": summary, "wall_s": wall_s, "plot": plot_link}))
    else:
        print(section)
    if args.write:
        from benchreport import replace_section

        replace_section("energy", section)
        print("\nBENCHMARKS.md updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if "--simulate" in sys.argv:
        for _path in (_REPO + "/lib", _HERE):
            if _path not in sys.path:
                sys.path.append(_path)
        sys.exit(_simulate_main(sys.argv[1:]))
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as exc:
        print("bench_energy: %s" % exc, file=sys.stderr)
        sys.exit(2)
