"""Commands that meter over time: ``watch`` (5 Hz live view), ``period`` (latched periods), ``fleet``.

Every wait goes through the session's clock: real time on hardware and by default on the
simulator, instant with ``--sim-clock virtual``. Deadlines are kept on an absolute schedule from
the start, so the time spent on the bus does not stretch the periods.
"""

from rbamp_cli.errors import CliError, UsageError
from rbamp_cli.output import hex_addr, numbers, progress_bar, rounded

EXIT_INTERRUPTED = 130  # as a shell reports a program ended by Ctrl-C (SIGINT)
WINDOW_MS = 200  # the module commits an RT window every 200 ms (5 Hz)
# after the scan: the module identified last gets a whole window before the fleet's first latch
# (a v1.2 module latched without one restarts its window and reports nothing)
START_WAIT_MS = 2 * WINDOW_MS
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
    done = 0
    seconds = 0
    # the truth up to the last latched period, not up to a Ctrl-C in the middle of the next one
    truth = _truth_since(session, args.addr, truth_start)
    interrupted = False
    try:
        for index in range(1, args.count + 1):
            label = "period %d/%d" % (index, args.count)
            watch.wait_until(index * every_ms, _progress_reporter(out, label, every_ms))
            try:
                p = dev.read_period_snapshot()
            except RbAmpStaleError as exc:
                stale += 1
                done = index
                if out.as_json:
                    out.record({"period": index, "of": args.count, "valid": False, "reason": str(exc)})
                else:
                    out.line("%s  stale: %s (no energy lost: the next period covers it)" % (label, exc))
                continue
            done = index
            seconds = watch.ms()
            truth = _truth_since(session, args.addr, truth_start)
            _print_period(out, index, args.count, label, p, dev, truth)
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C: the periods latched so far still make a summary
        out.end_progress()
    total = [dev.energy.wh(ch) for ch in channels]
    summary = {"periods": done, "of": args.count, "stale": stale, "seconds": rounded(seconds / 1000, 3),
               "total_wh": _wh(total), "interrupted": interrupted}
    if truth is not None:
        summary["sim_truth_wh"] = _wh(truth[0])
    if out.as_json:
        out.record({"summary": summary})
    else:
        out.line("%s%d period(s), %d stale: consumption %s Wh" % (
            "interrupted after %d of %d: " % (done, args.count) if interrupted else "", done, stale,
            numbers(total, "%.4f")))
        if truth is not None:
            out.line("simulator truth: consumption %s Wh" % numbers(truth[0], "%.4f"))
    return EXIT_INTERRUPTED if interrupted else 0


def _print_period(out, index, count, label, p, dev, truth):
    channels = range(dev.channels)
    avg = [p.avg_p[ch] for ch in channels]
    energy = [p.energy_wh(ch) for ch in channels]
    total = [dev.energy.wh(ch) for ch in channels]
    if out.as_json:
        record = {"period": index, "of": count, "valid": True, "dt_ms": p.dt_ms,
                  "windows": p.commit_count, "avg_p": _wh(avg, 2), "max_p": rounded(p.max_p, 2),
                  "energy_wh": _wh(energy), "total_wh": _wh(total), "rebooted": p.rebooted}
        if truth is not None:
            record["sim_truth_wh"] = _wh(truth[0])
        out.record(record)
    else:
        out.line("%s  %.2f s  avg P %s W  energy %s Wh  total %s Wh%s" % (
            label, p.dt_ms / 1000, numbers(avg), numbers(energy, "%.4f"), numbers(total, "%.4f"),
            "  (module rebooted)" if p.rebooted else ""))


# ---------------------------------------------------------------------------------------- fleet
def run_fleet(args, out, session):
    from rbamp import RbAmpFleet

    fleet = RbAmpFleet(session.bus, clock=session.clock)
    modules = fleet.scan()
    if not modules:
        raise CliError("no rbAmp module found on %s" % session.description)
    if not out.as_json:
        out.line("fleet: %s" % ", ".join("%s %s" % (hex_addr(d.address), d.variant) for d in modules))
    every_ms = int(args.every * 1000)
    if every_ms < 4 * WINDOW_MS:
        raise UsageError("--every must be at least 0.8 s (a period holds whole 200 ms windows)")
    # The fleet's periods start with one latch of every module together. The modules' own first
    # latches (begin() during the scan) lie apart by the time each identification took, and the
    # simulator's truth taken after the scan and after each read ended up to a window away from
    # the latched energy (0.2 Wh at 4 kW): both the energy and the truth now count from a latch,
    # the truth read just before each one.
    session.clock.sleep_ms(START_WAIT_MS)
    watch = Stopwatch(session.clock)
    truth_starts = {dev.address: _truth_start(session, dev.address) for dev in modules}
    fleet.read_periods(use_general_call=args.general_call, group=args.group)
    baseline = {dev.address: [dev.energy.wh(ch) for ch in range(dev.channels)] for dev in modules}
    baseline_total = fleet.total_energy_wh()
    for index in range(1, args.count + 1):
        label = "latch %d/%d" % (index, args.count)
        watch.wait_until(index * every_ms, _progress_reporter(out, label, every_ms))
        truths = {dev.address: _truth_since(session, dev.address, truth_starts[dev.address]) for dev in modules}
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
                     "total_wh": _wh([dev.energy.wh(ch) - baseline[dev.address][ch] for ch in channels])}
            truth = truths[dev.address]
            if truth is not None:
                entry["sim_truth_wh"] = _wh(truth[0])
            report[hex_addr(dev.address)] = entry
            rows.append([hex_addr(dev.address), dev.variant, numbers(entry["avg_p"]),
                         numbers(entry["energy_wh"], "%.4f"), numbers(entry["total_wh"], "%.4f")])
        total_power = fleet.total_power()
        total_energy = fleet.total_energy_wh() - baseline_total
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
        out.line("fleet: %d module(s), power now %.1f W, consumption %.4f Wh since the first latch%s" % (
            len(modules), total_power, total_energy,
            "" if truth_total is None else " (simulator truth %.4f Wh)" % truth_total))
    return 0
