"""Fault injection for the simulated module and bus."""

from rbampsim.loads import Prng


class ModuleFaults:
    """Per-module faults, decided per transaction from a deterministic PRNG.

    ``nack_rate``: probability that a transaction is NACKed. ``add_emi_burst``: a window of virtual
    time in which most transactions fail (relay switching an inductive load). ``ghost``: the ESP32
    quirk, after a NACK the next read returns stale buffer bytes (the float 0x3C2FFB3F) without error.
    """

    def __init__(self, seed=1):
        self.nack_rate = 0.0
        self.ghost = False
        self.bursts = []
        self._rng = Prng(seed)
        self.injected_nacks = 0
        self.ghost_reads = 0

    @property
    def active(self):
        return self.nack_rate > 0 or bool(self.bursts)

    def add_emi_burst(self, start_us, duration_us, fail_rate=0.67):
        if duration_us <= 0 or not 0.0 <= fail_rate <= 1.0:
            raise ValueError("burst needs a positive duration and a fail rate in 0..1")
        self.bursts.append((start_us, start_us + duration_us, fail_rate))

    def clear(self):
        self.nack_rate = 0.0
        self.ghost = False
        self.bursts = []

    def should_nack(self, now_us):
        rate = self.nack_rate
        for start, end, burst_rate in self.bursts:
            if start <= now_us < end and burst_rate > rate:
                rate = burst_rate
        if rate <= 0:
            return False
        if self._rng.uniform() < rate:
            self.injected_nacks += 1
            return True
        return False


class BusFaults:
    """Whole-bus faults: ``stuck`` makes every transaction time out (SDA held low)."""

    def __init__(self):
        self.stuck = False
