"""Load profiles: what the simulated module measures, window by window.

A profile answers two questions for a time ``t_us`` (virtual microseconds since the clock started):
``fill(t_us, out)`` writes the electrical values of the 200 ms window starting at ``t_us`` into a
``WindowValues``; ``segment_end(t_us)`` says until when those values stay the same (None: forever), which
lets the module process long runs of identical windows in closed form.

Powers are per channel, in W, signed: negative is export. Results are identical on every runtime
(the noise comes from our own integer PRNG, not ``random``).
"""

import math

WINDOW_US = 200000


class WindowValues:
    def __init__(self, channels):
        self.voltage = 0.0
        self.freq = 50
        self.power = [0.0] * channels
        self.pf = [1.0] * channels


class Prng:
    """Park-Miller minimal standard generator: deterministic and identical on every runtime."""

    def __init__(self, seed):
        self.state = (seed % 2147483646) + 1

    def next(self):
        self.state = (self.state * 48271) % 2147483647
        return self.state

    def uniform(self):
        return self.next() / 2147483647

    def gauss(self):
        # Irwin-Hall approximation: good enough for load noise, exact to reproduce everywhere.
        total = 0.0
        for _ in range(12):
            total += self.uniform()
        return total - 6.0


def _as_list(powers):
    if isinstance(powers, (int, float)):
        return [float(powers)]
    return [float(p) for p in powers]


class Constant:
    def __init__(self, powers, voltage=230.0, pf=1.0, freq=50):
        self.powers = _as_list(powers)
        self.voltage = float(voltage)
        self.pf = float(pf)
        if freq not in (50, 60):
            raise ValueError("mains frequency must be 50 or 60 Hz")
        self.freq = freq

    def fill(self, t_us, out):
        out.voltage = self.voltage
        out.freq = self.freq
        for ch in range(len(out.power)):
            out.power[ch] = self.powers[ch] if ch < len(self.powers) else 0.0
            out.pf[ch] = self.pf

    def segment_end(self, t_us):
        return None


class Schedule:
    """Step function: ``steps`` is a list of (t_s, powers) sorted by time; before the first step: 0 W."""

    def __init__(self, steps, voltage=230.0, pf=1.0, freq=50):
        self.times_us = [int(t * 1000000) for t, _ in steps]
        self.powers = [_as_list(p) for _, p in steps]
        for i in range(1, len(self.times_us)):
            if self.times_us[i] <= self.times_us[i - 1]:
                raise ValueError("schedule times must increase")
        self.voltage = float(voltage)
        self.pf = float(pf)
        self.freq = freq

    def _index(self, t_us):
        index = -1
        for i, start in enumerate(self.times_us):
            if start <= t_us:
                index = i
            else:
                break
        return index

    def fill(self, t_us, out):
        out.voltage = self.voltage
        out.freq = self.freq
        index = self._index(t_us)
        powers = self.powers[index] if index >= 0 else ()
        for ch in range(len(out.power)):
            out.power[ch] = powers[ch] if ch < len(powers) else 0.0
            out.pf[ch] = self.pf

    def segment_end(self, t_us):
        index = self._index(t_us)
        if index + 1 < len(self.times_us):
            return self.times_us[index + 1]
        return None


class Noisy:
    """Adds Gaussian noise (sigma in W) to another profile, a fresh draw every window."""

    def __init__(self, base, sigma_w, seed=1):
        self.base = base if hasattr(base, "fill") else Constant(base)
        self.sigma = float(sigma_w)
        self.seed = seed

    def fill(self, t_us, out):
        self.base.fill(t_us, out)
        rng = Prng(self.seed * 1000003 + t_us // WINDOW_US)
        for ch in range(len(out.power)):
            out.power[ch] += self.sigma * rng.gauss()

    def segment_end(self, t_us):
        return (t_us // WINDOW_US + 1) * WINDOW_US


class Household:
    """A realistic day, repeating: ch0 is the house (base load, cooking, evening peak, appliance
    bursts), ch1 a PV inverter that exports around midday (negative power). Values change once a
    minute, so a simulated year is processed quickly. ``start_hour`` sets the local time at t=0."""

    MINUTE_US = 60000000

    def __init__(self, seed=1, start_hour=7.0, voltage=230.0, freq=50, pv_peak_w=2500.0):
        self.seed = seed
        self.start_us = int(start_hour * 3600 * 1000000)
        self.voltage = float(voltage)
        self.freq = freq
        self.pv_peak = float(pv_peak_w)

    def _house_w(self, minute_of_day, rng):
        hour = minute_of_day / 60.0
        load = 150.0
        if 6.5 <= hour < 8.5:
            load += 900.0
        if 11.5 <= hour < 13.0:
            load += 1200.0
        if 17.5 <= hour < 22.0:
            load += 1400.0 * math.sin(math.pi * (hour - 17.5) / 4.5)
        if rng.uniform() < 0.04:
            load += 2000.0  # kettle, oven, washing machine heater
        return load + 40.0 * rng.gauss()

    def _pv_w(self, minute_of_day, day, rng):
        hour = minute_of_day / 60.0
        if hour < 7.0 or hour >= 19.0:
            return 0.0
        clouds = 0.6 + 0.4 * Prng(self.seed * 7919 + day).uniform()
        return -self.pv_peak * clouds * math.sin(math.pi * (hour - 7.0) / 12.0) * (0.9 + 0.1 * rng.uniform())

    def fill(self, t_us, out):
        local_us = t_us + self.start_us
        minute = local_us // self.MINUTE_US
        day = minute // 1440
        minute_of_day = minute % 1440
        rng = Prng(self.seed * 1000003 + minute)
        out.voltage = self.voltage + 2.0 * rng.gauss()
        out.freq = self.freq
        values = (self._house_w(minute_of_day, rng), self._pv_w(minute_of_day, day, rng), 0.0)
        for ch in range(len(out.power)):
            out.power[ch] = values[ch] if ch < 3 else 0.0
            out.pf[ch] = 0.93 if ch == 0 else 0.99

    def segment_end(self, t_us):
        local_us = t_us + self.start_us
        return (local_us // self.MINUTE_US + 1) * self.MINUTE_US - self.start_us
