"""Integer energy counters.

A float Wh total on the boards (float32) stops counting small increments once it is large: at
10 MWh one ulp is 1 Wh. Counters here hold whole Wh plus a remainder in millijoules and
microjoules, all small ints, so adding a period never allocates and never loses a microjoule.
"""

MJ_PER_WH = 3600000
_CHUNK_MS = 3600000  # keeps watts * seconds within a small int for any plausible power


class EnergyCounter:
    """A non-negative energy total: ``wh`` whole watt-hours + ``mj`` millijoules + ``uj`` microjoules."""

    def __init__(self, mwh=0):
        self.wh = 0
        self.mj = 0
        self.uj = 0
        if mwh:
            self.set_mwh(mwh)

    def add(self, milliwatts, dt_ms):
        """Add ``milliwatts`` (>= 0) sustained for ``dt_ms`` milliseconds."""
        if milliwatts <= 0 or dt_ms <= 0:
            return
        watts = milliwatts // 1000
        mw_part = milliwatts - watts * 1000
        while dt_ms > 0:
            chunk = dt_ms if dt_ms < _CHUNK_MS else _CHUNK_MS
            dt_ms -= chunk
            seconds = chunk // 1000
            ms = chunk - seconds * 1000
            joules = watts * seconds
            millijoules = watts * ms + mw_part * seconds
            uj = self.uj + mw_part * ms
            carry = uj // 1000
            self.uj = uj - carry * 1000
            whole = joules // 3600
            millijoules += (joules - whole * 3600) * 1000 + carry + self.mj
            more = millijoules // MJ_PER_WH
            self.mj = millijoules - more * MJ_PER_WH
            self.wh += whole + more

    def mwh(self):
        """Milliwatt-hours, rounded down (an int; big on 32-bit builds above ~1 MWh)."""
        return self.wh * 1000 + self.mj // 3600

    def set_mwh(self, mwh):
        if mwh < 0:
            raise ValueError("energy cannot be negative")
        self.wh = mwh // 1000
        self.mj = (mwh - self.wh * 1000) * 3600
        self.uj = 0

    def value_wh(self):
        """Watt-hours as a float, for display and publishing only."""
        return self.wh + (self.mj + self.uj / 1000) / MJ_PER_WH

    def copy_from(self, other):
        self.wh = other.wh
        self.mj = other.mj
        self.uj = other.uj


class EnergyMeter:
    """Per-channel counters: consumption from latched periods, import/export from RT sampling.

    ``wh(ch)`` is what the module's BASIC clamp counts (consumption only); ``import_wh``/``export_wh``
    come from ``sample_bidirectional()``, which splits signed RT power on the master.
    """

    def __init__(self, channels):
        self.channels = channels
        self.consumption = [EnergyCounter() for _ in range(channels)]
        self.imported = [EnergyCounter() for _ in range(channels)]
        self.exported = [EnergyCounter() for _ in range(channels)]

    def wh(self, ch):
        return self.consumption[ch].value_wh()

    def import_wh(self, ch):
        return self.imported[ch].value_wh()

    def export_wh(self, ch):
        return self.exported[ch].value_wh()

    def total_wh(self):
        total = 0.0
        for counter in self.consumption:
            total += counter.value_wh()
        return total
