"""The 5 Hz sample: signed power per channel and the voltage from the module's digest, integrated
on the master into ``energy.imported`` / ``energy.exported`` (the BASIC tier clamps export away in
its own periods, so the split has to happen here).

The digest (0x70) starts ``[status][seq]`` and packs the fields DIGEST_CONFIG selects; the driver
always selects voltage (u16, 0.1 V) and power (i16 W per channel) and reads only the prefix up to
the last power field: 10 bytes on a UI3 instead of the 56-byte RT block. On v1.3 that is one
read-frozen burst. v1.2 reads it byte by byte between two reads of ``seq``: equal, no commit fell
inside. Power in the digest is rounded to whole watts: each sample is off by at most 0.5 W, with
no bias, so the error of the integrated energy shrinks relative to the energy.
"""

from rbamp import registers as R
from rbamp.errors import RbAmpIOError
from rbamp.floatbits import f32_milli, is_ghost
from rbamp.rtread import DIGEST_SEQ, RT_POWER, TORN_ATTEMPTS
from rbamp.ticks import TickSpan

DIGEST_CURRENT = 0x01
DIGEST_VOLTAGE = 0x02
DIGEST_POWER = 0x04
_MAX_DECIVOLTS = 10000  # 1000 V: anything above is a corrupted read, not mains


def sample_bits(has_voltage):
    """The DIGEST_CONFIG bits the 5 Hz sample needs on this variant."""
    return DIGEST_VOLTAGE | DIGEST_POWER if has_voltage else DIGEST_POWER


class Sampler:
    def __init__(self, io, clock, stats, rt):
        self.io = io
        self.clock = clock
        self.stats = stats
        self.rt = rt
        self.span = TickSpan(clock)
        self.channels = 0
        self._byte = bytearray(1)
        self._buf = bytearray(R.DIGEST_LEN)
        self._config = -1
        self._voltage_at = -1
        self._power_at = 2

    def configure(self, channels):
        self.channels = channels
        self._config = -1  # lay the digest out again on the next read

    def _layout(self, config):
        pos = 2
        if config & DIGEST_CURRENT:
            pos += 2 * self.channels
        self._voltage_at = -1
        if config & DIGEST_VOLTAGE:
            self._voltage_at = pos
            pos += 2
        self._power_at = pos
        end = pos + 2 * self.channels
        self._buf = bytearray(end if end < R.DIGEST_LEN else R.DIGEST_LEN)
        self._config = config

    # ------------------------------------------------------------------ reads
    def read(self, sample, config):
        """Fill ``sample`` from the digest laid out by ``config`` (which holds sample_bits()).

        False when the digest shows no voltage on a module that has one: the module lost
        DIGEST_CONFIG (a reboot resets it to 0; the period latch notices the reboot only later)
        and the config is written again here, or the digest was not composed with it yet (it is
        at each commit), or the mains are really gone. The caller then takes this one sample from
        the RT block."""
        if config != self._config:
            self._layout(config)
        buf = self._buf
        voltage_at = self._voltage_at
        attempt = 0
        while True:
            if self.io.burst:
                self.io.read(R.DIGEST, buf)
            else:
                self._read_v12(buf, voltage_at)
            decivolts = buf[voltage_at] | (buf[voltage_at + 1] << 8) if voltage_at >= 0 else 0
            if decivolts <= _MAX_DECIVOLTS and not is_ghost(buf, 0):
                break
            self.stats.rejected += 1
            if attempt >= self.io.retries:
                raise RbAmpIOError("implausible digest kept coming back", self.io.address, R.DIGEST)
            attempt += 1
            self.clock.sleep_ms(self.io.retry_ms)
        sample.voltage_dv = decivolts
        power = sample.power
        at = self._power_at
        for ch in range(self.channels):
            raw = buf[at] | (buf[at + 1] << 8)
            power[ch] = raw - 0x10000 if raw >= 0x8000 else raw
            at += 2
        sample.seq = buf[1]
        sample.ticks_ms = self.clock.ticks_ms()
        if voltage_at >= 0 and decivolts == 0:
            if self.io.read_u8(R.DIGEST_CONFIG) != config:
                self.io.write_u8(R.DIGEST_CONFIG, config)
            return False
        return True

    def _read_v12(self, buf, voltage_at):
        """The fields byte by byte between two reads of seq (v1.2: the digest is not read-frozen)."""
        io = self.io
        rt = self.rt
        byte = self._byte
        first = voltage_at if voltage_at >= 0 else self._power_at
        for _ in range(TORN_ATTEMPTS):
            seq = rt.read_seq()
            for i in range(first, len(buf)):  # voltage (if any) and power are adjacent
                io.read(R.DIGEST + i, byte)
                buf[i] = byte[0]
            if rt.read_seq() == seq:
                buf[0] = 0
                buf[1] = seq
                return
            self.stats.torn += 1
        raise RbAmpIOError("digest kept changing while read byte by byte", io.address, DIGEST_SEQ)

    # ------------------------------------------------------------------ energy
    def _elapsed_ms(self, now_us, now_ms):
        """ms since the previous sample (-1 for the first one); the span restarts now."""
        span = self.span
        if not span.started:
            span.start(now_us, now_ms)
            return -1
        elapsed = span.elapsed_ms(now_us, now_ms)
        span.start(now_us, now_ms, span.next_carry_us)
        return elapsed

    def integrate_sample(self, sample, energy, now_us, now_ms):
        """Add the power of ``sample``, taken at ticks ``now_us``/``now_ms`` (when its read began:
        a read that takes longer does not shorten the span), since the previous sample."""
        elapsed = self._elapsed_ms(now_us, now_ms)
        if elapsed < 0:
            return
        power = sample.power
        for ch in range(self.channels):
            watts = power[ch]
            if watts > 0:
                energy.imported[ch].add(watts * 1000, elapsed)
            elif watts < 0:
                energy.exported[ch].add(-watts * 1000, elapsed)

    def integrate_snapshot(self, snap, energy, now_us, now_ms):
        elapsed = self._elapsed_ms(now_us, now_ms)
        if elapsed < 0:
            return
        raw = snap.raw
        for ch in range(self.channels):
            milliwatts = f32_milli(raw, 4 * (RT_POWER + ch))
            if milliwatts > 0:
                energy.imported[ch].add(milliwatts, elapsed)
            elif milliwatts < 0:
                energy.exported[ch].add(-milliwatts, elapsed)
