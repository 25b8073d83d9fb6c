"""``RbAmp``: one module on the bus. Identity, RT reads, the period latch and its energy, DRDY."""

from rbamp import registers as R
from rbamp.clock import SYSTEM_CLOCK
from rbamp.drdy import make_flag
from rbamp.energy import EnergyMeter
from rbamp.errors import (ETIMEDOUT, RbAmpError, RbAmpIOError, RbAmpNotFoundError, RbAmpParamError,
                          RbAmpStaleError, RbAmpTimeoutError, RbAmpVersionError)
from rbamp.floatbits import (EXP_WATTS, f32_milli, f32_plausible, first_implausible, float_array, is_ghost,
                             u16, u32)
from rbamp.provisioning import Provisioning
from rbamp.resume import WindowLearner, snapshot_fingerprint
from rbamp.snapshot import RbAmpPeriodSnapshot, RbAmpSnapshot
from rbamp.stream import PeriodStream

# Per RT float (U, U peak, I0..I2, I peak 0..2, P0..P2, PF0..PF2): largest plausible exponent, signed?
RT_MAX_EXP = bytes((136, 137, 136, 136, 136, 137, 137, 137, 143, 143, 143, 127, 127, 127))
RT_SIGNED = bytes((0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1))
_RT_POWER = 8
_RT_PF = 11
_RT_CURRENT = 2
_RT_CURRENT_PEAK = 5
# Period block offsets (from PERIOD_COMMIT_CNT): avg ch0, ch1, ch2, max.
_PERIOD_FLOAT_OFFSETS = bytes((R.PERIOD_AVG_P - R.PERIOD_BLOCK, R.PERIOD_AVG_P_CH1 - R.PERIOD_BLOCK,
                               R.PERIOD_AVG_P_CH2 - R.PERIOD_BLOCK, R.PERIOD_MAX_P - R.PERIOD_BLOCK))
_TORN_ATTEMPTS = 6
_FRESH_EDGE_MS = 60  # a single v1.2 pass may start this long after a DRDY edge...
_PASS_DEADLINE_MS = 150  # ...and must end this long after it, well before the next 200 ms commit
_US_WINDOW_MS = 500000  # below this a ticks_us difference is still unambiguous on 2**30-wrap ports
DRDY_TIMEOUT_MS = 300


def absent_rt_floats(channels, has_voltage):
    """Bit k set: RT float k carries nothing on this variant (a channel it lacks, or the U and P
    of a current-only module, which read 0.0). v1.2 reads skip them: each costs 8 transactions."""
    mask = 0
    for ch in range(channels, 3):
        for first in (_RT_CURRENT, _RT_CURRENT_PEAK, _RT_POWER, _RT_PF):
            mask |= 1 << (first + ch)
    if not has_voltage:
        mask |= 0b11 | (0b111 << _RT_POWER)
    return mask


def _zero_word(view, off):
    for i in range(4):
        view[off + i] = 0


def check_address(addr):
    if not isinstance(addr, int) or not 0x08 <= addr <= 0x77:
        raise RbAmpParamError("I2C address must be an int in 0x08..0x77, got %r" % (addr,))


class RbAmpStats:
    """Counters of what the driver had to survive (all small ints)."""

    def __init__(self):
        self.reads = 0
        self.writes = 0
        self.bus_errors = 0
        self.retries = 0
        self.rejected = 0  # implausible values (NaN, inf, absurd, ghost) re-read
        self.ghosts = 0
        self.torn = 0  # v1.2 byte-wise reads that disagreed and were re-read
        self.stale = 0
        self.reboots = 0
        self.resumed = 0  # begin(resume=...) that took over a running sequence instead of priming
        self.recovered_periods = 0  # latched periods a restarted master counted (missed + open)

    def to_dict(self):
        return dict((name, getattr(self, name)) for name in (
            "reads", "writes", "bus_errors", "retries", "rejected", "ghosts", "torn", "stale", "reboots",
            "resumed", "recovered_periods"))


class _ChannelReader:
    """``dev.power[ch]``: a bus read per index."""

    def __init__(self, read):
        self._read = read

    def __getitem__(self, ch):
        return self._read(ch)


