"""One simulated rbAmp module: register page, 200 ms RT windows, period latch, commands, boot.

Time is lazy: elapsed windows are committed when the module is touched (a bus transaction, or a
virtual-clock deadline), in closed form for runs of identical windows. Reading registers whose
windows are already committed copies bytes and allocates nothing.
"""

import math
import struct

from rbampsim import heap
from rbampsim import registers as R
from rbampsim.faults import ModuleFaults
from rbampsim.loads import Constant, WindowValues
from rbampsim.pin import SimPin
from rbampsim.truth import GroundTruth

BOOT_NACK_US = 10000  # power-up: no ACK for ~10 ms
RESET_NACK_US = 300000  # RESET command: answers again after ~300 ms
RT_VALID_US = 60000  # RT data valid ~50-80 ms after boot
ERROR_EVENT_DELAY_US = 200000  # a rejected write raises EVENT_FLAGS.ERROR ~200 ms later
MAGIC_TTL_US = 5000000
LONG_WAKEUP_US = 1 << 28  # keep tick comparisons far from the wrap
LATCH_CLOCK_SLOWDOWN = 0.77  # PERIOD_LATCH_MS runs 25-30 % slow
SQRT2 = math.sqrt(2.0)
RESET_CAUSE_IWDG = 0x08



def float32(value):
    """The value rounded to IEEE-754 single precision, as the module stores it."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


class _SavedConfig:
    """What SAVE_USER_CONFIG (or SAVE_GAINS on v1.2) keeps in the module's flash."""

    def __init__(self, addr):
        self.sensor_class = 0
        self.ct_models = [0, 0, 0]
        self.fleet_config = 0
        self.group_id = 0
        self.label = bytes(R.LABEL_LEN)
        self.addr = addr
        self.blank = True


