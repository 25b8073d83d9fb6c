"""``async for p in dev.stream_period(60)``: an async iterator class (MicroPython has no async
generators). Each step sleeps until the next period boundary, latches, awaits the settle time
(the event loop keeps running) and yields the snapshot.

The interval is any number of seconds from one module window (0.2 s) to an hour, floats
included; it is kept as whole milliseconds, and the boundaries are ticks_ms added up, so a
fractional interval does not drift and wraps of the ticks are harmless.
"""

from rbamp.errors import RbAmpParamError, RbAmpStaleError

MIN_INTERVAL_MS = 200  # one RT window: a shorter period would hold no window
MAX_INTERVAL_MS = 3600000


def interval_ms(interval_s):
    """Seconds (int or float) -> whole ms, checked against one window .. one hour."""
    if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)):
        raise RbAmpParamError("interval_s must be a number of seconds, got %r" % (interval_s,))
    # round half up in integer ms: float32 holds 0.2 as 0.2000000030, 1.1 as 1.0999999
    ms = int(interval_s * 1000 + 0.5) if interval_s >= 0 else -1
    if not MIN_INTERVAL_MS <= ms <= MAX_INTERVAL_MS:
        raise RbAmpParamError("interval_s must be 0.2..3600 s (one module window to an hour), got %r"
                              % (interval_s,))
    return ms


class PeriodStream:
    def __init__(self, dev, interval_s, skip_stale):
        self._dev = dev
        self._interval_ms = interval_ms(interval_s)
        self._skip_stale = skip_stale
        self._next_ms = None

    @property
    def interval_ms(self):
        return self._interval_ms

    def __aiter__(self):
        return self

    async def __anext__(self):
        dev = self._dev
        clock = dev.clock
        while True:
            if self._next_ms is None:
                self._next_ms = clock.ticks_add(clock.ticks_ms(), self._interval_ms)
            wait = clock.ticks_diff(self._next_ms, clock.ticks_ms())
            if wait > 0:
                await clock.asleep_ms(wait)
            elif wait < -self._interval_ms:
                # the loop fell behind by more than a period: start again from now rather than
                # latching back-to-back to catch up
                self._next_ms = clock.ticks_ms()
            self._next_ms = clock.ticks_add(self._next_ms, self._interval_ms)
            try:
                return await dev.aread_period_snapshot()
            except RbAmpStaleError:
                if not self._skip_stale:
                    raise
