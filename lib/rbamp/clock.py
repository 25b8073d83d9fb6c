"""The one time seam of the driver: every tick read, sleep and async sleep goes through a clock.

A clock object offers ``ticks_us()``, ``ticks_ms()``, ``ticks_diff(a, b)``, ``ticks_add(t, d)``,
``sleep_ms(ms)``, ``sleep_us(us)`` and the coroutines ``asleep_ms(ms)`` and
``wait_event(flag, timeout_ms, happened)``. ``SYSTEM_CLOCK`` uses
``time.ticks_*`` on MicroPython; on CPython it emulates them with a 2**30 wrap, the period of
the 32-bit boards, so wrap bugs show on the host too. Tests pass a virtual clock instead.
"""

import asyncio
import time

# Ticks wrap at 2**30 on the boards. Kept as MASK/HALF so arithmetic stays in 31-bit small ints.
TICKS_MASK_30 = 0x3FFFFFFF
TICKS_HALF_30 = 0x20000000


def _emulated_ticks_diff(a, b):
    d = a - b
    if d >= TICKS_HALF_30:
        return d - TICKS_MASK_30 - 1
    if d < -TICKS_HALF_30:
        return d + TICKS_MASK_30 + 1
    return d


def _emulated_ticks_add(t, delta):
    return (t + delta) & TICKS_MASK_30


class SystemClock:
    """The board's (or host's) own time. Methods are plain attributes so a call allocates nothing."""

    def __init__(self):
        if hasattr(time, "ticks_us"):
            self.ticks_us = time.ticks_us
            self.ticks_ms = time.ticks_ms
            self.ticks_diff = time.ticks_diff
            self.ticks_add = time.ticks_add
            # the board's functions shadow the CPython fallback methods below (their parameter
            # names differ, which is all pyright objects to)
            self.sleep_ms = time.sleep_ms  # pyright: ignore[reportAttributeAccessIssue]
            self.sleep_us = time.sleep_us  # pyright: ignore[reportAttributeAccessIssue]
            self._native = True
        else:
            self.ticks_diff = _emulated_ticks_diff
            self.ticks_add = _emulated_ticks_add
            self._native = False

    # CPython fallbacks; on MicroPython the instance attributes above shadow these.
    def ticks_us(self):
        return (time.monotonic_ns() // 1000) & TICKS_MASK_30  # pyright: ignore[reportAttributeAccessIssue]

    def ticks_ms(self):
        return (time.monotonic_ns() // 1000000) & TICKS_MASK_30  # pyright: ignore[reportAttributeAccessIssue]

    def sleep_ms(self, ms):
        if ms > 0:
            time.sleep(ms / 1000)

    def sleep_us(self, us):
        if us > 0:
            time.sleep(us / 1000000)

    async def asleep_ms(self, ms):
        if self._native:
            await asyncio.sleep_ms(ms)
        else:
            await asyncio.sleep(ms / 1000)

    async def wait_event(self, flag, timeout_ms, happened):
        """Wait until ``happened()`` or timeout_ms pass; return ``happened()``.

        ``flag`` wakes the wait. It may still be set from an event that ``happened()`` already
        reported (returned at once, without waiting on the flag): such a wake-up with nothing
        new is not the end of the wait."""
        if happened():
            return True
        deadline = self.ticks_add(self.ticks_ms(), timeout_ms)
        while True:
            left = self.ticks_diff(deadline, self.ticks_ms())
            if left <= 0:
                return happened()
            try:
                if self._native:
                    await asyncio.wait_for_ms(flag.wait(), left)
                else:
                    await asyncio.wait_for(flag.wait(), left / 1000)
            except asyncio.TimeoutError:
                return happened()
            if happened():
                return True


SYSTEM_CLOCK = SystemClock()