class RbAmp(Provisioning):
    """One rbAmp module. See the package docstring for an example."""

    def __init__(self, bus, addr=0x50, clock=None, retries=3, retry_ms=20, ready_timeout_ms=1000):
        check_address(addr)
        if not 0 <= retries <= 10:
            raise RbAmpParamError("retries must be 0..10")
        from rbamp.transport import transport_for

        self.bus = bus
        self.address = addr
        self.clock = clock if clock is not None else getattr(bus, "clock", None) or SYSTEM_CLOCK
        self.retries = retries
        self.retry_ms = retry_ms
        self.ready_timeout_ms = ready_timeout_ms
        self.stats = RbAmpStats()
        self._t = transport_for(bus)
        self.version = None
        self.variant = None
        self.channels = 0
        self.has_voltage = False
        self.capability = 0
        self.tier = 0
        self.energy = None
        self.flash_blank = False
        self._config_dirty = False  # a setting changed through this object since the last save
        self._burst = False
        self._rt_absent = 0  # absent_rt_floats() of the variant, set by begin()
        self._byte = bytearray(1)
        self._flush = bytearray(1)
        self._word = bytearray(4)
        self._check = bytearray(4)
        self._status = bytearray(6)
        self._period_raw = bytearray(R.PERIOD_BLOCK_LEN)
        self._one, self._one_view = float_array(1)
        self._sample = RbAmpSnapshot(3)
        self._own_period = RbAmpPeriodSnapshot(3)
        self.current = _ChannelReader(self.read_current)
        self.current_peak = _ChannelReader(self.read_current_peak)
        self.power = _ChannelReader(self.read_power)
        self.power_factor = _ChannelReader(self.read_power_factor)
        self.reactive_power = _ChannelReader(self.read_reactive_power)
        # period latch bookkeeping (ticks)
        self._latched = False
        self._latch_us = self._latch_ms = 0
        self._anchor_us = self._anchor_ms = 0
        self._anchor_set = False
        self._carry_us = 0
        self._last_uptime = 0
        # what a restarted master needs to take over (see rbamp.resume)
        self._windows = WindowLearner()
        self.counted_uptime_s = 0
        self.counted_fingerprint = 0
        self._missed_raw = bytearray(R.PERIOD_BLOCK_LEN)
        # bidirectional sampling
        self._sample_started = False
        self._sample_us = self._sample_ms = 0
        self._sample_carry = 0
        # RAM-only settings to restore after a module reboot (None = never set by us)
        self._ram = {}
        # DRDY
        self._drdy_pin = None
        self._drdy_flag = None
        self._drdy_edges = 0
        self._drdy_ms = 0
        self._drdy_seen = 0
        self._drdy_handler = self._on_drdy
        self._drdy_check = self._drdy_pending

    # ------------------------------------------------------------------ context manager
    def __enter__(self):
        self.begin()
        return self

    def __exit__(self, *exc):
        if self._drdy_pin is not None:
            self._drdy_pin.irq(handler=None)
        return False

    # ------------------------------------------------------------------ bus primitives
    def _io_error(self, exc, reg, what):
        code = exc.args[0] if exc.args else None
        if code == ETIMEDOUT:
            return RbAmpTimeoutError("bus stuck while %s (%r)" % (what, exc), self.address, reg)
        return RbAmpIOError("%s failed after %d retries (%r)" % (what, self.retries, exc),
                            self.address, reg, code if isinstance(code, int) else None)

    def _read(self, reg, buf):
        """One transaction (a burst on v1.3), retried with spacing on bus errors.

        After a failed transaction the ESP32 host driver can hand stale buffer bytes to the next
        read without an error (the ghost quirk), so every retry starts with a throw-away read."""
        attempt = 0
        t = self._t
        while True:
            try:
                if attempt:
                    t.read_into(self.address, R.STATUS, self._flush)
                t.read_into(self.address, reg, buf)
                self.stats.reads += 1
                return
            except OSError as exc:
                self.stats.bus_errors += 1
                if attempt >= self.retries:
                    raise self._io_error(exc, reg, "read")
            attempt += 1
            self.stats.retries += 1
            self.clock.sleep_ms(self.retry_ms)

    def _write_u8(self, reg, value):
        attempt = 0
        while True:
            try:
                self._t.write_u8(self.address, reg, value)
                self.stats.writes += 1
                return
            except OSError as exc:
                self.stats.bus_errors += 1
                if attempt >= self.retries:
                    raise self._io_error(exc, reg, "write")
            attempt += 1
            self.stats.retries += 1
            self.clock.sleep_ms(self.retry_ms)

    def _read_u8(self, reg):
        self._read(reg, self._byte)
        return self._byte[0]

    def _read_block(self, reg, buf, off, n):
        """n bytes into buf[off:]: one burst on v1.3, byte by byte otherwise (no torn guard)."""
        if self._burst and off == 0 and n == len(buf):
            self._read(reg, buf)
            return
        byte = self._byte
        for i in range(n):
            self._read(reg + i, byte)
            buf[off + i] = byte[0]

    def _read_word_agreed(self, reg, buf, off):
        """Four bytes read byte-wise twice until both passes agree (v1.2: the RT block changes
        between byte reads; two equal passes cannot hold a torn value)."""
        first = self._word
        second = self._check
        for _ in range(_TORN_ATTEMPTS):
            self._read_block(reg, first, 0, 4)
            self._read_block(reg, second, 0, 4)
            if (first[0] == second[0] and first[1] == second[1] and first[2] == second[2]
                    and first[3] == second[3]):
                for i in range(4):
                    buf[off + i] = first[i]
                return
            self.stats.torn += 1
        raise RbAmpIOError("value kept changing while read byte by byte", self.address, reg)

    def _read_floats(self, reg, view, count, first_limit):
        """count floats into the byte view; implausible values are re-read (bounded)."""
        attempt = 0
        while True:
            if self._burst:
                self._read(reg, view)
            elif not self._read_pass_between_commits(reg, view, count, first_limit):
                absent = self._rt_absent >> first_limit if count > 1 else 0
                for k in range(count):
                    if (absent >> k) & 1:
                        _zero_word(view, 4 * k)
                    else:
                        self._read_word_agreed(reg + 4 * k, view, 4 * k)
            bad = first_implausible(view, count, RT_MAX_EXP, RT_SIGNED, first_limit)
            if bad < 0:
                return
            self.stats.rejected += 1
            if is_ghost(view, 4 * bad):
                self.stats.ghosts += 1
            if attempt >= self.retries:
                raise RbAmpIOError("implausible value kept coming back", self.address, reg + 4 * bad)
            attempt += 1
            self.clock.sleep_ms(self.retry_ms)

    def _read_pass_between_commits(self, reg, view, count, first_limit):
        """v1.2 with DRDY: one byte-wise pass is torn-free if it starts soon after a commit's edge
        and ends, with no new edge, well before the next commit (~200 ms). False: use read-twice."""
        if self._drdy_flag is None or self._drdy_pin.value() == 0:
            return False
        clock = self.clock
        edges = self._drdy_edges
        if clock.ticks_diff(clock.ticks_ms(), self._drdy_ms) > _FRESH_EDGE_MS:
            return False
        absent = self._rt_absent >> first_limit if count > 1 else 0
        byte = self._byte
        for k in range(count):
            if (absent >> k) & 1:
                _zero_word(view, 4 * k)
                continue
            for i in range(4 * k, 4 * k + 4):
                self._read(reg + i, byte)
                view[i] = byte[0]
        if self._drdy_edges == edges and clock.ticks_diff(clock.ticks_ms(), self._drdy_ms) < _PASS_DEADLINE_MS:
            return True
        self.stats.torn += 1
        return False

    def _read_one(self, reg, limit):
        self._require_begun()
        self._read_floats(reg, self._one_view, 1, limit)
        return self._one[0]

    def _require_begun(self):
        if self.version is None:
            raise RbAmpError("call begin() first", self.address)

    def _check_channel(self, ch):
        if not isinstance(ch, int) or not 0 <= ch < self.channels:
            raise RbAmpParamError("channel %r out of range: this %s has %d channel(s)" % (
                ch, self.variant, self.channels))

    # ------------------------------------------------------------------ begin
    def begin(self, resume=None):
        """Identify the module, wait until it is ready, clear RESET_OCCURRED, start the period.

        Without ``resume`` the first latch only primes the sequence (its span is unknown). With
        ``resume = (window_us, uptime_s, fingerprint)``, the values of ``window_us``,
        ``counted_uptime_s`` and ``counted_fingerprint`` kept from the last period counted
        before a restart, nothing the module accumulated is thrown away: a period that was
        latched but never counted and the period still open are both counted (as their commit
        count times the window length), so a restart costs at most the window in progress."""
        addr = self.address
        try:
            product = self._read_u8(R.PRODUCT_ID)
        except RbAmpIOError as exc:
            if addr not in self._scan_quietly():
                raise RbAmpNotFoundError(
                    "no device acknowledges this address: check SDA/SCL wiring, pull-ups, the "
                    "module's power and its address (bus scan: %s)" % self._scan_text(), addr)
            raise exc
        if product != R.PRODUCT_RBAMP:
            raise RbAmpNotFoundError("the device here is not an rbAmp (PRODUCT_ID 0x%02X, expected "
                                     "0x01); nothing was written to it" % product, addr, R.PRODUCT_ID)
        version = self._read_u8(R.VERSION)
        if version < R.VERSION_V12:
            raise RbAmpVersionError("firmware protocol 0x%02X is older than v1.2 (0x03); update the "
                                    "module" % version, addr, R.VERSION)
        variant_code = self._read_u8(R.HW_VARIANT)
        if variant_code not in R.VARIANTS:
            raise RbAmpVersionError("unknown HW_VARIANT 0x%02X" % variant_code, addr, R.HW_VARIANT)
        self._read_block(R.CAPABILITY, self._word, 0, 2)
        capability = u16(self._word, 0)
        self.variant, self.channels, has_voltage = R.VARIANTS[variant_code]
        self.has_voltage = bool(capability & R.CAP_HAS_VOLTAGE) if capability else has_voltage
        self.capability = capability
        self.tier = self._read_u8(R.FW_TIER)
        self.version = version
        self._burst = version >= R.VERSION_V13
        self._rt_absent = absent_rt_floats(self.channels, self.has_voltage)
        if self.energy is None or self.energy.channels != self.channels:
            self.energy = EnergyMeter(self.channels)
        self._wait_ready()
        # ERROR reports the last write only, so a blank flash (0xFB) shows only before we write
        self.flash_blank = self._read_u8(R.ERROR) == R.ERROR_FLASH_BLANK
        module_rebooted = bool(self._read_u8(R.EVENT_FLAGS) & R.EVENT_RESET_OCCURRED)
        if module_rebooted:
            self._write_u8(R.EVENT_FLAGS, R.EVENT_RESET_OCCURRED)
        self._restore_ram_settings()
        self._last_uptime = self._read_uptime()
        if resume is None:
            self._prime()
        else:
            self._resume(resume[0], resume[1], resume[2], module_rebooted)
        return self

    def _scan_quietly(self):
        try:
            return self._t.scan()
        except OSError:
            return ()

    def _scan_text(self):
        found = self._scan_quietly()
        return ", ".join("0x%02X" % a for a in found) if found else "nothing found"

    def _wait_ready(self):
        clock = self.clock
        start = clock.ticks_ms()
        while not self._read_u8(R.STATUS) & R.STATUS_READY:
            if clock.ticks_diff(clock.ticks_ms(), start) > self.ready_timeout_ms:
                raise RbAmpTimeoutError("module stayed NOT_READY for %d ms" % self.ready_timeout_ms,
                                        self.address, R.STATUS)
            clock.sleep_ms(10)

    def _prime(self):
        """The first latch covers an unknown span since power-on: it only starts the sequence."""
        self._send_latch()
        self.clock.sleep_ms(R.LATCH_SETTLE_MS)
        self._latched = False
        self._set_anchor(0)
        self._note_counted(self._period_raw if self._latched_snapshot(self._period_raw) else None)

    def _latched_snapshot(self, raw):
        """Read the snapshot registers into ``raw``; True if they hold a valid period."""
        self._read_status()
        if self._status[0] == R.ERROR_NOT_READY or not self._status[5]:
            return False
        self._read_period_block(raw)
        return True

    def _note_counted(self, raw):
        """The snapshot in ``raw`` (None: none) is the last one this master accounted for."""
        self.counted_uptime_s = self._last_uptime
        if raw is not None:
            self.counted_fingerprint = snapshot_fingerprint(raw, _PERIOD_FLOAT_OFFSETS)

    def _count_windows(self, raw, windows):
        """Energy of a latched period whose start the master did not see: windows x length."""
        dt_ms = self._windows.span_ms(windows)
        counters = self.energy.consumption
        for ch in range(self.channels):
            milliwatts = f32_milli(raw, _PERIOD_FLOAT_OFFSETS[ch])
            if milliwatts > 0:
                counters[ch].add(milliwatts, dt_ms)
        self.stats.recovered_periods += 1

    def _resume(self, window_us, uptime_s, fingerprint, module_rebooted):
        """Take over a sequence a previous master left running (see begin)."""
        self._windows.seed(window_us)
        rebooted = module_rebooted or self._last_uptime < uptime_s
        missed = self._missed_raw
        have_missed = False
        ambiguous = False
        if not rebooted and self._latched_snapshot(missed):
            # the registers hold either the period counted last or one latched after it that
            # the previous master never counted (it stopped between latch and commit)
            if snapshot_fingerprint(missed, _PERIOD_FLOAT_OFFSETS) != fingerprint:
                have_missed = True
            else:
                ambiguous = True  # the same figures again (a steady load): decided by uptime below
        uptime_before = self._last_uptime
        self._send_latch()
        self.clock.sleep_ms(R.LATCH_SETTLE_MS)
        self._latched = False
        raw = self._period_raw
        opened = self._latched_snapshot(raw)
        open_windows = u32(raw, 0) if opened else 0
        if ambiguous:
            # Seconds since the counted latch, from the module's own uptime (1 s resolution):
            # with a missed period in between they also cover its windows.
            since_ms = (uptime_before - uptime_s) * 1000
            missed_windows = u32(missed, 0)
            expected_ms = self._windows.span_ms(open_windows + missed_windows // 2)
            have_missed = since_ms > expected_ms + 1500
        if have_missed:
            self._count_windows(missed, u32(missed, 0))
        if opened:
            self._count_windows(raw, open_windows)
        self._last_uptime = self._read_uptime()
        self._set_anchor(0)
        self._note_counted(raw if opened else None)
        self.stats.resumed += 1

    def _read_uptime(self):
        if self._burst:
            self._read(R.UPTIME_S, self._word)
        else:
            self._read_word_agreed(R.UPTIME_S, self._word, 0)
        return u32(self._word, 0)

    # ------------------------------------------------------------------ identity-ish reads
    @property
    def voltage(self):
        return self.read_voltage()

    @property
    def voltage_peak(self):
        return self.read_voltage_peak()

    @property
    def frequency(self):
        return self.read_frequency()

    def read_voltage(self):
        return self._read_one(R.U_RMS, 0)

    def read_voltage_peak(self):
        return self._read_one(R.U_PEAK, 1)

    def read_current(self, ch):
        self._check_channel(ch)
        return self._read_one(R.I_RMS0 + 4 * ch, _RT_CURRENT + ch)

    def read_current_peak(self, ch):
        self._check_channel(ch)
        return self._read_one(R.I_PEAK0 + 4 * ch, _RT_CURRENT_PEAK + ch)

    def read_power(self, ch):
        self._check_channel(ch)
        return self._read_one(R.P0 + 4 * ch, _RT_POWER + ch)

    def read_power_factor(self, ch):
        self._check_channel(ch)
        return self._read_one(R.PF0 + 4 * ch, _RT_PF + ch)

    def read_reactive_power(self, ch):
        self._check_channel(ch)
        return self._read_one(R.Q0 + 4 * ch, _RT_POWER + ch)

    def read_frequency(self):
        """Mains frequency in Hz, from the half-period register (AC_FREQ, an integer, as fallback)."""
        self._require_begun()
        self._read_block(R.AC_FREQ, self._status, 0, 3)
        half_period_us = u16(self._status, 1)
        if 5000 <= half_period_us <= 15000:
            return 500000 / half_period_us
        return float(self._status[0])

    def read_all(self, into=None):
        """The whole RT block: one 56-byte burst on v1.3. Fills ``into`` in place without allocating."""
        self._require_begun()
        snap = into if into is not None else RbAmpSnapshot(self.channels)
        self._read_floats(R.RT_BLOCK, snap.raw, R.RT_FLOATS, 0)
        snap.ticks_ms = self.clock.ticks_ms()
        return snap

    # ------------------------------------------------------------------ period latch
    def _send_latch(self):
        self._write_u8(R.COMMAND, R.CMD_LATCH_PERIOD)
        clock = self.clock
        self._latch_us = clock.ticks_us()
        self._latch_ms = clock.ticks_ms()
        self._latched = True

    def latch_period(self):
        """Send LATCH_PERIOD; read it 50 ms later with ``read_period_snapshot(skip_latch=True)``.

        A latched period that was never read is collected first, so no period is skipped."""
        self._require_begun()
        if self._latched:
            self._wait_settled()
            try:
                self._collect(self._own_period)
            except RbAmpStaleError:
                pass
        self._send_latch()

    def mark_latched(self):
        """Record that the module was latched by someone else (a General Call) just now."""
        clock = self.clock
        self._latch_us = clock.ticks_us()
        self._latch_ms = clock.ticks_ms()
        self._latched = True

    def _wait_settled(self):
        elapsed = self.clock.ticks_diff(self.clock.ticks_ms(), self._latch_ms)
        if elapsed < R.LATCH_SETTLE_MS:
            self.clock.sleep_ms(R.LATCH_SETTLE_MS - elapsed)

    def is_period_valid(self):
        self._require_begun()
        return self._read_u8(R.PERIOD_VALID) == 1

    def read_period_snapshot(self, into=None, settle_ms=R.LATCH_SETTLE_MS, skip_latch=False):
        """Latch, wait for the snapshot to settle, read it and integrate its energy.

        Raises ``RbAmpStaleError`` for an empty period. If reading fails after a good latch, the
        next call first delivers that still-latched period (its energy is not lost or stretched).
        """
        self._require_begun()
        if not skip_latch and not self._latched:
            self._send_latch()
        if not self._latched:
            raise RbAmpError("nothing latched: call latch_period() first", self.address)
        if settle_ms:
            self.clock.sleep_ms(settle_ms)
        return self._collect(into if into is not None else RbAmpPeriodSnapshot(self.channels))

    async def aread_period_snapshot(self, into=None, settle_ms=R.LATCH_SETTLE_MS, skip_latch=False):
        """``read_period_snapshot`` that awaits the settle time instead of blocking."""
        self._require_begun()
        if not skip_latch and not self._latched:
            self._send_latch()
        if settle_ms:
            await self.clock.asleep_ms(settle_ms)
        return self._collect(into if into is not None else RbAmpPeriodSnapshot(self.channels))

    def stream_period(self, interval_s=60, skip_stale=True):
        """``async for p in dev.stream_period(60)``: one period snapshot per interval."""
        return PeriodStream(self, interval_s, skip_stale)

    def _elapsed_ms(self, now_us, now_ms, since_us, since_ms, carry_us):
        """ms between two tick pairs + the sub-ms carry, wrap-safe for any period up to days.
        Returns ms and leaves the new carry in self._new_carry."""
        clock = self.clock
        dms = clock.ticks_diff(now_ms, since_ms)
        if dms < _US_WINDOW_MS:
            dus = clock.ticks_diff(now_us, since_us) + carry_us
            if dus < 0:
                dus = 0
            ms = dus // 1000
            self._new_carry = dus - ms * 1000
            return ms
        self._new_carry = 0
        return dms

    def _set_anchor(self, carry_us):
        self._anchor_us = self._latch_us
        self._anchor_ms = self._latch_ms
        self._carry_us = carry_us
        self._anchor_set = True

    def _read_status(self):
        """ERROR (status[0]) and PERIOD_VALID (status[5]) after a latch: one 6-byte burst on v1.3."""
        status = self._status
        if self._burst:
            self._read(R.ERROR, status)
        else:
            status[0] = self._read_u8(R.ERROR)
            status[5] = self._read_u8(R.PERIOD_VALID)

    def _collect(self, p):
        self._read_status()
        error = self._status[0]
        valid = self._status[5]
        rebooted = self._check_reboot()
        if error == R.ERROR_NOT_READY:
            # the module refused the latch (booting): nothing was swapped, the anchor stays, unless
            # it rebooted: its accumulation restarted, so the next period must not reach back
            self._latched = False
            if rebooted:
                self._set_anchor(0)
            self.stats.stale += 1
            p.valid = False
            raise RbAmpStaleError("module not ready, latch refused", self.address)
        if not valid:
            self._latched = False
            self.stats.stale += 1
            p.valid = False
            if rebooted or self.version < R.VERSION_V13:
                # v1.2 drops the stale span (and a reboot starts a new sequence): move the anchor.
                # v1.3 keeps accumulating, so its next good latch covers the span from the old anchor.
                self._set_anchor(0)
            raise RbAmpStaleError("latch produced no fresh period (PERIOD_VALID=0)", self.address,
                                  R.PERIOD_VALID)
        raw = self._period_raw
        self._read_period_block(raw)
        count = u32(raw, 0)
        elapsed = self._elapsed_ms(self._latch_us, self._latch_ms, self._anchor_us, self._anchor_ms,
                                   self._carry_us)
        carry = self._new_carry
        if rebooted:
            # The module restarted during the period: its snapshot covers `count` windows since
            # boot, and everything before the reboot is gone on the module too.
            span = self._windows.span_ms(count)
            if span < elapsed:
                elapsed = span
                carry = 0
        else:
            self._windows.add(elapsed, count)
        dst = p.raw
        channels = self.channels
        for k in range(4):
            src = _PERIOD_FLOAT_OFFSETS[k]
            for i in range(4):
                dst[4 * k + i] = raw[src + i]
        counters = self.energy.consumption
        for ch in range(channels):
            milliwatts = f32_milli(raw, _PERIOD_FLOAT_OFFSETS[ch])
            if milliwatts > 0:
                counters[ch].add(milliwatts, elapsed)
        self._set_anchor(carry)
        self._latched = False
        self._note_counted(raw)
        p.valid = True
        p.commit_count = count
        p.dt_ms = elapsed
        p.rebooted = rebooted
        p.ticks_ms = self._latch_ms
        return p

    def _read_period_block(self, raw):
        attempt = 0
        while True:
            if self._burst:
                self._read(R.PERIOD_BLOCK, raw)
            else:
                self._read_block(R.PERIOD_COMMIT_CNT, raw, 0, 4)
                for k in range(4):
                    if k < 3 and k >= self.channels:
                        continue
                    off = _PERIOD_FLOAT_OFFSETS[k]
                    self._read_block(R.PERIOD_BLOCK + off, raw, off, 4)
            bad = False
            for k in range(4):
                if not f32_plausible(raw, _PERIOD_FLOAT_OFFSETS[k], EXP_WATTS, 1):
                    bad = True
            if not bad:
                return
            self.stats.rejected += 1
            if attempt >= self.retries:
                raise RbAmpIOError("implausible period snapshot kept coming back", self.address,
                                   R.PERIOD_BLOCK)
            attempt += 1
            self.clock.sleep_ms(self.retry_ms)

    def _check_reboot(self):
        """RESET_OCCURRED or uptime going backwards: the module restarted since we last looked."""
        flags = self._read_u8(R.EVENT_FLAGS)
        uptime = self._read_uptime()
        rebooted = bool(flags & R.EVENT_RESET_OCCURRED) or uptime < self._last_uptime
        self._last_uptime = uptime
        if rebooted:
            self.stats.reboots += 1
            if flags & R.EVENT_RESET_OCCURRED:
                self._write_u8(R.EVENT_FLAGS, R.EVENT_RESET_OCCURRED)
            self._restore_ram_settings()
        return rebooted

    # ------------------------------------------------------------------ RT sampling for import/export
    def sample_bidirectional(self, into=None):
        """Read the RT block and integrate signed power since the previous sample into
        ``energy.imported`` / ``energy.exported`` (the master-side split the BASIC tier needs).
        Call it at the module's 5 Hz (after each DRDY). Returns the snapshot it filled."""
        snap = self.read_all(into if into is not None else self._sample)
        clock = self.clock
        now_us = clock.ticks_us()
        now_ms = clock.ticks_ms()
        if not self._sample_started:
            self._sample_started = True
        else:
            elapsed = self._elapsed_ms(now_us, now_ms, self._sample_us, self._sample_ms, self._sample_carry)
            self._sample_carry = self._new_carry
            raw = snap.raw
            energy = self.energy
            for ch in range(self.channels):
                milliwatts = f32_milli(raw, 4 * (_RT_POWER + ch))
                if milliwatts > 0:
                    energy.imported[ch].add(milliwatts, elapsed)
                elif milliwatts < 0:
                    energy.exported[ch].add(-milliwatts, elapsed)
        self._sample_us = now_us
        self._sample_ms = now_ms
        return snap

    def restart_sampling(self):
        """Forget the previous sample time (after a pause, so the gap is not integrated)."""
        self._sample_started = False
        self._sample_carry = 0

    # ------------------------------------------------------------------ DRDY
    def attach_drdy(self, pin, trigger=None):
        """Wake on the module's DRDY falling edge. The handler only sets a flag (no bus access)."""
        self._drdy_flag = make_flag()
        self._drdy_pin = pin
        trig = trigger if trigger is not None else getattr(pin, "IRQ_FALLING", 2)
        try:
            pin.irq(handler=self._drdy_handler, trigger=trig, hard=True)
        except TypeError:
            # ESP32's Pin.irq has no hard= argument (its handlers are always scheduled)
            pin.irq(handler=self._drdy_handler, trigger=trig)

    def _on_drdy(self, pin):
        self._drdy_ms = self.clock.ticks_ms()
        self._drdy_edges = (self._drdy_edges + 1) & 0x3FFFFFFF
        self._drdy_flag.set()

    def _drdy_pending(self):
        return self._drdy_edges != self._drdy_seen

    async def wait_drdy(self, timeout_ms=DRDY_TIMEOUT_MS):
        """Wait for the next RT commit. True on a DRDY edge; False when none came in time (an edge
        was lost, or an event in EVENT_MASK holds the line low): the caller simply reads anyway."""
        clock = self.clock
        if self._drdy_flag is None:
            await clock.asleep_ms(R.WINDOW_MS)
            return False
        if self._drdy_pin.value() == 0 and not self._drdy_pending():
            # held low by a masked event: no edges will come, pace by the window instead
            await clock.asleep_ms(R.WINDOW_MS)
            return False
        got = await clock.wait_event(self._drdy_flag, timeout_ms, self._drdy_check)
        self._drdy_seen = self._drdy_edges
        return got

    @property
    def last_latch_ms(self):
        """``ticks_ms`` of the latest LATCH_PERIOD this object sent (begin()'s included)."""
        return self._latch_ms

    @property
    def window_us(self):
        """The module's RT window length in µs as measured by this master (200000 until learned)."""
        return self._windows.window_us

    @property
    def drdy_attached(self):
        return self._drdy_flag is not None

    @property
    def drdy_held_low(self):
        """DRDY reads low: an event in EVENT_MASK holds it (no edges come; not a lost module)."""
        return self._drdy_pin is not None and self._drdy_pin.value() == 0

    @property
    def drdy_edges(self):
        return self._drdy_edges
