"""Virtual time for the simulator and the code under test.

``VirtualClock`` has the interface of ``rbamp.clock.SystemClock`` but time only moves when told
(``advance_us``/``advance_ms``) or when code sleeps through it. Ticks wrap like the boards'
(2**30 by default), and ``start_us`` lets a test begin just before a wrap.

Listeners (simulated modules) register with ``subscribe(listener)``; a listener has a ``deadline``
attribute (ticks_us value or None) and an ``on_time()`` method. Advancing the clock stops at every
deadline on the way, in order, so events fire at the right virtual instant.

All hot-path state is kept in small ints: advancing by less than the next deadline, reading
ticks and sleeping allocate nothing even on the 32-bit runtime (needed under ``heap_lock``).
Only ``now_us()`` (exact elapsed time, a big int after 17 minutes on mpy32) allocates.
"""

try:
    import asyncio
except ImportError:  # pragma: no cover
    asyncio = None


class VirtualClock:
    def __init__(self, start_us=0, period_bits=30):
        if not 8 <= period_bits <= 62:
            raise ValueError("period_bits must be 8..62")
        self._mask = (1 << period_bits) - 1
        self._half = 1 << (period_bits - 1)
        self._ticks_us = start_us & self._mask
        self._ticks_ms = (start_us // 1000) & self._mask
        self._us_into_ms = start_us % 1000
        self._wraps = 0
        self._start_ticks = self._ticks_us
        self._listeners = []
        self._due_wait = 0
        self._sleepers = []  # wake-up times of tasks sleeping in virtual time
        self.sleeps = 0

    # --- the clock seam -------------------------------------------------------------------
    def ticks_us(self):
        return self._ticks_us

    def ticks_ms(self):
        return self._ticks_ms

    def ticks_diff(self, a, b):
        d = a - b
        if d >= self._half:
            return d - self._mask - 1
        if d < -self._half:
            return d + self._mask + 1
        return d

    def ticks_add(self, t, delta):
        return (t + delta) & self._mask

    def sleep_ms(self, ms):
        self.sleeps += 1
        self.advance_ms(ms)

    def sleep_us(self, us):
        self.sleeps += 1
        self.advance_us(us)

    async def asleep_ms(self, ms):
        """Sleep in virtual time. Concurrent tasks share one timeline: a sleeper moves time only
        when its wake-up is the earliest pending one, so two tasks sleeping 60 s take 60 s."""
        self.sleeps += 1
        wake = self.now_us() + int(ms * 1000)
        self._sleepers.append(wake)
        try:
            await asyncio.sleep(0)  # let runnable tasks act at the current instant first
            while wake > min(self._sleepers):
                await asyncio.sleep(0)
            now = self.now_us()
            if wake > now:
                self.advance_us(wake - now)
            # Stay listed for one more pass: a task that sleeps again as soon as it wakes must be
            # queued again before a later sleeper may move time past its next wake-up.
            await asyncio.sleep(0)
        finally:
            self._sleepers.remove(wake)

    async def wait_event(self, flag, timeout_ms, happened):
        """Wait until ``happened()`` or the timeout, moving virtual time deadline by deadline when
        this is the earliest sleeper. ``flag`` (set by the simulated pin) is not awaited: nothing
        but the sleepers moves virtual time."""
        self.sleeps += 1
        wake = self.now_us() + int(timeout_ms * 1000)
        self._sleepers.append(wake)
        try:
            while not happened():
                left = wake - self.now_us()
                if left <= 0:
                    return False
                await asyncio.sleep(0)
                if happened() or wake > min(self._sleepers):
                    continue
                left = wake - self.now_us()
                if left <= 0:
                    continue
                due = self._first_due_within(left)
                self.advance_us(left if due is None else self._due_wait)
            return True
        finally:
            self._sleepers.remove(wake)

    # --- driving time ---------------------------------------------------------------------
    def subscribe(self, listener):
        if listener not in self._listeners:
            self._listeners.append(listener)

    def unsubscribe(self, listener):
        if listener in self._listeners:
            self._listeners.remove(listener)

    def advance_ms(self, ms):
        ms = int(ms)
        # Split so each step stays a small int on 32-bit builds.
        while ms > 100000:
            self.advance_us(100000000)
            ms -= 100000
        if ms > 0:
            self.advance_us(ms * 1000)

    def advance_s(self, seconds):
        while seconds > 0:
            step = 100 if seconds > 100 else seconds
            self.advance_ms(int(step * 1000))
            seconds -= step

    def advance_us(self, us):
        if not isinstance(us, int):
            raise TypeError("advance_us needs an int number of microseconds, got %r" % (us,))
        if us < 0:
            raise ValueError("time cannot go backwards")
        # Deadlines that fall exactly on the end of the advance fire too.
        while True:
            step = us if us < self._half else self._half - 1
            listener = self._first_due_within(step)
            if listener is None:
                self._step(step)
                us -= step
                if us <= 0:
                    return
                continue
            wait = self._due_wait
            self._step(wait)
            us -= wait
            listener.on_time()

    def _first_due_within(self, span):
        best = None
        best_wait = 0
        for listener in self._listeners:
            deadline = listener.deadline
            if deadline is None:
                continue
            wait = self.ticks_diff(deadline, self._ticks_us)
            if wait < 0:
                wait = 0
            if wait <= span and (best is None or wait < best_wait):
                best = listener
                best_wait = wait
        # the wait goes in an attribute: returning a tuple would allocate under heap_lock
        self._due_wait = best_wait
        return best

    def _step(self, us):
        room = self._mask - self._ticks_us
        if us > room:
            self._ticks_us = us - room - 1
            self._wraps += 1
        else:
            self._ticks_us += us
        self._us_into_ms += us
        if self._us_into_ms >= 1000:
            ms = self._us_into_ms // 1000
            self._us_into_ms -= ms * 1000
            room = self._mask - self._ticks_ms
            if ms > room:
                self._ticks_ms = ms - room - 1
            else:
                self._ticks_ms += ms

    def now_us(self):
        """Exact virtual microseconds since the clock was created (allocates on 32-bit)."""
        return self._wraps * (self._mask + 1) + self._ticks_us - self._start_ticks

    def now_s(self):
        return self.now_us() / 1000000


class RealClock:
    """Wall-clock time for ``make run``: the system clock seam plus ``now_us()``.

    ``now_us`` accumulates tick differences, so it must be read at least once per half tick period
    (the simulated modules read it on every bus transaction, several times a second).
    """

    def __init__(self):
        from rbamp.clock import SYSTEM_CLOCK

        base = SYSTEM_CLOCK
        self.ticks_us = base.ticks_us
        self.ticks_ms = base.ticks_ms
        self.ticks_diff = base.ticks_diff
        self.ticks_add = base.ticks_add
        self.sleep_ms = base.sleep_ms
        self.sleep_us = base.sleep_us
        self.asleep_ms = base.asleep_ms
        self.wait_event = base.wait_event
        self._last = base.ticks_us()
        self._elapsed = 0

    def now_us(self):
        now = self.ticks_us()
        self._elapsed += self.ticks_diff(now, self._last)
        self._last = now
        return self._elapsed

    def now_s(self):
        return self.now_us() / 1000000
