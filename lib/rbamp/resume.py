"""What a restarted master needs to take over a module that kept running.

The module accumulates energy between two LATCH_PERIOD commands whoever sends them. A master that
restarts (crash, watchdog, deploy) would throw that away by priming a new sequence. Instead it
can count what the module holds if it knows three things about the last period it counted:

- the module's UPTIME_S read right after that latch: a smaller uptime now means the module
  rebooted in between (its accumulator then holds only the windows since its boot);
- a fingerprint of that snapshot (commit count, the latched averages and maximum): a snapshot
  with another fingerprint in the registers was latched and never counted (the master died
  between the latch and its commit);
- the module's RT window length as measured by the master's clock: a period recovered this way
  has no master timestamp at its start, so its duration is ``PERIOD_COMMIT_CNT`` windows.

``WindowLearner`` estimates the window length from ordinary periods (master dt over commit
count). Everything here is small-int arithmetic: nothing allocates on 32-bit boards.

    point = (dev.window_us, dev.counted_uptime_s, dev.counted_fingerprint)   # keep durably
    ...                                                                    # after a restart:
    dev.begin(resume=point)       # counts the open period (and a missed one), no priming
"""

NOMINAL_WINDOW_US = 200000
# A module's RT window is nominally 200 ms; its oscillator may be some tens of percent off. A
# sample outside these bounds is a stalled master or a glitch, not the module's clock.
_WINDOW_MIN_US = 100000
_WINDOW_MAX_US = 400000
_HALVE_AT = 16384  # windows (~55 min): older periods weigh half from then on
_NOMINAL_WEIGHT = 300  # windows: one 60 s period
_SEED_WEIGHT = 3000


def snapshot_fingerprint(raw, float_offsets):
    """25-bit hash of the latched fields of a period block: the commit count (bytes 0..3) and
    the floats at ``float_offsets``. Equal snapshots give equal fingerprints, of course; two
    different periods almost never do (see ``RbAmp.begin`` for the tie-break by uptime)."""
    h = 0
    for i in range(4):
        h = _mix(h, raw[i])
    for k in range(len(float_offsets)):  # indexed: iterating a bytes object would allocate
        off = float_offsets[k]
        for i in range(off, off + 4):
            h = _mix(h, raw[i])
    return h


def _mix(h, byte):
    # 25 bits, so h << 5 stays a small int on 32-bit boards (a big int would allocate)
    return ((h << 5) ^ (h >> 20) ^ byte) & 0x1FFFFFF


class WindowLearner:
    """Ratio estimator of the module's window length: sum of master ms over sum of windows.

    One period's ratio is off by up to one window in its commit count (where the latches fall
    between commits), so the estimate starts from a prior: the nominal length weighted as one
    period of 300 windows, or a length kept from earlier runs weighted as 3000 windows."""

    def __init__(self, window_us=NOMINAL_WINDOW_US):
        self.window_us = window_us
        self._set_prior(window_us, _NOMINAL_WEIGHT)

    def _set_prior(self, window_us, weight):
        self.window_us = window_us
        self._windows = weight
        self._ms = window_us * weight // 1000

    def seed(self, window_us):
        """A length known from before (kept durably)."""
        if _WINDOW_MIN_US <= window_us <= _WINDOW_MAX_US:
            self._set_prior(window_us, _SEED_WEIGHT)

    def add(self, elapsed_ms, windows):
        """One ordinary period: ``elapsed_ms`` of master time held ``windows`` RT windows."""
        if windows < 1 or elapsed_ms < 1:
            return
        per = elapsed_ms // windows
        if not _WINDOW_MIN_US // 1000 <= per <= _WINDOW_MAX_US // 1000:
            return
        self._ms += elapsed_ms
        self._windows += windows
        if self._windows >= _HALVE_AT:
            self._ms >>= 1
            self._windows >>= 1
        ms = self._ms
        n = self._windows
        whole = ms // n
        self.window_us = whole * 1000 + (ms - whole * n) * 1000 // n

    def span_ms(self, windows):
        """Master ms covered by ``windows`` RT windows."""
        us = self.window_us
        return windows * (us // 1000) + windows * (us % 1000) // 1000
