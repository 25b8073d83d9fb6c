"""Commands that meter over time: ``watch`` (5 Hz live view), ``period`` (latched periods), ``fleet``.

Every wait goes through the session's clock: real time on hardware and by default on the
simulator, instant with ``--sim-clock virtual``. Deadlines are kept on an absolute schedule from
the start, so the time spent on the bus does not stretch the periods.
"""

from rbamp_cli.errors import CliError, UsageError
from rbamp_cli.output import hex_addr, numbers, progress_bar, rounded

WINDOW_MS = 200  # the module commits an RT window every 200 ms (5 Hz)
LATCH_SETTLE_MS = 50  # the driver waits this long after a latch before reading the snapshot
_PROGRESS_STEP_MS = 1000


class Stopwatch:
    """Milliseconds since start from tick differences, so it never wraps (ticks wrap at 2**30)."""

    def __init__(self, clock, since_ms=None):
        self.clock = clock
        self._last = clock.ticks_ms() if since_ms is None else since_ms
        self._elapsed = 0

    def ms(self):
        now = self.clock.ticks_ms()
        self._elapsed += self.clock.ticks_diff(now, self._last)
        self._last = now
        return self._elapsed

    def wait_until(self, due_ms, on_progress=None):
        """Sleep until ``due_ms`` after start, calling ``on_progress(left_ms)`` about once a second."""
        while True:
            left = due_ms - self.ms()
            if left <= 0:
                return
            if on_progress is not None:
                on_progress(left)
            self.clock.sleep_ms(min(left, _PROGRESS_STEP_MS))


def _truth_since(session, addr, start):
    """(import Wh per channel, export Wh per channel) from the simulator since ``start``, or None."""
    module = session.sim_module(addr)
    if module is None or start is None or not module.has_voltage:
        return None  # a current-only module measures no power: there is no energy to compare
    truth = module.truth
    return ([truth.import_wh_since(start, ch) for ch in range(module.channels)],
            [truth.export_wh_since(start, ch) for ch in range(module.channels)])


def _truth_start(session, addr):
    module = session.sim_module(addr)
    return module.truth.snapshot() if module is not None else None


def _wh(values, digits=4):
    return [rounded(v, digits) for v in values]


# ---------------------------------------------------------------------------------------- watch
def run_watch(args, out, session):
    if session.virtual and args.count is None and args.duration is None:
        raise UsageError("watch with --sim-clock virtual needs --count or --duration (it would never end)")
    dev = session.open_device(args.addr)
    channels = range(dev.channels)
    energy = dev.energy
    truth_start = _truth_start(session, args.addr)
    watch = Stopwatch(session.clock)
    dev.sample_bidirectional()  # the first sample only starts the integration
    samples = 0
    elapsed = 0
    truth = None
    try:
        while True:
            watch.wait_until((samples + 1) * WINDOW_MS)
            snap = dev.sample_bidirectional()
            samples += 1
            elapsed = watch.ms()
            # the truth up to this sample, not up to a Ctrl-C that comes later
            truth = _truth_since(session, args.addr, truth_start)
            imported = [energy.import_wh(ch) for ch in channels]
            exported = [energy.export_wh(ch) for ch in channels]
            power = [snap.power[ch] for ch in channels]
            if out.as_json:
                out.record({"t_s": rounded(elapsed / 1000, 3), "voltage": rounded(snap.voltage, 2),
                            "power": _wh(power, 2), "import_wh": _wh(imported), "export_wh": _wh(exported)})
            else:
                out.redraw("%7.1f s  %6.1f V  P %s W  import %s Wh  export %s Wh" % (
                    elapsed / 1000, snap.voltage, numbers(power), numbers(imported, "%.4f"),
                    numbers(exported, "%.4f")))
            if args.count is not None and samples >= args.count:
                break
            if args.duration is not None and elapsed >= args.duration * 1000:
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live view ends: the summary below still counts
    if not out.as_json:
        out.end_redraw()
    imported = [energy.import_wh(ch) for ch in channels]
    exported = [energy.export_wh(ch) for ch in channels]
    summary = {"samples": samples, "seconds": rounded(elapsed / 1000, 3), "import_wh": _wh(imported),
               "export_wh": _wh(exported)}
    if truth is not None:
        summary["sim_truth_import_wh"] = _wh(truth[0])
        summary["sim_truth_export_wh"] = _wh(truth[1])
    if out.as_json:
        out.record({"summary": summary})
        return 0
    out.line("%d samples over %.1f s: import %s Wh, export %s Wh" % (
        samples, elapsed / 1000, numbers(imported, "%.4f"), numbers(exported, "%.4f")))
    if truth is not None:
        out.line("simulator truth: import %s Wh, export %s Wh" % (numbers(truth[0], "%.4f"),
                                                               numbers(truth[1], "%.4f")))
    return 0


