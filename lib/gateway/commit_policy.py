"""When the gateway commits its totals to the energy journal.

Every commit costs flash wear; every uncommitted milliwatt-hour is lost by a power cut. The
default policy commits when

- a counter would pass ``step`` (5000 mWh = 5 Wh of growth since the last commit) with the next
  metering step: it commits once ``growth + max(last increment, headroom) > step``, or at the
  latest when the growth reached ``step``. Waiting for the growth to *reach* 5 Wh would lose up
  to 5 Wh plus one step's energy; ``headroom`` (1022 mWh: 3.68 kW, a 16 A circuit, for 1 s)
  keeps the loss within ``step`` as long as the gateway hands totals over at least once a second
  and no step adds more than ``max(headroom, the previous step's growth)``. ``anticipate=False``
  makes it a plain ">= step" threshold;
- ``interval_ms`` (60 s) passed since the last commit and anything changed (a counter or the
  backlog position);
- the gateway shuts down in order or is about to reset on purpose, if anything changed.

The gateway also commits after every period latch and at a mains loss (see gateway.metering);
those reasons are its own, ``changed()`` tells whether such a commit has anything to keep.

Usage::

    policy = CommitPolicy(store.counters)
    policy.committed(state.totals, state.backlog_seq)     # after load(), or zeros
    ...
    reason = policy.due(totals, backlog_seq)              # after each metering step
    if reason:
        store.commit(totals, backlog_seq, reason)
        policy.committed(totals, backlog_seq)

Time comes from a clock with ``ticks_ms()`` and ``ticks_diff()`` (``rbamp.clock`` by default),
wrap-safe: elapsed time is latched once it reaches the interval, so a quiet week does not wrap
the tick difference around.
"""

from .store import REASON_GROWTH, REASON_INTERVAL, REASON_RESET, REASON_SHUTDOWN

DEFAULT_STEP = 5000
DEFAULT_INTERVAL_MS = 60000
DEFAULT_HEADROOM = 1022


class CommitPolicy:
    def __init__(self, counters, step=DEFAULT_STEP, interval_ms=DEFAULT_INTERVAL_MS,
                 headroom=DEFAULT_HEADROOM, anticipate=True, clock=None):
        if counters < 1:
            raise ValueError("counters must be at least 1")
        if step < 1:
            raise ValueError("step must be a positive number of counter units")
        if not 0 <= headroom < step:
            raise ValueError("headroom must be in 0 .. step-1")
        if interval_ms < 1 or interval_ms >= (1 << 29):
            # ticks_diff on the boards only spans 2**29 ms.
            raise ValueError("interval_ms must be in 1 .. 2**29-1")
        if clock is None:
            from rbamp.clock import SYSTEM_CLOCK

            clock = SYSTEM_CLOCK
        self.counters = counters
        self.step = step
        self.interval_ms = interval_ms
        self.headroom = headroom
        self.anticipate = anticipate
        self._clock = clock
        self._base = [0] * counters
        self._previous = [0] * counters
        self._base_backlog = 0
        self._since = clock.ticks_ms()
        self._interval_passed = False

    def committed(self, totals, backlog_seq=None):
        """The totals are durable now: they become the baseline and the interval restarts.

        ``backlog_seq`` None keeps the backlog baseline as it was.
        """
        if len(totals) != self.counters:
            # the journal's layout changed (a module joined it): a new baseline of another size
            self.counters = len(totals)
            self._base = [0] * self.counters
            self._previous = [0] * self.counters
        for i in range(self.counters):
            self._base[i] = totals[i]
            self._previous[i] = totals[i]
        if backlog_seq is not None:
            self._base_backlog = backlog_seq
        self._since = self._clock.ticks_ms()
        self._interval_passed = False

    def due(self, totals, backlog_seq=None):
        """REASON_GROWTH, REASON_INTERVAL or 0 (not now). Call it after every metering step."""
        if len(totals) != self.counters:
            return 0  # a layout change: the gateway commits it with its own reason
        step = self.step
        headroom = self.headroom
        changed = backlog_seq is not None and backlog_seq != self._base_backlog
        reason = 0
        base = self._base
        previous = self._previous
        for i in range(self.counters):
            value = totals[i]
            grown = value - base[i]
            increment = value - previous[i]
            previous[i] = value
            if grown:
                changed = True
                if increment < headroom:
                    increment = headroom
                if grown >= step or (self.anticipate and grown + increment > step):
                    reason = REASON_GROWTH
        if reason:
            return reason
        if not self._interval_passed:
            elapsed = self._clock.ticks_diff(self._clock.ticks_ms(), self._since)
            if elapsed >= self.interval_ms:
                self._interval_passed = True
        if changed and self._interval_passed:
            return REASON_INTERVAL
        return 0

    def changed(self, totals, backlog_seq=None):
        """True if a counter or the backlog position differs from the last commit."""
        if backlog_seq is not None and backlog_seq != self._base_backlog:
            return True
        if len(totals) != self.counters:
            return True
        for i in range(self.counters):
            if totals[i] != self._base[i]:
                return True
        return False

    def at_shutdown(self, totals, backlog_seq=None):
        """REASON_SHUTDOWN if an orderly shutdown should commit first, else 0."""
        return REASON_SHUTDOWN if self.changed(totals, backlog_seq) else 0

    def before_reset(self, totals, backlog_seq=None):
        """REASON_RESET if a deliberate reset should commit first, else 0."""
        return REASON_RESET if self.changed(totals, backlog_seq) else 0
