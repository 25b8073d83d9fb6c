"""Metering: DRDY-paced RT sampling, the period latch across modules, totals and commits.

Energy per channel, in integer milliwatt-hours:

- import: the module's latched period averages (its BASIC clamp counts consumption only), so a
  missed RT sample never costs energy;
- export: the master-side split of signed RT power sampled at the module's 5 Hz
  (``RbAmp.sample_bidirectional``).

The journal holds ``[ch import, ch export, ...]`` over every module's channels in config order.
Nothing here waits on the network: the publisher reads what this module produces.
"""

from rbamp import RbAmpError, RbAmpSnapshot, RbAmpStaleError

WINDOW_MS = 200
SETTLE_MS = 50
RETRY_UNREACHABLE_MS = 5000
# An EMI burst can outlast the driver's retries for a sample or a latch. Marking the module
# unreachable at once would make recover() re-prime it, throwing away the module's period in
# progress (measured by tools/bench_energy.py). A skipped sample is covered by the next one and a
# failed latch or period read by the next period, so only this many failures in a row count.
SAMPLE_FAILURES_UNREACHABLE = 3
PERIOD_FAILURES_UNREACHABLE = 2


class MeteredModule:
    def __init__(self, dev, address, label=None):
        self.dev = dev
        self.address = address
        self.key = "0x%02x" % address
        self.label = label
        self.status = "starting"
        self.error = None  # type: str | None
        self.snapshot = None
        self.channels = 0
        self.last_period = None
        self.retry_at_ms = 0
        self.failures = 0
        self.sample_failures = 0  # in a row
        self.period_failures = 0  # in a row
        self.transient_errors = 0  # failed samples and periods that did not make it unreachable
        # at the last good latch (or begin): the driver's reboot count, and per channel the
        # sampled RT import and the latched consumption, in mWh (see Metering._fill_reboot_gap)
        self.reboots_seen = 0
        self.sampled_mwh = None
        self.counted_mwh = None
        self.refilled_mwh = 0  # energy put back after module reboots, all channels

    @property
    def ready(self):
        return self.dev.version is not None and self.status != "unreachable"


