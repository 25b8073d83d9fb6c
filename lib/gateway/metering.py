"""Metering: DRDY-paced RT sampling, the period latch across modules, totals and commits.

Energy per channel, in integer milliwatt-hours:

- import: the module's latched period averages (its BASIC clamp counts consumption only), so a
  missed RT sample never costs energy;
- export: the master-side split of signed RT power sampled at the module's 5 Hz
  (``RbAmp.sample_bidirectional``).

The journal holds ``[ch import, ch export, ...]`` over the channels of every module whose channel
count is known (gateway.layout), in config order, with each module's resume point. It is committed
after every period latch (a period held only in RAM would be lost by a crash: the module restarted
its accumulator at the latch), by the commit policy in between, and at once when the mains
collapse (``mains_lost``: the open period's import from our own samples, settled at the next
latch). A module that does not answer keeps its counters here and is retried every 5 s; when it
answers, ``RbAmp.begin(resume=...)`` counts what it accumulated meanwhile.
Nothing here waits on the network: the publisher reads what this module produces.
"""

import asyncio

from gateway import payloads
from gateway.layout import RESUME_BYTES, clear_resume, pack_resume
from gateway.ledger import Ledger, span
from gateway.store import REASON_PERIOD, REASON_POWER_LOSS
from rbamp import RbAmpError, RbAmpSample, RbAmpSnapshot, RbAmpStaleError

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
    """One configured module: its driver object and what the gateway keeps about it.

    ``channels`` is the durable channel count (config.json or the journal, see gateway.layout);
    0 until the module has answered once when nothing durable names it. The energy counters live
    here (``ledger``, gateway.ledger), not in the driver object: they hold the journal's totals
    while the module is away and are handed to the driver when it begins.

    ``sample`` is the newest 5 Hz sample (``RbAmpSample``: voltage and signed power per channel).
    Live values for the publisher: ``snapshot`` (the RT block), ``reactive_power`` (per channel)
    and ``frequency``, read together by ``Metering.read_live()``; ``live_error`` says why they
    are missing.
    """

    def __init__(self, dev, address, label=None, channels=0, resume=None):
        self.dev = dev
        self.address = address
        self.key = payloads.module_key(address)
        self.label = label
        self.channels = channels
        self.ledger = Ledger(channels) if channels else None
        self.resume = resume  # the journal's resume point, used by the first begin of this boot
        self.begun = False    # begun at least once since boot: the driver holds the resume point
        self.status = "starting"
        self.error = None  # type: str | None
        self.snapshot = None
        self.sample = None  # type: RbAmpSample | None
        self.reactive_power = None  # type: list | None
        self.frequency = None  # type: float | None
        self.live_error = None  # type: str | None
        self.last_period = None
        self.retry_at_ms = 0
        self.failures = 0
        self.sample_failures = 0  # in a row
        self.period_failures = 0  # in a row
        self.transient_errors = 0  # failed samples and periods that did not make it unreachable
        self.reboots_seen = 0  # the driver's reboot count at the last good latch (or begin)
        # mains loss: the open period's import was counted early from our samples, so the
        # module's resume point no longer applies
        self.resume_cleared = False
        self.mains_seen = False  # armed only once the voltage was seen above the threshold

    def power_now(self, ch):
        """Channel ``ch``'s signed power in W from the newest 5 Hz sample."""
        return self.sample.power[ch]

    @property
    def ready(self):
        return self.begun and self.status != "unreachable" and self.status != "wrong device"

    def learn_channels(self, channels, meter):
        """The module answered for the first time and nothing durable named its channel count:
        its counters are the driver's own (``meter``)."""
        self.channels = channels
        self.ledger = Ledger(channels, meter)


