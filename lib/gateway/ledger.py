"""The totals ledger: one module's energy counters, what they are called and their journal order.

Three counters per channel, integer milliwatt-hours (``rbamp.energy``):

- **import**: consumption counted from the module's latched period averages (its BASIC clamp
  counts consumption only). This is the published ``import_wh`` and the journal's import slot.
- **export**: export from the master-side split of signed RT power sampled at 5 Hz.
- **sampled import**: the same split's positive side. Never published or kept: it only measures
  what the module's own accumulator lost (a module reboot, a mains collapse before the latch).

The journal, the commit policy and the retained MQTT totals hold ``[import, export]`` per
channel over the modules of the layout; ``span()``, ``IMPORT`` and ``EXPORT`` are that order, and
nothing else spells it out.

    ledger = Ledger(2)
    dev.energy = ledger.meter          # the driver counts into it
    ledger.restore([12000, 0, 500, 20])   # from the journal: never lowers a counter
    out = []
    ledger.append_totals(out)          # [ch0 import, ch0 export, ch1 import, ch1 export]
"""

COUNTERS_PER_CHANNEL = 2
IMPORT = 0
EXPORT = 1


def span(channels):
    """How many journal counters a module with ``channels`` channels holds."""
    return COUNTERS_PER_CHANNEL * channels


def slot(ch, which):
    """Index of channel ``ch``'s IMPORT or EXPORT counter within one module's totals."""
    return COUNTERS_PER_CHANNEL * ch + which


class Ledger:
    """One module's counters. ``meter`` is the driver's ``EnergyMeter``: the driver adds latched
    periods to ``meter.consumption`` and RT samples to ``meter.imported``/``meter.exported``."""

    def __init__(self, channels, meter=None):
        self.channels = channels
        if meter is None:
            # imported here: the journal's modules (store, layout) need only the order above,
            # and importing the driver package from them nests too deep for a board's stack
            from rbamp.energy import EnergyMeter

            meter = EnergyMeter(channels)
        self.meter = meter
        # at the last good latch: per channel the sampled import and the counted import, so a
        # module reboot or a mains collapse can be measured from our own samples
        self.latch_marked = False
        self._sampled_at_latch = [0] * channels
        self._counted_at_latch = [0] * channels
        self.refilled_mwh = 0  # energy put back after module reboots, all channels
        # import of the open period counted early from our samples when the mains collapsed
        self.provisional_mwh = [0] * channels

    # ------------------------------------------------------------------ names
    def import_mwh(self, ch):
        return self.meter.consumption[ch].mwh()

    def export_mwh(self, ch):
        return self.meter.exported[ch].mwh()

    def sampled_import_mwh(self, ch):
        return self.meter.imported[ch].mwh()

    def _raise_import(self, ch, mwh):
        counter = self.meter.consumption[ch]
        counter.set_mwh(counter.mwh() + mwh)

    # ------------------------------------------------------------------ journal order
    def append_totals(self, out):
        """Append ``[import, export]`` per channel to ``out`` (the journal's order)."""
        for ch in range(self.channels):
            out.append(self.import_mwh(ch))
            out.append(self.export_mwh(ch))

    def restore(self, totals):
        """Counters from the journal or the broker (``[import, export]`` per channel): a counter
        is raised to the given value, never lowered; a short list leaves the rest as they are."""
        meter = self.meter
        for ch in range(self.channels):
            if slot(ch, EXPORT) < len(totals):
                if totals[slot(ch, IMPORT)] > meter.consumption[ch].mwh():
                    meter.consumption[ch].set_mwh(totals[slot(ch, IMPORT)])
                if totals[slot(ch, EXPORT)] > meter.exported[ch].mwh():
                    meter.exported[ch].set_mwh(totals[slot(ch, EXPORT)])

    # ------------------------------------------------------------------ latch accounting
    def mark_latch(self):
        """A good latch (or a begin): what our samples and the module have counted until now."""
        for ch in range(self.channels):
            self._sampled_at_latch[ch] = self.sampled_import_mwh(ch)
            self._counted_at_latch[ch] = self.import_mwh(ch)
        self.latch_marked = True

    def fill_reboot_gap(self):
        """A module that rebooted lost what it had accumulated since the last good latch; our 5 Hz
        samples measured that span too, so import gets the part the module no longer reported
        (never less than the module's own figure). Returns ``[(ch, mWh put back)]``."""
        filled = []
        for ch in range(self.channels):
            sampled = self.sampled_import_mwh(ch) - self._sampled_at_latch[ch]
            counted = self.import_mwh(ch) - self._counted_at_latch[ch]
            if sampled > counted:
                self._raise_import(ch, sampled - counted)
                self.refilled_mwh += sampled - counted
                filled.append((ch, sampled - counted))
        return filled

    def count_open_period_early(self):
        """The mains collapsed: count the open period's import from our samples now (it is
        settled against the module's figure at the next latch, if we survive)."""
        for ch in range(self.channels):
            early = (self.sampled_import_mwh(ch) - self._sampled_at_latch[ch]
                     - self.provisional_mwh[ch])
            if early > 0:
                self._raise_import(ch, early)
                self.provisional_mwh[ch] += early

    def settle_provisional(self):
        """The latch after an early count: the module's latched figure (E) replaces the part
        counted from our samples (P), counted once: max(P, E)."""
        for ch in range(self.channels):
            early = self.provisional_mwh[ch]
            if early:
                latched = self.import_mwh(ch) - self._counted_at_latch[ch] - early
                if latched > 0:
                    counter = self.meter.consumption[ch]
                    counter.set_mwh(counter.mwh() - (latched if latched < early else early))
                self.provisional_mwh[ch] = 0

    def drop_provisional(self):
        """The module rebooted after an early count: its latch holds nothing of that period, so
        the early count stands as it is."""
        for ch in range(self.channels):
            self.provisional_mwh[ch] = 0