class SimModule:
    def __init__(self, variant="UI1", version=R.VERSION_V13, addr=0x50, clock=None, load=None,
                 fresh_flash=False, uid=None, seed=1, tier=0):
        if variant not in R.VARIANTS:
            raise ValueError("unknown variant %r (UI1, UI2, UI3, I1, I2, I3)" % (variant,))
        if version not in (R.VERSION_V12, R.VERSION_V13):
            raise ValueError("version must be 0x03 (v1.2) or 0x04 (v1.3)")
        if not 0x08 <= addr <= 0x77:
            raise ValueError("address must be in 0x08..0x77")
        if clock is None:
            from rbampsim.clock import VirtualClock

            clock = VirtualClock()
        self.variant = variant
        self.version = version
        self.variant_code, self.channels, self.has_voltage = R.VARIANTS[variant]
        self.clock = clock
        self.load = load if load is not None else Constant([0.0] * self.channels)
        self.tier = tier
        self.seed = seed
        self.uid = bytes(uid) if uid is not None else bytes((seed * 37 + i * 11 + 1) & 0xFF for i in range(R.UID_LEN))
        self.regs = bytearray(256)
        self._truth = GroundTruth(self.channels)
        self.faults = ModuleFaults(seed)
        self.drdy = SimPin(self)
        self.flash_writes = 0
        self.boots = 0
        self.present = True
        self._answering = False
        self.pointer = 0  # register pointer for plain readfrom/writeto
        self.ghost_pending = False
        self._saved = _SavedConfig(addr)
        if not fresh_flash:
            self._saved.blank = False
        self._values = WindowValues(self.channels)
        self._power_uw = [0] * 3
        self._acc_uw = [0] * 3
        self._acc_count = 0
        self._acc_max = None
        self._last_good_latch_us = 0
        self._last_latch_us = 0
        self._pending_snapshot = None
        self._timers = {}
        self._digest_seq = 0
        self._reboots = []
        self.addr = addr
        self.active_fleet = 0
        self._boot(R.RESET_CAUSE_POR, BOOT_NACK_US)
        if hasattr(clock, "subscribe"):
            clock.subscribe(self)

    @property
    def truth(self):
        """Exact ground truth, with every window completed by now committed."""
        self.sync()
        return self._truth

    # ------------------------------------------------------------------ time
    def _now(self):
        return self.clock.now_us()

    def sync(self):
        """Commit whatever is due; cheap and allocation-free when nothing is."""
        clock = self.clock
        now = clock.ticks_us()
        if clock.ticks_diff(now, self._window_ticks) < 0 and clock.ticks_diff(now, self._event_ticks) < 0:
            return
        levels = heap.release()
        try:
            self._process(self._now())
        finally:
            heap.restore(levels)

    def on_time(self):
        """VirtualClock deadline callback."""
        levels = heap.release()
        try:
            self._process(self._now())
        finally:
            heap.restore(levels)

    def drdy_changed(self):
        self._reschedule()

    def _process(self, now_us):
        while True:
            next_timer = self._next_timer()
            horizon = now_us if next_timer is None or next_timer[1] > now_us else next_timer[1]
            self._commit_windows_until(horizon)
            if next_timer is None or next_timer[1] > now_us:
                break
            name, at = next_timer
            del self._timers[name]
            self._fire(name, at)
        self._reschedule()

    def _next_timer(self):
        best = None
        for name in self._timers:
            at = self._timers[name]
            if best is None or at < best[1]:
                best = (name, at)
        return best

    def _reschedule(self):
        clock = self.clock
        now_us = self._now()
        ticks_now = clock.ticks_us()
        event_us = now_us + LONG_WAKEUP_US
        nxt = self._next_timer()
        if nxt is not None and nxt[1] < event_us:
            event_us = nxt[1]
        self._event_ticks = clock.ticks_add(ticks_now, max(0, event_us - now_us))
        window_in = self._next_window_us - now_us
        if window_in < 0:
            window_in = 0
        if window_in > LONG_WAKEUP_US:
            window_in = LONG_WAKEUP_US
        self._window_ticks = clock.ticks_add(ticks_now, window_in)
        # Per-window deadlines only when someone listens to DRDY; otherwise windows stay lazy.
        if self.drdy.has_handler and self.present and self._next_window_us - now_us < event_us - now_us:
            self.deadline = self._window_ticks
        else:
            self.deadline = self._event_ticks

    # ------------------------------------------------------------------ boot and reset
    def _boot(self, cause, nack_us):
        now = self._now()
        self.boots += 1
        self.boot_us = now
        self.answer_from_us = now + nack_us
        self.rt_valid_from_us = now + nack_us + RT_VALID_US - BOOT_NACK_US
        saved = self._saved
        self.addr = saved.addr
        self.active_fleet = saved.fleet_config & 0x01
        regs = self.regs
        for i in range(256):
            regs[i] = 0
        regs[R.VERSION] = self.version
        regs[R.TOPOLOGY] = self.channels
        regs[R.SENSOR_CLASS] = saved.sensor_class
        regs[R.FLEET_CONFIG] = saved.fleet_config
        regs[R.GROUP_ID] = saved.group_id
        regs[R.EVENT_FLAGS] = R.EVENT_RESET_OCCURRED
        self._put_u16(R.THRESH_I_HI, 0xFFFF)
        self._put_u16(R.THRESH_P_HI, 0xFFFF)
        regs[R.I2C_ADDRESS] = self.addr
        regs[R.RESET_CAUSE] = cause
        for ch in range(3):
            regs[R.CT_MODEL_CH0 + ch] = saved.ct_models[ch] if ch < self.channels else 0
        regs[R.PRODUCT_ID] = 0x01
        regs[R.HW_VARIANT] = self.variant_code
        regs[R.FW_TIER] = self.tier
        capability = R.CAPABILITY_UI if self.has_voltage else R.CAPABILITY_I
        if self.version < R.VERSION_V13:
            capability &= ~R.CAP_SAVE_USER_CONFIG
        self._put_u16(R.CAPABILITY, capability)
        self._put_u16(R.GC_TICK, 0xFFFF)
        regs[R.UID:R.UID + R.UID_LEN] = self.uid
        regs[R.LABEL:R.LABEL + R.LABEL_LEN] = saved.label
        for i in range(4):
            self._put_u16(R.ADC_MEAN + 2 * i, 2048)
        regs[R.ERROR] = R.ERROR_FLASH_BLANK if saved.blank else R.ERROR_OK
        self._staged_addr = None
        self._magic_until = None
        self._acc_uw = [0] * 3
        self._acc_count = 0
        self._acc_max = None
        self._pending_snapshot = None
        self._last_latch_us = now
        self._last_good_latch_us = now
        self._digest_seq = 0
        self._timers = {}
        for at in self._reboots:
            self._timers["reboot@%d" % at] = at
        self._timers["ready"] = self.rt_valid_from_us
        self._timers["answer"] = self.answer_from_us
        self._answering = False
        self._next_window_us = now + R.WINDOW_US
        self._update_status()
        self._reschedule()

    def power_cycle(self):
        """Power lost and back now: cold boot (POR)."""
        self.sync()
        self._boot(R.RESET_CAUSE_POR, BOOT_NACK_US)

    def reboot_at(self, t_us):
        """Schedule a spontaneous reboot (watchdog) at virtual time t_us."""
        self._reboots.append(t_us)
        self._timers["reboot@%d" % t_us] = t_us
        self._reschedule()

    def unplug(self):
        self.sync()
        self.present = False
        self._reschedule()

    def plug(self):
        self.present = True
        self._boot(R.RESET_CAUSE_POR, BOOT_NACK_US)

    def answers(self):
        """True when the module ACKs its address right now (call after sync())."""
        return self.present and self._answering

    # ------------------------------------------------------------------ windows
    def _commit_windows_until(self, horizon_us):
        if not self.present:
            # No power, no windows: the schedule restarts at the next boot.
            if self._next_window_us <= horizon_us:
                self._next_window_us = horizon_us + R.WINDOW_US
            return
        load = self.load
        values = self._values
        while self._next_window_us <= horizon_us:
            start = self._next_window_us - R.WINDOW_US
            load.fill(start, values)
            count = (horizon_us - self._next_window_us) // R.WINDOW_US + 1
            seg_end = load.segment_end(start)
            if seg_end is not None:
                in_segment = (seg_end - start + R.WINDOW_US - 1) // R.WINDOW_US
                if in_segment < 1:
                    in_segment = 1
                if in_segment < count:
                    count = in_segment
            self._apply_windows(values, count)

    def _apply_windows(self, values, count):
        end_us = self._next_window_us + (count - 1) * R.WINDOW_US
        power_uw = self._power_uw
        channels = self.channels
        voltage = float32(values.voltage) if self.has_voltage else 0.0
        regs_p = []
        for ch in range(channels):
            p = float32(values.power[ch])
            power_uw[ch] = int(p * 1000000)
            regs_p.append(p if self.has_voltage else 0.0)
        self._truth.add_windows(power_uw, count, R.WINDOW_US, end_us)
        for ch in range(channels):
            measured = int(regs_p[ch] * 1000000)
            self._acc_uw[ch] += (measured if measured > 0 else 0) * count
        self._acc_count += count
        if self._acc_max is None or regs_p[0] > self._acc_max:
            self._acc_max = regs_p[0]
        self._write_rt(values, voltage, regs_p)
        self._digest_seq = (self._digest_seq + count) & 0xFF
        self._check_thresholds(regs_p)
        self._compose_digest()
        self._put_u32(R.UPTIME_S, (end_us - self.boot_us) // 1000000)
        self._put_u32(R.PERIOD_MS, R.WINDOW_US // 1000)
        self._next_window_us = end_us + R.WINDOW_US
        self._update_status()
        if self.present and self.regs[R.EVENT_FLAGS] & self.regs[R.EVENT_MASK] == 0:
            self.drdy.pulse()

    def _write_rt(self, values, voltage, regs_p):
        regs = self.regs
        self._put_f32(R.U_RMS, voltage)
        self._put_f32(R.U_PEAK, voltage * SQRT2)
        nominal_u = values.voltage if values.voltage > 0 else 230.0
        for ch in range(3):
            if ch < self.channels:
                pf = values.pf[ch]
                apparent = abs(values.power[ch]) / (abs(pf) if pf != 0 else 1.0)
                current = apparent / nominal_u
                reactive = math.sqrt(max(0.0, apparent * apparent - values.power[ch] * values.power[ch]))
                shown_pf = pf if self.has_voltage else 0.0
                shown_q = reactive if self.has_voltage else 0.0
            else:
                current = shown_pf = shown_q = 0.0
            self._put_f32(R.I_RMS0 + 4 * ch, current)
            self._put_f32(R.I_PEAK0 + 4 * ch, current * SQRT2)
            self._put_f32(R.P0 + 4 * ch, regs_p[ch] if ch < self.channels else 0.0)
            self._put_f32(R.PF0 + 4 * ch, shown_pf)
            self._put_f32(R.Q0 + 4 * ch, shown_q)
        regs[R.AC_FREQ] = values.freq
        self._put_u16(R.AC_PERIOD, 1000000 // (2 * values.freq))
        regs[R.V03_STATUS] = 0x01

    def _check_thresholds(self, regs_p):
        regs = self.regs
        thresh_i = self._get_u16(R.THRESH_I_HI)
        thresh_p = self._get_u16(R.THRESH_P_HI)
        flags = regs[R.EVENT_FLAGS]
        for ch in range(self.channels):
            if thresh_i != 0xFFFF:
                current = struct.unpack_from("<f", regs, R.I_RMS0 + 4 * ch)[0]
                if current * 100 > thresh_i:
                    flags |= R.EVENT_THRESH_I
            if thresh_p != 0xFFFF and regs_p[ch] > thresh_p:
                flags |= R.EVENT_THRESH_P
        regs[R.EVENT_FLAGS] = flags

    def _compose_digest(self):
        regs = self.regs
        config = regs[R.DIGEST_CONFIG]
        out = bytearray(R.DIGEST_LEN)
        out[0] = regs[R.STATUS]
        out[1] = self._digest_seq
        pos = 2
        channels = self.channels
        fields = []
        if config & 0x01:
            for ch in range(channels):
                current = struct.unpack_from("<f", regs, R.I_RMS0 + 4 * ch)[0]
                fields.append(("<H", min(0xFFFF, int(current * 100 + 0.5))))
        if config & 0x02:
            voltage = struct.unpack_from("<f", regs, R.U_RMS)[0]
            fields.append(("<H", min(0xFFFF, int(voltage * 10 + 0.5))))
        if config & 0x04:
            for ch in range(channels):
                p = struct.unpack_from("<f", regs, R.P0 + 4 * ch)[0]
                fields.append(("<h", max(-32768, min(32767, int(round(p))))))
        if config & 0x08:
            for ch in range(channels):
                pf = struct.unpack_from("<f", regs, R.PF0 + 4 * ch)[0]
                fields.append(("<B", max(0, min(100, int(round(abs(pf) * 100))))))
        for fmt, value in fields:
            size = struct.calcsize(fmt)
            if pos + size > R.DIGEST_LEN:
                break
            struct.pack_into(fmt, out, pos, value)
            pos += size
        regs[R.DIGEST:R.DIGEST + R.DIGEST_LEN] = out

    # ------------------------------------------------------------------ timers
    def _fire(self, name, at):
        regs = self.regs
        if name == "answer":
            self._answering = True
        elif name == "ready":
            self._update_status()
        elif name == "latch_ready":
            snap = self._pending_snapshot
            self._pending_snapshot = None
            if snap is not None:
                self._publish_snapshot(snap)
        elif name == "error_event":
            regs[R.EVENT_FLAGS] |= R.EVENT_ERROR
            self._update_status()
        elif name == "magic_expiry":
            self._magic_until = None
        elif name.startswith("reboot@"):
            if at in self._reboots:
                self._reboots.remove(at)
            if self.present:
                self._boot(RESET_CAUSE_IWDG, BOOT_NACK_US)

    # ------------------------------------------------------------------ register access
    def read_into(self, reg, buf, burst):
        """Copy registers into buf: a burst on v1.3 auto-increments, v1.2 repeats the first byte."""
        regs = self.regs
        n = len(buf)
        if self.ghost_pending:
            self.ghost_pending = False
            ghost = R.GHOST_FLOAT_BYTES
            for i in range(n):
                buf[i] = ghost[i & 3]
            self.faults.ghost_reads += 1
            return
        if burst and self.version >= R.VERSION_V13:
            for i in range(n):
                buf[i] = regs[(reg + i) & 0xFF]
        else:
            value = regs[reg & 0xFF]
            for i in range(n):
                buf[i] = value

    def write(self, reg, data, offset=0):
        """A write transaction: only the first data byte is taken (no write auto-increment)."""
        if len(data) <= offset:
            return
        levels = heap.release()
        try:
            self._write_byte(reg & 0xFF, data[offset])
        finally:
            heap.restore(levels)

    def _reject(self):
        self.regs[R.ERROR] = R.ERROR_BAD_PARAM
        self._timers["error_event"] = self._now() + ERROR_EVENT_DELAY_US
        self._update_status()
        self._reschedule()

    def _accept(self):
        self.regs[R.ERROR] = R.ERROR_OK
        self._update_status()

    def _ready(self):
        return self._now() >= self.rt_valid_from_us

    def _write_byte(self, reg, value):
        regs = self.regs
        if reg not in R.WRITABLE:
            self._reject()
            return
        if reg == R.COMMAND:
            self._command(value)
        elif reg == R.EVENT_FLAGS:
            regs[R.EVENT_FLAGS] &= ~value & 0xFF
            self._accept()
        elif reg == R.SENSOR_CLASS:
            if value > R.SENSOR_CLASS_BUILTIN:
                self._reject()
                return
            if value != regs[R.SENSOR_CLASS]:
                regs[R.SENSOR_CLASS] = value
                regs[R.CT_MODEL] = 0
                regs[R.EVENT_FLAGS] |= R.EVENT_CONFIG_CHANGED
            self._accept()
        elif reg == R.CT_MODEL:
            if value not in R.CT_MODEL_CODES:
                self._reject()
                return
            regs[R.CT_MODEL] = value
            self._accept()
        elif reg == R.I2C_ADDRESS:
            if not 0x08 <= value <= 0x77:
                self._reject()
                return
            self._staged_addr = value
            regs[R.I2C_ADDRESS] = value
            self._accept()
        elif reg == R.ADDR_COMMIT_MAGIC:
            if value != R.ADDR_MAGIC:
                self._reject()
                return
            self._magic_until = self._now() + MAGIC_TTL_US
            self._timers["magic_expiry"] = self._magic_until
            self._accept()
            self._reschedule()
        else:
            regs[reg] = value
            self._accept()
        self._update_status()

    def _command(self, opcode):
        regs = self.regs
        if not self._ready() and opcode != R.CMD_RESET:
            regs[R.ERROR] = R.ERROR_NOT_READY
            self._update_status()
            return
        if opcode == R.CMD_RESET:
            self._boot(R.RESET_CAUSE_SW, RESET_NACK_US)
        elif opcode == R.CMD_LATCH_PERIOD:
            self._latch(self._now())
            self._accept()
        elif R.CMD_SET_CT_MODEL_CH0 <= opcode <= R.CMD_SET_CT_MODEL_CH0 + 2:
            ch = opcode - R.CMD_SET_CT_MODEL_CH0
            code = regs[R.CT_MODEL]
            if ch >= self.channels or regs[R.SENSOR_CLASS] != R.SENSOR_CLASS_SCT013 or code not in R.CT_MODEL_CODES:
                self._reject()
                return
            regs[R.CT_MODEL_CH0 + ch] = code
            regs[R.EVENT_FLAGS] |= R.EVENT_CONFIG_CHANGED
            self._accept()
        elif opcode == R.CMD_COMMIT_ADDR:
            if self._magic_until is None or self._now() > self._magic_until or self._staged_addr is None:
                self._reject()
                return
            self._saved.addr = self._staged_addr
            self._saved.blank = False
            self.flash_writes += 1
            self._magic_until = None
            self._timers.pop("magic_expiry", None)
            self._accept()
        elif opcode == R.CMD_CLEAR_ERROR:
            if regs[R.ERROR] != R.ERROR_CLONE:
                regs[R.ERROR] = R.ERROR_OK
            regs[R.EVENT_FLAGS] &= ~R.EVENT_ERROR & 0xFF
            self._timers.pop("error_event", None)
        elif (opcode == R.CMD_SAVE_USER_CONFIG and self.version >= R.VERSION_V13) or (
                opcode == R.CMD_SAVE_GAINS and self.version < R.VERSION_V13):
            self._save_config()
            self._accept()
        else:
            self._reject()
        self._update_status()

    def _save_config(self):
        regs = self.regs
        saved = self._saved
        saved.sensor_class = regs[R.SENSOR_CLASS]
        saved.ct_models = [regs[R.CT_MODEL_CH0 + ch] for ch in range(3)]
        saved.fleet_config = regs[R.FLEET_CONFIG]
        saved.group_id = regs[R.GROUP_ID]
        saved.label = bytes(regs[R.LABEL:R.LABEL + R.LABEL_LEN])
        saved.blank = False
        self.flash_writes += 1
        regs[R.EVENT_FLAGS] |= R.EVENT_CONFIG_CHANGED

    # ------------------------------------------------------------------ period latch
    def _latch(self, now_us):
        count = self._acc_count
        if self.version < R.VERSION_V13:
            span_from = self._last_latch_us
        else:
            span_from = self._last_good_latch_us
        self._last_latch_us = now_us
        if count == 0:
            snap = (0, None, None, 0, 0)
            if self.version < R.VERSION_V13:
                # v1.2 restarts its RT window at an empty latch: the partial window is dropped.
                self._truth.drop_span(now_us - (self._next_window_us - R.WINDOW_US))
                self._next_window_us = now_us + R.WINDOW_US
        else:
            averages = [self._acc_uw[ch] / count / 1000000 for ch in range(3)]
            latch_ms = int((now_us - span_from) / 1000 * LATCH_CLOCK_SLOWDOWN)
            snap = (1, averages, self._acc_max, count, latch_ms)
            self._acc_uw = [0] * 3
            self._acc_count = 0
            self._acc_max = None
            self._last_good_latch_us = now_us
        self._pending_snapshot = snap
        self.regs[R.PERIOD_VALID] = 0  # settling: reads 0 until the snapshot is published
        self._timers["latch_ready"] = now_us + R.LATCH_SETTLE_US
        self._reschedule()

    def latch_by_general_call(self, tick):
        self._latch(self._now())
        self._put_u16(R.GC_TICK, tick)

    def _publish_snapshot(self, snap):
        regs = self.regs
        valid, averages, max_p, count, latch_ms = snap
        regs[R.PERIOD_VALID] = valid
        if valid:
            self._put_f32(R.PERIOD_AVG_P, averages[0])
            self._put_f32(R.PERIOD_AVG_P_CH1, averages[1])
            self._put_f32(R.PERIOD_AVG_P_CH2, averages[2])
            self._put_f32(R.PERIOD_MAX_P, max_p)
            self._put_u32(R.PERIOD_COMMIT_CNT, count)
            self._put_u32(R.PERIOD_LATCH_MS, latch_ms)
            regs[R.EVENT_FLAGS] |= R.EVENT_PERIOD_READY
        self._update_status()

    # ------------------------------------------------------------------ helpers
    def _update_status(self):
        regs = self.regs
        status = 0
        if self._ready():
            status |= R.STATUS_READY
        if regs[R.ERROR] != R.ERROR_OK:
            status |= R.STATUS_ERROR
        if regs[R.EVENT_FLAGS]:
            status |= R.STATUS_EVENTS
        regs[R.STATUS] = status
        held = bool(regs[R.EVENT_FLAGS] & regs[R.EVENT_MASK]) and self.present
        self.drdy.hold_low(held)

    def _put_u16(self, reg, value):
        struct.pack_into("<H", self.regs, reg, value & 0xFFFF)

    def _get_u16(self, reg):
        return self.regs[reg] | (self.regs[reg + 1] << 8)

    def _put_u32(self, reg, value):
        struct.pack_into("<I", self.regs, reg, value & 0xFFFFFFFF)

    def _put_f32(self, reg, value):
        struct.pack_into("<f", self.regs, reg, value)

    def read_reg(self, reg, size=1):
        """White-box helper for tests: the raw register bytes (after committing due windows)."""
        self.sync()
        return bytes(self.regs[reg:reg + size])