class Metering:
    """Samples, latches and commits a list of ``MeteredModule``.

    ``store``/``policy``: the journal and its commit policy (None: nothing is kept).
    ``on_period(record)``: called with every period record. ``on_started(module, learned)``: after
    a module was begun; ``learned``: its channel count was not known before (it joined the
    journal's layout). ``period_seq``: the last period record's number (the backlog position).
    ``journal_hold``: why commits must wait (a journal whose layout is not settled), or None.
    """

    def __init__(self, modules, clock, log, period_s, store=None, policy=None, on_period=None,
                 on_started=None, mains_loss_v=0, period_seq=0, journal_hold=None):
        self.modules = modules
        self.clock = clock
        self.log = log
        self.period_ms = period_s * 1000
        self.store = store
        self.policy = policy
        self.on_period = on_period
        self.on_started = on_started
        self.journal_hold = journal_hold  # type: str | None
        self.sampled = asyncio.Event()  # set after every round of samples (the publisher waits on it)
        self.samples = 0
        self.sample_wakeups = 0
        self.periods = 0
        self.period_seq = period_seq
        self.commits = 0
        self.last_commit_ms = None  # ticks_ms of the last commit (the web page shows how long ago)
        self.commit_errors = 0
        self.mains_losses = 0
        self.last_mains_commit_us = None  # from the wake-up that saw the collapse to durable
        self._mains_dv = _decivolts(mains_loss_v)
        self._drdy_silent = True  # armed by the first DRDY edge
        self._wake_us = 0
        self._pace = None
        self._layout_version = 0  # counts modules whose channel count became known this boot
        self._store_layout_version = -1
        self._layout_modules = []
        self._resume = bytearray(0)

    # ------------------------------------------------------------------ module bookkeeping
    def start_module(self, module):
        """Begin one module (at boot or when it comes back). False if it did not answer or is
        not the module the durable layout names; never raises for a module's own trouble."""
        dev = module.dev
        if module.ledger is not None:
            dev.energy = module.ledger.meter
        if module.begun:
            resume = (dev.window_us, dev.counted_uptime_s, dev.counted_fingerprint)
        else:
            resume = module.resume
        if module.resume_cleared:
            resume = None  # its open period was already counted from our samples
        try:
            dev.begin(resume=resume)
        except RbAmpError as exc:
            self._fail(module, exc)
            return False
        if module.channels and dev.channels != module.channels:
            module.status = "wrong device"
            module.error = ("a %s with %d channel(s) answers at %s; the journal and config.json "
                            "say %d: not metered, its totals are kept" % (
                                dev.variant, dev.channels, module.key, module.channels))
            module.retry_at_ms = self.clock.ticks_add(self.clock.ticks_ms(), RETRY_UNREACHABLE_MS)
            self.log.error("module %s: %s", module.key, module.error)
            return False
        learned = not module.channels
        if learned:
            module.learn_channels(dev.channels, dev.energy)
            self._layout_version += 1
        module.begun = True
        module.resume = None
        module.resume_cleared = False
        self._ready_module(module)
        if self.on_started is not None:
            self.on_started(module, learned)
        return True

    def _ready_module(self, module):
        if module.snapshot is None or module.snapshot.channels != module.channels:
            module.snapshot = RbAmpSnapshot(module.channels)
            module.sample = RbAmpSample(module.channels)
        module.status = "ok"
        module.error = None
        module.sample_failures = 0
        module.period_failures = 0
        module.dev.restart_sampling()
        self._remember_latch(module)
        if self._pace is None and module.dev.drdy_attached:
            self._pace = module.dev

    def start(self):
        """Begin every module that has not been begun (boot); the absent ones are retried by
        the period loop."""
        for module in self.modules:
            if not module.begun:
                self.start_module(module)

    def layout(self):
        """``[(address, channels)]`` of the modules whose channel count is known, config order."""
        return [(m.address, m.channels) for m in self.modules if m.channels]

    def _remember_latch(self, module):
        module.reboots_seen = module.dev.stats.reboots
        module.ledger.mark_latch()

    def channel_count(self):
        return sum(m.channels for m in self.modules)

    def totals(self):
        """``[import, export]`` mWh per channel of every module in the layout, in config order."""
        out = []
        for module in self.modules:
            if module.ledger is not None:
                module.ledger.append_totals(out)
        return out

    def restore(self, totals):
        """Start the counters from ``totals`` (the layout's order): never lower than these."""
        i = 0
        for module in self.modules:
            if module.channels:
                self.restore_module(module, totals[i:i + span(module.channels)])
                i += span(module.channels)

    def restore_module(self, module, totals):
        """Raise one module's counters to ``totals`` (``[import, export]`` per channel); what
        they jumped by is not energy of the open period."""
        if module.ledger is None:
            return
        module.ledger.restore(totals)
        if module.begun:
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
        """Try to bring an unreachable (or never begun) module back; what it accumulated while
        we could not read it is counted (``RbAmp.begin(resume=...)``)."""
        if not self._due_for_retry(module):
            return False
        if not self.start_module(module):
            return False
        self.log.info("module %s is back (%s v1.%d)", module.key, module.dev.variant,
                      module.dev.version - 1)
        return True

    # ------------------------------------------------------------------ sampling
    def sample_once(self):
        """One 5 Hz sample (the digest: voltage and signed power) of every module; allocation-free
        while all modules answer."""
        lost = False
        for module in self.modules:
            if not module.ready:
                continue
            try:
                module.dev.sample_bidirectional(into=module.sample)
            except RbAmpError as exc:
                module.sample_failures += 1
                self._transient(module, exc, module.sample_failures, SAMPLE_FAILURES_UNREACHABLE)
                continue
            module.sample_failures = 0
            if module.status != "ok" and module.status != "rebooted":
                module.status = "ok"
            if self._mains_dv and module.dev.has_voltage and self._voltage_lost(module):
                lost = True
        self.samples += 1
        if lost:
            self.mains_lost("RT voltage below the threshold")

    def read_live(self):
        """Read every ready module's live values for the publisher (the RT block, reactive power
        per channel, frequency). A failure counts like a failed sample and sets ``live_error``."""
        for module in self.modules:
            if not module.ready:
                continue
            dev = module.dev
            try:
                dev.read_all(into=module.snapshot)
                module.reactive_power = [dev.read_reactive_power(ch) for ch in range(module.channels)]
                module.frequency = dev.read_frequency()
            except RbAmpError as exc:
                module.live_error = str(exc)
                module.sample_failures += 1
                self._transient(module, exc, module.sample_failures, SAMPLE_FAILURES_UNREACHABLE)
                continue
            module.live_error = None

    def _voltage_lost(self, module):
        """True once, when the sampled voltage falls below the threshold (both in integer
        decivolts: nothing allocates)."""
        low = module.sample.voltage_dv < self._mains_dv
        if low:
            if module.mains_seen:
                module.mains_seen = False
                return True
        else:
            module.mains_seen = True
        return False

    async def sampler(self):
        clock = self.clock
        while True:
            pace = self._pace
            if pace is not None and pace.version is not None:
                got = await pace.wait_drdy()
                if got:
                    self._drdy_silent = False
                elif not self._drdy_silent and not pace.drdy_held_low:
                    # no edge for a whole timeout and the line is not held by an event: the
                    # module lost its supply, usually with the mains
                    self._drdy_silent = True
                    self._wake_us = clock.ticks_us()
                    self.mains_lost("DRDY stopped")
            else:
                await clock.asleep_ms(WINDOW_MS)
            self._wake_us = clock.ticks_us()
            self.sample_wakeups += 1
            self.sample_once()
            self.sampled.set()

    def mains_lost(self, why):
        """Commit at once, before the gateway's own supply dies: the import of every module's
        open period is taken from our 5 Hz samples (settled at the next latch if we survive)."""
        for module in self.modules:
            if not module.begun or not module.ledger.latch_marked:
                continue
            module.ledger.count_open_period_early()
            module.resume_cleared = True
        committed = self.maybe_commit(REASON_POWER_LOSS)
        self.mains_losses += 1
        if committed:
            self.last_mains_commit_us = self.clock.ticks_diff(self.clock.ticks_us(), self._wake_us)
            self.log.warning("mains lost (%s): totals committed %d us after the wake-up that saw it",
                             why, self.last_mains_commit_us)
        else:
            self.log.warning("mains lost (%s): nothing new to commit", why)

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
            if not module.ready:
                self.recover(module)  # when it answers it is begun; it joins the next period
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
            entry = {payloads.VALID: False}  # type: dict
            try:
                p = module.dev.read_period_snapshot(skip_latch=True, settle_ms=0)
                entry[payloads.VALID] = True
                entry[payloads.AVG_P] = [round(p.avg_p[ch], 2) for ch in range(module.channels)]
                entry[payloads.MAX_P] = round(p.max_p, 2)
                entry[payloads.DT_MS] = p.dt_ms
                entry[payloads.WINDOWS] = p.commit_count
                ledger = module.ledger
                if not p.rebooted and module.resume_cleared:
                    ledger.settle_provisional()
                else:
                    ledger.drop_provisional()
                module.resume_cleared = False
                # the driver may see the reboot first in a 5 Hz sample (and resume there): the
                # period still held one, whether or not the snapshot says so
                rebooted = p.rebooted or module.dev.stats.reboots != module.reboots_seen
                if module.dev.stats.reboots != module.reboots_seen and ledger.latch_marked:
                    for ch, mwh in ledger.fill_reboot_gap():
                        self.log.info("module %s ch%d: %d mWh it lost in its reboot taken from our "
                                      "samples", module.key, ch, mwh)
                self._remember_latch(module)
                if rebooted:
                    module.status = "rebooted"
                    entry[payloads.REBOOTED] = True
                    self.log.warning("module %s rebooted; period re-primed", module.key)
                elif module.status == "rebooted":
                    module.status = "ok"
                module.period_failures = 0
            except RbAmpStaleError:
                module.period_failures = 0
                entry[payloads.STALE] = True
            except RbAmpError as exc:
                # the driver keeps the latched period and delivers it before the next latch
                module.period_failures += 1
                self._transient(module, exc, module.period_failures, PERIOD_FAILURES_UNREACHABLE)
                entry[payloads.ERROR] = str(exc)
            record_modules[module.key] = payloads.add_energy(entry, module.ledger, module.channels)
        self.periods += 1
        self.period_seq += 1
        record = payloads.period_record(self.period_seq, record_modules)
        if self.on_period is not None:
            self.on_period(record)
        # Every period is committed: the module restarted its accumulator at this latch, so a
        # period held only in RAM would be lost by a crash (RbAmp.begin(resume=) recovers only
        # what the module still holds).
        self.maybe_commit(REASON_PERIOD if latched else None)
        return record

    # ------------------------------------------------------------------ persistence
    def _sync_layout(self):
        """Give the store the current layout (a module's count became known) and fill in every
        module's resume point."""
        if self._store_layout_version != self._layout_version:
            layout = self.layout()
            self.store.set_layout(layout)
            self._store_layout_version = self._layout_version
            self._layout_modules = [m for m in self.modules if m.channels]
            self._resume = bytearray(RESUME_BYTES * len(layout))
        buf = self._resume
        for index in range(len(self._layout_modules)):
            module = self._layout_modules[index]
            dev = module.dev
            if module.resume_cleared:
                clear_resume(buf, index)
            elif module.begun:
                pack_resume(buf, index, dev.window_us, dev.counted_uptime_s, dev.counted_fingerprint)
            elif module.resume is not None:
                point = module.resume
                pack_resume(buf, index, point[0], point[1], point[2])
            else:
                clear_resume(buf, index)
        return buf

    def maybe_commit(self, reason=None):
        """Commit when the policy (or the caller, with a reason) says so. Never raises."""
        store = self.store
        if store is None or self.policy is None or self.journal_hold is not None:
            return False
        totals = self.totals()
        if not totals:
            return False  # no module known yet: nothing to keep
        if reason is None:
            reason = self.policy.due(totals, self.period_seq)
        elif reason == REASON_PERIOD and not self.policy.changed(totals, self.period_seq):
            reason = 0
        if not reason:
            return False
        try:
            resume = self._sync_layout()
            store.commit(totals, self.period_seq, reason, resume=resume)
        except Exception as exc:  # a failing flash must not stop the metering; it is logged and counted
            self.commit_errors += 1
            self.log.error("journal commit failed: %s", exc)
            return False
        self.policy.committed(totals, self.period_seq)
        self.commits += 1
        self.last_commit_ms = self.clock.ticks_ms()
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
            if self.store is not None and self.journal_hold is None and self.store.needs_prepare:
                try:
                    self.store.prepare()
                except Exception as exc:  # logged; the next commit erases inline instead
                    self.log.error("journal prepare failed: %s", exc)
            await self.clock.asleep_ms(1000)


def _decivolts(volts):
    """The mains-loss threshold in 0.1 V, as the 5 Hz sample carries the voltage (0: none)."""
    if not volts or volts <= 0:
        return 0
    return int(volts * 10 + 0.5)
