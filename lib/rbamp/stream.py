"""``async for p in dev.stream_period(60)``: an async iterator class (MicroPython has no async
generators). Each step sleeps until the next period boundary, latches, awaits the settle time
(the event loop keeps running) and yields the snapshot."""

from rbamp.errors import RbAmpStaleError


class PeriodStream:
    def __init__(self, dev, interval_s, skip_stale):
        if not 1 <= interval_s <= 3600:
            from rbamp.errors import RbAmpParamError

            raise RbAmpParamError("interval_s must be 1..3600")
        self._dev = dev
        self._interval_ms = int(interval_s * 1000)
        self._skip_stale = skip_stale
        self._next_ms = None

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
            self._next_ms = clock.ticks_add(self._next_ms, self._interval_ms)
            try:
                return await dev.aread_period_snapshot()
            except RbAmpStaleError:
                if not self._skip_stale:
                    raise
