"""``RbAmp``: one module on the bus, assembled from focused parts that share one ``RegisterIO``:

- ``rbamp.regio``: register reads and writes (retries, the throw-away read after a NACK, stats);
- ``rbamp.identity``: what begin() learned (version, variant, channels);
- ``rbamp.rtread``: RT floats, never torn (v1.3 bursts, v1.2 guarded byte-wise passes);
- ``rbamp.sampling``: the 5 Hz digest sample and the import/export split;
- ``rbamp.period``: the period latch, its energy, reboots and resume;
- ``rbamp.provisioning``: settings and commands; ``rbamp.drdy``: the DRDY line.
"""

from rbamp import registers as R
from rbamp.clock import SYSTEM_CLOCK
from rbamp.drdy import DrdyWatch
from rbamp.energy import EnergyMeter
from rbamp.errors import RbAmpError, RbAmpParamError, RbAmpStaleError, RbAmpTimeoutError
from rbamp.floatbits import float_array, u16
from rbamp.identity import ModuleIdentity, identify
from rbamp.period import PeriodLatch
from rbamp.phase import CommitPhase
from rbamp.provisioning import Provisioning
from rbamp.resume import WindowLearner
from rbamp.regio import RbAmpStats, RegisterIO, check_address
from rbamp.rtread import (RT_CURRENT, RT_CURRENT_PEAK, RT_MAX_EXP, RT_PF, RT_POWER, RT_SIGNED, RtReader,
                          absent_rt_floats)
from rbamp.sampling import Sampler
from rbamp.snapshot import RbAmpPeriodSnapshot, RbAmpSample, RbAmpSnapshot
from rbamp.stream import PeriodStream

# Kept importable from here: tools and older code use these names.
__all__ = ["RbAmp", "RbAmpStats", "check_address", "absent_rt_floats", "RT_MAX_EXP", "RT_SIGNED"]

DRDY_TIMEOUT_MS = 300


class _ChannelReader:
    """``dev.power[ch]``: a bus read per index."""

    def __init__(self, read):
        self._read = read

    def __getitem__(self, ch):
        return self._read(ch)


