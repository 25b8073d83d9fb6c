"""Exact ground-truth energy of a simulated module.

Every processed 200 ms window adds its power (as the module measured it, rounded to a micro-watt)
times its duration to integer accumulators in micro-watt microseconds, split into consumption
(import) and export, so a simulated year stays exact on every runtime, float32 included.
"""

_UW_US_PER_WH = 3600 * 1000000 * 1000000


class TruthSnapshot:
    def __init__(self, imported, exported, t_us):
        self.imported = imported
        self.exported = exported
        self.t_us = t_us


class GroundTruth:
    def __init__(self, channels):
        self.channels = channels
        self._import = [0] * channels
        self._export = [0] * channels
        self.windows = 0
        self.t_us = 0
        self.dropped_us = 0

    def drop_span(self, span_us):
        """Time the module measured but discarded (a v1.2 empty latch restarts its window)."""
        if span_us > 0:
            self.dropped_us += span_us

    def add_windows(self, power_uw, count, window_us, end_us):
        for ch in range(self.channels):
            p = power_uw[ch]
            if p >= 0:
                self._import[ch] += p * count * window_us
            else:
                self._export[ch] += -p * count * window_us
        self.windows += count
        self.t_us = end_us

    def import_wh(self, ch):
        return self._import[ch] / _UW_US_PER_WH

    def export_wh(self, ch):
        return self._export[ch] / _UW_US_PER_WH

    def import_uwh(self, ch):
        """Exact consumption in micro-watt-hours (integer, rounded down)."""
        return self._import[ch] // (3600 * 1000000)

    def export_uwh(self, ch):
        return self._export[ch] // (3600 * 1000000)

    def snapshot(self):
        return TruthSnapshot(list(self._import), list(self._export), self.t_us)

    def import_wh_since(self, snap, ch):
        return (self._import[ch] - snap.imported[ch]) / _UW_US_PER_WH

    def export_wh_since(self, snap, ch):
        return (self._export[ch] - snap.exported[ch]) / _UW_US_PER_WH