class Metering:
    def __init__(self, modules, clock, log, period_s, store=None, policy=None):
        self.modules = modules
        self.clock = clock
        self.log = log
        self.period_ms = period_s * 1000
        self.store = store
        self.policy = policy
        self.samples = 0
        self.sample_wakeups = 0
        self.periods = 0
        self.period_seq = 0  # sequence number of the last period record (the backlog position)
        self.commits = 0
        self.commit_errors = 0
        self.on_period = None  # callback(record dict)
        self._pace = None
        for module in modules:
            if module.dev.version is not None:
                self._ready_module(module)

    # ------------------------------------------------------------------ module bookkeeping
    def _ready_module(self, module):
        module.channels = module.dev.channels
        if module.snapshot is None or module.snapshot.channels != module.channels:
            module.snapshot = RbAmpSnapshot(module.channels)
        module.status = "ok"
        module.error = None
        self._remember_latch(module)
        if self._pace is None and module.dev._drdy_flag is not None:
            self._pace = module.dev

    def _remember_latch(self, module):
        dev = module.dev
        module.reboots_seen = dev.stats.reboots
        module.sampled_mwh = [dev.energy.imported[ch].mwh() for ch in range(module.channels)]
        module.counted_mwh = [dev.energy.consumption[ch].mwh() for ch in range(module.channels)]

    def _fill_reboot_gap(self, module):
        """A module that rebooted lost what it had accumulated since our last good latch; the
        gateway's own 5 Hz RT samples measured that span too, so the consumption counter gets
        the part the module no longer reported (never less than the module's own figure)."""
        energy = module.dev.energy
        for ch in range(module.channels):
            sampled = energy.imported[ch].mwh() - module.sampled_mwh[ch]
            counted = energy.consumption[ch].mwh() - module.counted_mwh[ch]
            if sampled > counted:
                counter = energy.consumption[ch]
                counter.set_mwh(counter.mwh() + sampled - counted)
                module.refilled_mwh += sampled - counted
                self.log.info("module %s ch%d: %d mWh it lost in its reboot taken from our samples",
                              module.key, ch, sampled - counted)

    def channel_count(self):
        return sum(m.channels for m in self.modules)

    def totals(self):
        """``[import, export]`` mWh per channel of every module, in config order."""
        out = []
        for module in self.modules:
            energy = module.dev.energy
            for ch in range(module.channels):
                out.append(energy.consumption[ch].mwh())
                out.append(energy.exported[ch].mwh())
        return out

    def restore(self, totals):
        """Start the counters from the journal (or from seeded totals): never lower than these."""
        i = 0
        for module in self.modules:
            energy = module.dev.energy
            for ch in range(module.channels):
                if i + 1 < len(totals):
                    if totals[i] > energy.consumption[ch].mwh():
                        energy.consumption[ch].set_mwh(totals[i])
                    if totals[i + 1] > energy.exported[ch].mwh():
                        energy.exported[ch].set_mwh(totals[i + 1])
                i += 2
            if energy is not None:
                self._remember_latch(module)

    def _transient(self, module, exc, in_a_row, limit):
        """A failure that the next sample or period makes good, unless it keeps happening."""
        if in_a_row >= limit:
            self._fail(module, exc)
            return
        module.transient_errors += 1
        self.log.warning("module %s: %s (%d in a row; the next one makes up for it)", module.key, exc, in_a_row)

    def _fail(self, module, exc):
        module.sample_failures = 0
        module.period_failures = 0
        module.failures += 1
        module.error = str(exc)
        if module.status != "unreachable":
            self.log.warning("module %s unreachable: %s", module.key, exc)
        module.status = "unreachable"
        module.retry_at_ms = self.clock.ticks_add(self.clock.ticks_ms(), RETRY_UNREACHABLE_MS)

    def _due_for_retry(self, module):
        return self.clock.ticks_diff(self.clock.ticks_ms(), module.retry_at_ms) >= 0

    def recover(self, module):
        """Try to bring an unreachable (or never begun) module back."""
        if not self._due_for_retry(module):
            return False
        try:
            module.dev.begin()
        except RbAmpError as exc:
            self._fail(module, exc)
            return False
        self._ready_module(module)
        module.dev.restart_sampling()
        self.log.info("module %s is back (%s v1.%d)", module.key, module.dev.variant,
                      module.dev.version - 1)
        return True

    # ------------------------------------------------------------------ sampling
    def sample_once(self):
        """One RT sample of every module; allocation-free while all modules answer."""
        for module in self.modules:
            if module.status == "unreachable" or module.dev.version is None:
                continue
            try:
                module.dev.sample_bidirectional(into=module.snapshot)
            except RbAmpError as exc:
                module.sample_failures += 1
                self._transient(module, exc, module.sample_failures, SAMPLE_FAILURES_UNREACHABLE)
                continue
            module.sample_failures = 0
            if module.status != "ok" and module.status != "rebooted":
                module.status = "ok"
        self.samples += 1

    async def sampler(self):
        clock = self.clock
        while True:
            pace = self._pace
            if pace is not None and pace.version is not None:
                await pace.wait_drdy()
            else:
                await clock.asleep_ms(WINDOW_MS)
            self.sample_wakeups += 1
            self.sample_once()

    # ------------------------------------------------------------------ periods
    async def period_loop(self):
        clock = self.clock
        next_ms = clock.ticks_add(clock.ticks_ms(), self.period_ms)
        while True:
            wait = clock.ticks_diff(next_ms, clock.ticks_ms())
            if wait > 0:
                await clock.asleep_ms(wait)
            next_ms = clock.ticks_add(next_ms, self.period_ms)
            await self.period_once()

    async def period_once(self):
        latched = []
        for module in self.modules:
            if module.status == "unreachable" or module.dev.version is None:
                if self.recover(module):
                    continue  # begin() primed a fresh sequence; it joins the next period
                continue
            try:
                module.dev.latch_period()
            except RbAmpError as exc:
                # not latched: the module keeps accumulating, so the next latch covers this period
                module.period_failures += 1
                self._transient(module, exc, module.period_failures, PERIOD_FAILURES_UNREACHABLE)
                continue
            latched.append(module)
        await self.clock.asleep_ms(SETTLE_MS)
        record_modules = {}
        for module in latched:
            entry = {"valid": False}  # type: dict
            try:
                p = module.dev.read_period_snapshot(skip_latch=True, settle_ms=0)
                entry["valid"] = True
                entry["avg_p"] = [round(p.avg_p[ch], 2) for ch in range(module.channels)]
                entry["max_p"] = round(p.max_p, 2)
                entry["dt_ms"] = p.dt_ms
                entry["windows"] = p.commit_count
                if module.dev.stats.reboots != module.reboots_seen and module.sampled_mwh is not None:
                    self._fill_reboot_gap(module)
                self._remember_latch(module)
                if p.rebooted:
                    module.status = "rebooted"
                    entry["rebooted"] = True
                    self.log.warning("module %s rebooted; period re-primed", module.key)
                elif module.status == "rebooted":
                    module.status = "ok"
                module.period_failures = 0
            except RbAmpStaleError:
                module.period_failures = 0
                entry["stale"] = True
            except RbAmpError as exc:
                # the driver keeps the latched period and delivers it before the next latch
                module.period_failures += 1
                self._transient(module, exc, module.period_failures, PERIOD_FAILURES_UNREACHABLE)
                entry["error"] = str(exc)
            energy = module.dev.energy
            entry["import_wh"] = [energy.consumption[ch].mwh() / 1000 for ch in range(module.channels)]
            entry["export_wh"] = [energy.exported[ch].mwh() / 1000 for ch in range(module.channels)]
            record_modules[module.key] = entry
        self.periods += 1
        self.period_seq += 1
        record = {"seq": self.period_seq, "modules": record_modules}
        if self.on_period is not None:
            self.on_period(record)
        self.maybe_commit()
        return record

    # ------------------------------------------------------------------ persistence
    def maybe_commit(self, reason=None):
        """Commit when the policy (or the caller, with a reason) says so. Never raises."""
        store = self.store
        if store is None or self.policy is None:
            return False
        totals = self.totals()
        if reason is None:
            reason = self.policy.due(totals, self.period_seq)
        if not reason:
            return False
        try:
            store.commit(totals, self.period_seq, reason)
        except Exception as exc:  # a failing flash must not stop the metering; it is logged and counted
            self.commit_errors += 1
            self.log.error("journal commit failed: %s", exc)
            return False
        self.policy.committed(totals, self.period_seq)
        self.commits += 1
        return True

    def commit_for_shutdown(self):
        if self.policy is None:
            return False
        return self.maybe_commit(self.policy.at_shutdown(self.totals(), self.period_seq))

    def commit_before_reset(self):
        if self.policy is None:
            return False
        return self.maybe_commit(self.policy.before_reset(self.totals(), self.period_seq))

    async def journal_upkeep(self):
        """Once a second: commit if the policy says so (export grows between periods), and erase
        the journal block ahead when idle, so a commit is one small program."""
        while True:
            self.maybe_commit()
            if self.store is not None and self.store.needs_prepare:
                try:
                    self.store.prepare()
                except Exception as exc:  # logged; the next commit erases inline instead
                    self.log.error("journal prepare failed: %s", exc)
            await self.clock.asleep_ms(1000)