class RbAmp:
    """One rbAmp module. See the package docstring for an example."""

    def __init__(self, bus, addr=0x50, clock=None, retries=3, retry_ms=20, ready_timeout_ms=1000):
        check_address(addr)
        if not 0 <= retries <= 10:
            raise RbAmpParamError("retries must be 0..10")
        from rbamp.transport import transport_for

        self.bus = bus
        self.clock = clock if clock is not None else getattr(bus, "clock", None) or SYSTEM_CLOCK
        self.ready_timeout_ms = ready_timeout_ms
        self.stats = RbAmpStats()
        self._t = transport_for(bus)
        self._io = RegisterIO(self._t, addr, self.clock, retries, retry_ms, self.stats)
        self._ident = ModuleIdentity()
        self.energy = None
        self._drdy = DrdyWatch(self.clock, R.WINDOW_MS)
        self._config = Provisioning(self._io, self.clock, self._ident)
        windows = WindowLearner()
        self._phase = CommitPhase(self.clock, windows)
        self._rt = RtReader(self._io, self.clock, self.stats, self._drdy, self._phase)
        self._period = PeriodLatch(self._io, self.clock, self.stats, self._rt, windows,
                                   self._config.restore_ram_settings)
        self._sampler = Sampler(self._io, self.clock, self.stats, self._rt)
        self._one, self._one_view = float_array(1)
        self._status = bytearray(3)
        self._sample = RbAmpSample(3)
        self._rt_scratch = RbAmpSnapshot(3)  # a sample's fallback read after a module reboot
        self._own_period = RbAmpPeriodSnapshot(3)  # a latched period nobody read, collected here
        self.current = _ChannelReader(self.read_current)
        self.current_peak = _ChannelReader(self.read_current_peak)
        self.power = _ChannelReader(self.read_power)
        self.power_factor = _ChannelReader(self.read_power_factor)
        self.reactive_power = _ChannelReader(self.read_reactive_power)

    # ------------------------------------------------------------------ identity
    address = property(lambda self: self._io.address)
    retries = property(lambda self: self._io.retries)
    retry_ms = property(lambda self: self._io.retry_ms)
    version = property(lambda self: self._ident.version)
    variant = property(lambda self: self._ident.variant)
    channels = property(lambda self: self._ident.channels)
    has_voltage = property(lambda self: self._ident.has_voltage)
    capability = property(lambda self: self._ident.capability)
    tier = property(lambda self: self._ident.tier)
    flash_blank = property(lambda self: self._ident.flash_blank)

    @property
    def config(self):
        """The module's settings and commands (``Provisioning``); RbAmp offers them directly too."""
        return self._config

    # ------------------------------------------------------------------ context manager
    def __enter__(self):
        self.begin()
        return self

    def __exit__(self, *exc):
        self._drdy.detach()
        return False

    # ------------------------------------------------------------------ begin
    def begin(self, resume=None):
        """Identify the module, wait until it is ready, clear RESET_OCCURRED, start the period.

        Without ``resume`` the first latch only primes the sequence (its span is unknown). With
        ``resume = (window_us, uptime_s, fingerprint)``, the values of ``window_us``,
        ``counted_uptime_s`` and ``counted_fingerprint`` kept from the last period counted
        before a restart, nothing the module accumulated is thrown away: a period that was
        latched but never counted and the period still open are both counted (as their commit
        count times the window length), so a restart costs at most the window in progress."""
        ident = self._ident
        identify(self._io, ident)
        channels = ident.channels
        self._rt.configure(channels, ident.has_voltage)
        self._sampler.configure(channels)
        self._period.configure(ident.version, channels)
        self._phase.forget()
        if self.energy is None or self.energy.channels != channels:
            self.energy = EnergyMeter(channels)
        if self._sample.channels != channels:
            self._sample = RbAmpSample(channels)
        self._wait_ready()
        io = self._io
        # ERROR reports the last write only, so a blank flash (0xFB) shows only before we write
        ident.flash_blank = io.read_u8(R.ERROR) == R.ERROR_FLASH_BLANK
        module_rebooted = bool(io.read_u8(R.EVENT_FLAGS) & R.EVENT_RESET_OCCURRED)
        if module_rebooted:
            io.write_u8(R.EVENT_FLAGS, R.EVENT_RESET_OCCURRED)
        self._config.restore_ram_settings()
        self._config.ensure_digest_fields()
        period = self._period
        period.last_uptime = period.read_uptime()
        if resume is None:
            period.prime()
        else:
            period.resume(resume[0], resume[1], resume[2], module_rebooted, self.energy)
        return self

    def _wait_ready(self):
        clock = self.clock
        start = clock.ticks_ms()
        while not self._io.read_u8(R.STATUS) & R.STATUS_READY:
            if clock.ticks_diff(clock.ticks_ms(), start) > self.ready_timeout_ms:
                raise RbAmpTimeoutError("module stayed NOT_READY for %d ms" % self.ready_timeout_ms,
                                        self.address, R.STATUS)
            clock.sleep_ms(10)

    def _require_begun(self):
        self._ident.require_begun(self._io.address)

    # ------------------------------------------------------------------ RT reads
    @property
    def voltage(self):
        return self.read_voltage()

    @property
    def voltage_peak(self):
        return self.read_voltage_peak()

    @property
    def frequency(self):
        return self.read_frequency()

    def _read_one(self, reg, index):
        self._require_begun()
        self._rt.read_floats(reg, self._one_view, 1, index)
        return self._one[0]

    def _read_channel(self, first_reg, index, ch):
        self._ident.check_channel(ch)
        return self._read_one(first_reg + 4 * ch, index + ch)

    def read_voltage(self):
        return self._read_one(R.U_RMS, 0)

    def read_voltage_peak(self):
        return self._read_one(R.U_PEAK, 1)

    def read_current(self, ch):
        return self._read_channel(R.I_RMS0, RT_CURRENT, ch)

    def read_current_peak(self, ch):
        return self._read_channel(R.I_PEAK0, RT_CURRENT_PEAK, ch)

    def read_power(self, ch):
        return self._read_channel(R.P0, RT_POWER, ch)

    def read_power_factor(self, ch):
        return self._read_channel(R.PF0, RT_PF, ch)

    def read_reactive_power(self, ch):
        return self._read_channel(R.Q0, RT_POWER, ch)

    def read_frequency(self):
        """Mains frequency in Hz, from the half-period register (AC_FREQ, an integer, as fallback)."""
        self._require_begun()
        self._io.read_block(R.AC_FREQ, self._status, 0, 3)
        half_period_us = u16(self._status, 1)
        if 5000 <= half_period_us <= 15000:
            return 500000 / half_period_us
        return float(self._status[0])

    def read_all(self, into=None):
        """The RT block, one 200 ms window of it: on v1.3 read-frozen bursts of the floats the
        variant has; on v1.2 byte-wise, never torn. Fills ``into`` in place without allocating."""
        self._require_begun()
        snap = into if into is not None else RbAmpSnapshot(self.channels)
        self._rt.read_floats(R.RT_BLOCK, snap.raw, R.RT_FLOATS, 0)
        snap.ticks_ms = self.clock.ticks_ms()
        return snap

    def read_uptime_s(self):
        self._require_begun()
        return self._period.read_uptime()

    # ------------------------------------------------------------------ 5 Hz sampling
    def sample_bidirectional(self, into=None):
        """Sample signed power and voltage and integrate the power since the previous sample into
        ``energy.imported`` / ``energy.exported`` (the master-side split the BASIC tier needs).
        Call it at the module's 5 Hz (after each DRDY). Returns the object it filled.

        ``into`` is an ``RbAmpSample`` (the default kind): read from the digest, 10 bytes on a
        UI3 at 50 kHz = 2.5 ms of bus on v1.3. The digest rounds power to whole watts, an
        unbiased error of at most 0.5 W per sample. An ``RbAmpSnapshot`` gets the whole RT
        block instead (float watts, more bus time). Neither allocates."""
        self._require_begun()
        clock = self.clock
        now_us = clock.ticks_us()
        now_ms = clock.ticks_ms()
        if isinstance(into, RbAmpSnapshot):
            self.read_all(into)
            self._sampler.integrate_snapshot(into, self.energy, now_us, now_ms)
            return into
        sample = into if into is not None else self._sample
        if not self._sampler.read(sample, self._config.digest_config()):
            # the module rebooted and its digest is empty until the next commit: this once, the
            # RT block (U and P are its floats 0 and 8..10)
            snap = self.read_all(self._rt_scratch)
            sample.voltage_dv = int(snap.voltage * 10 + 0.5)
            for ch in range(self.channels):
                sample.power[ch] = int(snap.power[ch] + 0.5) if snap.power[ch] >= 0 else -int(0.5 - snap.power[ch])
        self._sampler.integrate_sample(sample, self.energy, now_us, now_ms)
        return sample

    def restart_sampling(self):
        """Forget the previous sample time (after a pause, so the gap is not integrated)."""
        self._sampler.span.stop()

    # ------------------------------------------------------------------ period latch
    def latch_period(self):
        """Send LATCH_PERIOD; read it 50 ms later with ``read_period_snapshot(skip_latch=True)``.

        A latched period that was never read is collected first, so no period is skipped."""
        self._require_begun()
        period = self._period
        if period.latched:
            period.wait_settled()
            try:
                period.collect(self._own_period, self.energy)
            except RbAmpStaleError:
                pass  # nothing to count in a stale period; the new latch goes ahead
        period.send_latch()

    def mark_latched(self):
        """Record that the module was latched by someone else (a General Call) just now."""
        self._period.mark_latched()

    def unmark_latched(self):
        """The General Call did not reach this module after all: it is not latched."""
        self._period.latched = False

    @property
    def latched(self):
        """A latch was sent (or heard) and its period not yet collected."""
        return self._period.latched

    def is_period_valid(self):
        self._require_begun()
        return self._io.read_u8(R.PERIOD_VALID) == 1

    def read_period_snapshot(self, into=None, settle_ms=R.LATCH_SETTLE_MS, skip_latch=False):
        """Latch, wait for the snapshot to settle, read it and integrate its energy.

        Raises ``RbAmpStaleError`` for an empty period. If reading fails after a good latch, the
        next call first delivers that still-latched period (its energy is not lost or stretched).
        """
        self._require_begun()
        period = self._period
        if not skip_latch and not period.latched:
            period.send_latch()
        period.require_latched()
        if settle_ms:
            self.clock.sleep_ms(settle_ms)
        return period.collect(into if into is not None else RbAmpPeriodSnapshot(self.channels), self.energy)

    async def aread_period_snapshot(self, into=None, settle_ms=R.LATCH_SETTLE_MS, skip_latch=False):
        """``read_period_snapshot`` that awaits the settle time instead of blocking."""
        self._require_begun()
        period = self._period
        if not skip_latch and not period.latched:
            period.send_latch()
        if settle_ms:
            await self.clock.asleep_ms(settle_ms)
        return period.collect(into if into is not None else RbAmpPeriodSnapshot(self.channels), self.energy)

    def stream_period(self, interval_s=60, skip_stale=True):
        """``async for p in dev.stream_period(60)``: one period snapshot per interval, any interval
        from one module window (0.2 s) up to an hour, floats included."""
        return PeriodStream(self, interval_s, skip_stale)

    @property
    def last_latch_ms(self):
        """``ticks_ms`` of the latest LATCH_PERIOD this object sent (begin()'s included)."""
        return self._period.latch_ms

    @property
    def window_us(self):
        """The module's RT window length in µs as measured by this master (200000 until learned)."""
        return self._period.windows.window_us

    counted_uptime_s = property(lambda self: self._period.counted_uptime_s)
    counted_fingerprint = property(lambda self: self._period.counted_fingerprint)

    # ------------------------------------------------------------------ DRDY
    def attach_drdy(self, pin, trigger=None):
        """Wake on the module's DRDY falling edge. The handler only sets a flag (no bus access)."""
        self._drdy.attach(pin, trigger)

    async def wait_drdy(self, timeout_ms=DRDY_TIMEOUT_MS):
        """Wait for the next RT commit. True on a DRDY edge; False when none came in time (an edge
        was lost, or an event in EVENT_MASK holds the line low): the caller simply reads anyway."""
        return await self._drdy.wait(timeout_ms)

    drdy_attached = property(lambda self: self._drdy.attached)
    drdy_held_low = property(lambda self: self._drdy.held_low)
    drdy_edges = property(lambda self: self._drdy.edges)

    # ------------------------------------------------------------------ reset and address
    def reset(self):
        """Collect the running period (no energy lost), RESET the module, wait, begin again."""
        self._require_begun()
        self._collect_before_reset()
        self._io.write_u8(R.COMMAND, R.CMD_RESET)
        self.clock.sleep_ms(R.RESET_MS)
        self.begin()

    def _collect_before_reset(self):
        try:
            self.read_period_snapshot()
        except RbAmpError:
            pass  # a stale or unreadable period has no energy to save; the reset goes ahead

    def change_address(self, new_addr):
        """Two-phase address change: stage, arm the magic, COMMIT_ADDR, wait, RESET, verify."""
        check_address(new_addr)
        self._require_begun()
        io = self._io
        old = io.address
        if new_addr == old:
            return False
        self._config.commit_address(new_addr)
        self._collect_before_reset()
        io.write_u8(R.COMMAND, R.CMD_RESET)
        self.clock.sleep_ms(R.RESET_MS)
        if not io.answers(new_addr):
            raise RbAmpError("module does not answer at its new address 0x%02X" % new_addr, old)
        if io.answers(old):
            raise RbAmpError("a device still answers at the old address after the change", old)
        io.address = new_addr
        self.begin()
        return True

    # ------------------------------------------------------------------ settings (rbamp.provisioning)
    def read_last_error(self):
        return self._config.read_last_error()

    def clear_error(self):
        self._config.clear_error()

    def read_event_flags(self):
        return self._config.read_event_flags()

    def clear_event_flags(self, mask):
        self._config.clear_event_flags(mask)

    def read_status(self):
        return self._config.read_status()

    def read_sensor_class(self):
        return self._config.read_sensor_class()

    def set_sensor_class(self, sensor_class):
        return self._config.set_sensor_class(sensor_class)

    def read_ct_model_ch(self, ch):
        return self._config.read_ct_model_ch(ch)

    def set_ct_model_ch(self, ch, code):
        return self._config.set_ct_model_ch(ch, code)

    def set_ct_model(self, code):
        return self._config.set_ct_model(code)

    def save_user_config(self, force=False):
        return self._config.save_user_config(force)

    def is_provisioned(self):
        return self._config.is_provisioned()

    def read_label(self):
        return self._config.read_label()

    def set_label(self, text):
        return self._config.set_label(text)

    def read_uid(self):
        return self._config.read_uid()

    def read_reset_cause(self):
        return self._config.read_reset_cause()

    def set_current_threshold(self, amps):
        self._config.set_current_threshold(amps)

    def set_power_threshold(self, watts):
        self._config.set_power_threshold(watts)

    def read_thresholds(self):
        return self._config.read_thresholds()

    def set_event_mask(self, mask):
        self._config.set_event_mask(mask)

    def read_event_mask(self):
        return self._config.read_event_mask()

    def set_digest_config(self, mask):
        self._config.set_digest_config(mask)

    def read_digest(self, into=None):
        return self._config.read_digest(into)

    def decode_digest(self, buf, config=None):
        return self._config.decode_digest(buf, config)

    def set_fleet(self, accept_general_call, group=0):
        return self._config.set_fleet(accept_general_call, group)

    def read_gc_tick(self):
        """GC_TICK: the tick of the last General-Call frame the module accepted (0xFFFF: none)."""
        return self._io.read_u16(R.GC_TICK)

    def send_general_call(self, frame):
        """Write a General-Call frame on this module's bus (address 0x00); OSError when NACKed."""
        self._io.write_raw(0, frame)