# ---------------------------------------------------------------------------------------- period
def _progress_reporter(out, label, period_ms):
    def report(left_ms):
        done = period_ms - left_ms
        out.progress("%s %s %3d s left" % (label, progress_bar(done, period_ms), (left_ms + 999) // 1000),
                     (label, 4 * done // period_ms))
    return report


def run_period(args, out, session):
    from rbamp import RbAmpStaleError

    dev = session.open_device(args.addr)
    channels = range(dev.channels)
    every_ms = int(args.every * 1000)
    if every_ms < 4 * WINDOW_MS:
        raise UsageError("--every must be at least 0.8 s (a period holds whole 200 ms windows)")
    truth_start = _truth_start(session, args.addr)
    # begin() latched once to start the sequence: latches follow every_ms apart from that one
    watch = Stopwatch(session.clock, since_ms=dev.last_latch_ms)
    stale = 0
    for index in range(1, args.count + 1):
        label = "period %d/%d" % (index, args.count)
        watch.wait_until(index * every_ms, _progress_reporter(out, label, every_ms))
        try:
            p = dev.read_period_snapshot()
        except RbAmpStaleError as exc:
            stale += 1
            if out.as_json:
                out.record({"period": index, "of": args.count, "valid": False, "reason": str(exc)})
            else:
                out.line("%s  stale: %s (no energy lost: the next period covers it)" % (label, exc))
            continue
        avg = [p.avg_p[ch] for ch in channels]
        energy = [p.energy_wh(ch) for ch in channels]
        total = [dev.energy.wh(ch) for ch in channels]
        truth = _truth_since(session, args.addr, truth_start)
        if out.as_json:
            record = {"period": index, "of": args.count, "valid": True, "dt_ms": p.dt_ms,
                      "windows": p.commit_count, "avg_p": _wh(avg, 2), "max_p": rounded(p.max_p, 2),
                      "energy_wh": _wh(energy), "total_wh": _wh(total), "rebooted": p.rebooted}
            if truth is not None:
                record["sim_truth_wh"] = _wh(truth[0])
            out.record(record)
        else:
            out.line("%s  %.2f s  avg P %s W  energy %s Wh  total %s Wh%s" % (
                label, p.dt_ms / 1000, numbers(avg), numbers(energy, "%.4f"), numbers(total, "%.4f"),
                "  (module rebooted)" if p.rebooted else ""))
    total = [dev.energy.wh(ch) for ch in channels]
    truth = _truth_since(session, args.addr, truth_start)
    summary = {"periods": args.count, "stale": stale, "seconds": rounded(watch.ms() / 1000, 3),
               "total_wh": _wh(total)}
    if truth is not None:
        summary["sim_truth_wh"] = _wh(truth[0])
    if out.as_json:
        out.record({"summary": summary})
        return 0
    out.line("%d period(s), %d stale: consumption %s Wh" % (args.count, stale, numbers(total, "%.4f")))
    if truth is not None:
        out.line("simulator truth: consumption %s Wh" % numbers(truth[0], "%.4f"))
    return 0


# ---------------------------------------------------------------------------------------- fleet
def run_fleet(args, out, session):
    from rbamp import RbAmpFleet

    fleet = RbAmpFleet(session.bus, clock=session.clock)
    modules = fleet.scan()
    if not modules:
        raise CliError("no rbAmp module found on %s" % session.description)
    truth_starts = {dev.address: _truth_start(session, dev.address) for dev in modules}
    if not out.as_json:
        out.line("fleet: %s" % ", ".join("%s %s" % (hex_addr(d.address), d.variant) for d in modules))
    every_ms = int(args.every * 1000)
    if every_ms < 4 * WINDOW_MS:
        raise UsageError("--every must be at least 0.8 s (a period holds whole 200 ms windows)")
    watch = Stopwatch(session.clock)
    for index in range(1, args.count + 1):
        label = "latch %d/%d" % (index, args.count)
        watch.wait_until(index * every_ms - LATCH_SETTLE_MS, _progress_reporter(out, label, every_ms))
        results = fleet.read_periods(use_general_call=args.general_call, group=args.group)
        report = {}
        rows = []
        for dev in modules:
            p = results.get(dev.address)
            channels = range(dev.channels)
            if p is None or isinstance(p, Exception):
                report[hex_addr(dev.address)] = {"error": str(p)}
                rows.append([hex_addr(dev.address), dev.variant, "error: %s" % p, "", ""])
                continue
            entry = {"variant": dev.variant, "dt_ms": p.dt_ms, "avg_p": _wh([p.avg_p[ch] for ch in channels], 2),
                     "energy_wh": _wh([p.energy_wh(ch) for ch in channels]),
                     "total_wh": _wh([dev.energy.wh(ch) for ch in channels])}
            truth = _truth_since(session, dev.address, truth_starts[dev.address])
            if truth is not None:
                entry["sim_truth_wh"] = _wh(truth[0])
            report[hex_addr(dev.address)] = entry
            rows.append([hex_addr(dev.address), dev.variant, numbers(entry["avg_p"]),
                         numbers(entry["energy_wh"], "%.4f"), numbers(entry["total_wh"], "%.4f")])
        total_power = fleet.total_power()
        total_energy = fleet.total_energy_wh()
        truth_total = None
        if session.is_sim:
            truth_total = sum(sum(entry.get("sim_truth_wh", [])) for entry in report.values())
        if out.as_json:
            record = {"latch": index, "of": args.count, "general_call": args.general_call, "modules": report,
                      "total_power_w": rounded(total_power, 2), "total_energy_wh": rounded(total_energy, 4)}
            if truth_total is not None:
                record["sim_truth_energy_wh"] = rounded(truth_total, 4)
            out.record(record)
            continue
        out.line("%s  (%s)" % (label, "General Call" if args.general_call else "one by one, shared settle"))
        out.table(["address", "variant", "avg P W", "period Wh", "total Wh"], rows)
        out.line("fleet: %d module(s), power now %.1f W, consumption %.4f Wh%s" % (
            len(modules), total_power, total_energy,
            "" if truth_total is None else " (simulator truth %.4f Wh)" % truth_total))
    return 0
