"""Result objects that the hot paths fill in place (``read_all(into=snap)``) without allocating."""

from rbamp.floatbits import float_array


class FloatSlice:
    """``snap.power[ch]``: an indexable window onto a float array (made once per snapshot)."""

    def __init__(self, floats, start, length):
        self._floats = floats
        self._start = start
        self._length = length

    def __getitem__(self, index):
        if not 0 <= index < self._length:
            raise IndexError("channel %d out of range (0..%d)" % (index, self._length - 1))
        return self._floats[self._start + index]

    def __len__(self):
        return self._length

    def list(self):
        return [self._floats[self._start + i] for i in range(self._length)]


class RbAmpSnapshot:
    """One RT block: voltage, peaks, and per channel current, power and power factor.

    The bus writes the module's 56 bytes straight into ``raw``, which aliases the float array, so
    filling a snapshot allocates nothing; reading a field allocates only the float it returns.
    """

    def __init__(self, channels=3):
        self.channels = channels
        self._floats, self.raw = float_array(14)
        floats = self._floats
        self.current = FloatSlice(floats, 2, channels)
        self.current_peak = FloatSlice(floats, 5, channels)
        self.power = FloatSlice(floats, 8, channels)
        self.power_factor = FloatSlice(floats, 11, channels)
        self.ticks_ms = 0

    @property
    def voltage(self):
        return self._floats[0]

    @property
    def voltage_peak(self):
        return self._floats[1]

    def total_power(self):
        total = 0.0
        for ch in range(self.channels):
            total += self._floats[8 + ch]
        return total

    def to_dict(self):
        return {
            "voltage": self.voltage,
            "voltage_peak": self.voltage_peak,
            "current": self.current.list(),
            "current_peak": self.current_peak.list(),
            "power": self.power.list(),
            "power_factor": self.power_factor.list(),
        }


class RbAmpPeriodSnapshot:
    """One latched period: ``valid``, ``avg_p[ch]`` (W, consumption), ``max_p`` (ch0), the module's
    ``commit_count`` of 200 ms windows, the master's ``dt_ms`` it was integrated over, and
    ``rebooted`` when the module restarted during the period (then ``dt_ms`` is the span the module
    measured since its boot)."""

    def __init__(self, channels=3):
        self.channels = channels
        self._floats, self.raw = float_array(4)
        self.avg_p = FloatSlice(self._floats, 0, channels)
        self.valid = False
        self.commit_count = 0
        self.dt_ms = 0
        self.rebooted = False
        self.ticks_ms = 0

    @property
    def max_p(self):
        return self._floats[3]

    def energy_wh(self, ch):
        """The period's consumption energy on channel ch, as a float (display only)."""
        return self._floats[ch] * self.dt_ms / 3600000

    def to_dict(self):
        return {
            "valid": self.valid,
            "avg_p": self.avg_p.list(),
            "max_p": self.max_p,
            "commit_count": self.commit_count,
            "dt_ms": self.dt_ms,
            "rebooted": self.rebooted,
        }


class RbAmpSample:
    """One 5 Hz sample from the module's digest: ``voltage_dv`` (int, 0.1 V), ``power[ch]`` (int,
    signed W), the digest's commit counter ``seq`` and the master's ``ticks_ms``. Filled in place
    by ``sample_bidirectional(into=sample)`` without allocating; ``voltage`` (V) is a float made
    on reading. The digest rounds power to whole watts and voltage to 0.1 V."""

    def __init__(self, channels=3):
        self.channels = channels
        self.voltage_dv = 0
        self.power = [0] * channels
        self.seq = 0
        self.ticks_ms = 0

    @property
    def voltage(self):
        return self.voltage_dv / 10

    def total_power(self):
        total = 0
        for ch in range(self.channels):
            total += self.power[ch]
        return total

    def to_dict(self):
        return {"voltage": self.voltage, "power": list(self.power), "seq": self.seq}
