"""The period latch and its energy: LATCH_PERIOD, the snapshot, the master's dt, module reboots,
and taking over a sequence a restarted master left running (see ``rbamp.resume``).

Energy is ``avg_p x dt`` with dt between consecutive latches on the master's own clock
(``TickSpan`` from the anchor latch). A stale latch moves the anchor on v1.2 (which drops the
stale span) but not on v1.3 (which keeps accumulating); a module reboot limits the period to the
windows the module counted since its boot.
"""

from rbamp import registers as R
from rbamp.errors import RbAmpError, RbAmpIOError, RbAmpStaleError
from rbamp.floatbits import EXP_WATTS, f32_milli, f32_plausible, u32
from rbamp.resume import snapshot_fingerprint
from rbamp.ticks import TickSpan

# Period block offsets (from PERIOD_COMMIT_CNT): avg ch0, ch1, ch2, max.
PERIOD_FLOAT_OFFSETS = bytes((R.PERIOD_AVG_P - R.PERIOD_BLOCK, R.PERIOD_AVG_P_CH1 - R.PERIOD_BLOCK,
                              R.PERIOD_AVG_P_CH2 - R.PERIOD_BLOCK, R.PERIOD_MAX_P - R.PERIOD_BLOCK))


class PeriodLatch:
    """Latch bookkeeping of one module. ``restore_ram`` is called after a detected reboot."""

    def __init__(self, io, clock, stats, rt, windows, restore_ram):
        self.io = io
        self.clock = clock
        self.stats = stats
        self.rt = rt
        self.restore_ram = restore_ram
        self.version = 0
        self.channels = 0
        self.latched = False
        self.latch_us = 0
        self.latch_ms = 0
        self.anchor = TickSpan(clock)
        self.windows = windows  # a WindowLearner, shared with the commit phase
        self.last_uptime = 0
        # what a restarted master needs to take over (see rbamp.resume)
        self.counted_uptime_s = 0
        self.counted_fingerprint = 0
        self._status = bytearray(6)
        self._raw = bytearray(R.PERIOD_BLOCK_LEN)
        self._missed_raw = bytearray(R.PERIOD_BLOCK_LEN)

    def configure(self, version, channels):
        self.version = version
        self.channels = channels

    # ------------------------------------------------------------------ latch
    def send_latch(self):
        self.io.write_u8(R.COMMAND, R.CMD_LATCH_PERIOD)
        self.mark_latched()

    def mark_latched(self):
        clock = self.clock
        self.latch_us = clock.ticks_us()
        self.latch_ms = clock.ticks_ms()
        self.latched = True

    def wait_settled(self):
        elapsed = self.clock.ticks_diff(self.clock.ticks_ms(), self.latch_ms)
        if elapsed < R.LATCH_SETTLE_MS:
            self.clock.sleep_ms(R.LATCH_SETTLE_MS - elapsed)

    def _set_anchor(self, carry_us):
        self.anchor.start(self.latch_us, self.latch_ms, carry_us)

    def read_uptime(self):
        word = self.io.word
        if self.io.burst:
            self.io.read(R.UPTIME_S, word)
        else:
            self.rt.read_word_agreed(R.UPTIME_S, word, 0)
        return u32(word, 0)

    def _read_status(self):
        """ERROR (status[0]) and PERIOD_VALID (status[5]) after a latch: one 6-byte burst on v1.3."""
        status = self._status
        if self.io.burst:
            self.io.read(R.ERROR, status)
        else:
            status[0] = self.io.read_u8(R.ERROR)
            status[5] = self.io.read_u8(R.PERIOD_VALID)

    def check_reboot(self):
        """RESET_OCCURRED or uptime going backwards: the module restarted since we last looked."""
        flags = self.io.read_u8(R.EVENT_FLAGS)
        uptime = self.read_uptime()
        rebooted = bool(flags & R.EVENT_RESET_OCCURRED) or uptime < self.last_uptime
        self.last_uptime = uptime
        if rebooted:
            self.stats.reboots += 1
            if flags & R.EVENT_RESET_OCCURRED:
                self.io.write_u8(R.EVENT_FLAGS, R.EVENT_RESET_OCCURRED)
            self.restore_ram()
        return rebooted

    def collect(self, p, energy):
        """Read the latched snapshot into ``p`` and add its consumption energy."""
        self._read_status()
        error = self._status[0]
        valid = self._status[5]
        rebooted = self.check_reboot()
        address = self.io.address
        if error == R.ERROR_NOT_READY:
            # the module refused the latch (booting): nothing was swapped, the anchor stays, unless
            # it rebooted: its accumulation restarted, so the next period must not reach back
            self.latched = False
            if rebooted:
                self._set_anchor(0)
            self.stats.stale += 1
            p.valid = False
            raise RbAmpStaleError("module not ready, latch refused", address)
        if not valid:
            self.latched = False
            self.stats.stale += 1
            p.valid = False
            if rebooted or self.version < R.VERSION_V13:
                # v1.2 drops the stale span (and a reboot starts a new sequence): move the anchor.
                # v1.3 keeps accumulating, so its next good latch covers the span from the old anchor.
                self._set_anchor(0)
            raise RbAmpStaleError("latch produced no fresh period (PERIOD_VALID=0)", address,
                                  R.PERIOD_VALID)
        raw = self._raw
        self._read_block(raw)
        count = u32(raw, 0)
        elapsed = self.anchor.elapsed_ms(self.latch_us, self.latch_ms)
        carry = self.anchor.next_carry_us
        if rebooted:
            # The module restarted during the period: its snapshot covers `count` windows since
            # boot, and everything before the reboot is gone on the module too.
            span = self.windows.span_ms(count)
            if span < elapsed:
                elapsed = span
                carry = 0
        else:
            self.windows.add(elapsed, count)
        dst = p.raw
        for k in range(4):
            src = PERIOD_FLOAT_OFFSETS[k]
            for i in range(4):
                dst[4 * k + i] = raw[src + i]
        counters = energy.consumption
        for ch in range(self.channels):
            milliwatts = f32_milli(raw, PERIOD_FLOAT_OFFSETS[ch])
            if milliwatts > 0:
                counters[ch].add(milliwatts, elapsed)
        self._set_anchor(carry)
        self.latched = False
        self._note_counted(raw)
        p.valid = True
        p.commit_count = count
        p.dt_ms = elapsed
        p.rebooted = rebooted
        p.ticks_ms = self.latch_ms
        return p

    def _read_block(self, raw):
        io = self.io
        attempt = 0
        while True:
            if io.burst:
                io.read(R.PERIOD_BLOCK, raw)
            else:
                io.read_block(R.PERIOD_COMMIT_CNT, raw, 0, 4)
                for k in range(4):
                    if k < 3 and k >= self.channels:
                        continue
                    off = PERIOD_FLOAT_OFFSETS[k]
                    io.read_block(R.PERIOD_BLOCK + off, raw, off, 4)
            bad = False
            for k in range(4):
                if not f32_plausible(raw, PERIOD_FLOAT_OFFSETS[k], EXP_WATTS, 1):
                    bad = True
            if not bad:
                return
            self.stats.rejected += 1
            if attempt >= io.retries:
                raise RbAmpIOError("implausible period snapshot kept coming back", io.address,
                                   R.PERIOD_BLOCK)
            attempt += 1
            self.clock.sleep_ms(io.retry_ms)

    # ------------------------------------------------------------------ start of a sequence
    def prime(self):
        """The first latch covers an unknown span since power-on: it only starts the sequence."""
        self.send_latch()
        self.clock.sleep_ms(R.LATCH_SETTLE_MS)
        self.latched = False
        self._set_anchor(0)
        self._note_counted(self._raw if self._latched_snapshot(self._raw) else None)

    def _latched_snapshot(self, raw):
        """Read the snapshot registers into ``raw``; True if they hold a valid period."""
        self._read_status()
        if self._status[0] == R.ERROR_NOT_READY or not self._status[5]:
            return False
        self._read_block(raw)
        return True

    def _note_counted(self, raw):
        """The snapshot in ``raw`` (None: none) is the last one this master accounted for."""
        self.counted_uptime_s = self.last_uptime
        if raw is not None:
            self.counted_fingerprint = snapshot_fingerprint(raw, PERIOD_FLOAT_OFFSETS)

    def _count_windows(self, raw, windows, energy):
        """Energy of a latched period whose start the master did not see: windows x length."""
        dt_ms = self.windows.span_ms(windows)
        counters = energy.consumption
        for ch in range(self.channels):
            milliwatts = f32_milli(raw, PERIOD_FLOAT_OFFSETS[ch])
            if milliwatts > 0:
                counters[ch].add(milliwatts, dt_ms)
        self.stats.recovered_periods += 1

    def resume(self, window_us, uptime_s, fingerprint, module_rebooted, energy):
        """Take over a sequence a previous master left running (see RbAmp.begin)."""
        self.windows.seed(window_us)
        rebooted = module_rebooted or self.last_uptime < uptime_s
        missed = self._missed_raw
        have_missed = False
        ambiguous = False
        if not rebooted and self._latched_snapshot(missed):
            # the registers hold either the period counted last or one latched after it that
            # the previous master never counted (it stopped between latch and commit)
            if snapshot_fingerprint(missed, PERIOD_FLOAT_OFFSETS) != fingerprint:
                have_missed = True
            else:
                ambiguous = True  # the same figures again (a steady load): decided by uptime below
        uptime_before = self.last_uptime
        self.send_latch()
        self.clock.sleep_ms(R.LATCH_SETTLE_MS)
        self.latched = False
        raw = self._raw
        opened = self._latched_snapshot(raw)
        open_windows = u32(raw, 0) if opened else 0
        if ambiguous:
            # Seconds since the counted latch, from the module's own uptime (1 s resolution):
            # with a missed period in between they also cover its windows.
            since_ms = (uptime_before - uptime_s) * 1000
            missed_windows = u32(missed, 0)
            expected_ms = self.windows.span_ms(open_windows + missed_windows // 2)
            have_missed = since_ms > expected_ms + 1500
        if have_missed:
            self._count_windows(missed, u32(missed, 0), energy)
        if opened:
            self._count_windows(raw, open_windows, energy)
        self.last_uptime = self.read_uptime()
        self._set_anchor(0)
        self._note_counted(raw if opened else None)
        self.stats.resumed += 1

    def require_latched(self):
        if not self.latched:
            raise RbAmpError("nothing latched: call latch_period() first", self.io.address)
