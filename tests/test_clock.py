RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from rbamp.clock import SYSTEM_CLOCK
from rbampsim.clock import VirtualClock

MASK = (1 << 30) - 1


def test_virtual_ticks_wrap_and_diff_stay_consistent():
    clock = VirtualClock(start_us=MASK - 500)
    t0 = clock.ticks_us()
    clock.advance_us(1000)
    t1 = clock.ticks_us()
    assert t1 < t0, "ticks_us should have wrapped"
    assert clock.ticks_diff(t1, t0) == 1000
    assert clock.ticks_diff(t0, t1) == -1000
    assert clock.ticks_add(t0, 1000) == t1
    assert clock.now_us() == 1000


def test_virtual_ms_ticks_follow_us():
    clock = VirtualClock(start_us=999)
    m0 = clock.ticks_ms()
    clock.advance_us(1)
    assert clock.ticks_diff(clock.ticks_ms(), m0) == 1
    clock.advance_ms(3 * 3600 * 1000)
    assert clock.ticks_diff(clock.ticks_ms(), m0) == 3 * 3600 * 1000 + 1
    assert clock.now_us() == 3 * 3600 * 1000000 + 1


class _Ticker:
    def __init__(self, clock, every_us):
        self.clock = clock
        self.every = every_us
        self.deadline = clock.ticks_add(clock.ticks_us(), every_us)
        self.fired_at = []

    def on_time(self):
        self.fired_at.append(self.clock.now_us())
        self.deadline = self.clock.ticks_add(self.deadline, self.every)


def test_listeners_fire_in_order_at_their_deadline():
    clock = VirtualClock(start_us=MASK - 300000)
    fast = _Ticker(clock, 200000)
    slow = _Ticker(clock, 500000)
    clock.subscribe(fast)
    clock.subscribe(slow)
    clock.advance_ms(1000)
    assert fast.fired_at == [200000, 400000, 600000, 800000, 1000000]
    assert slow.fired_at == [500000, 1000000]


def test_virtual_advance_allocates_nothing():
    if not xrt.is_micropython():
        raise xrt.Skip("heap_lock exists only on MicroPython")
    import micropython

    clock = VirtualClock(start_us=MASK - 10)
    clock.subscribe(_Ticker(clock, 10000000))
    micropython.heap_lock()
    try:
        for _ in range(1000):
            clock.sleep_ms(1)
            clock.ticks_diff(clock.ticks_us(), clock.ticks_ms())
    finally:
        micropython.heap_unlock()
    assert clock.sleeps == 1000


def test_system_clock_moves_forward_and_wraps_like_the_runtime():
    t0 = SYSTEM_CLOCK.ticks_us()
    m0 = SYSTEM_CLOCK.ticks_ms()
    SYSTEM_CLOCK.sleep_ms(5)
    elapsed_us = SYSTEM_CLOCK.ticks_diff(SYSTEM_CLOCK.ticks_us(), t0)
    elapsed_ms = SYSTEM_CLOCK.ticks_diff(SYSTEM_CLOCK.ticks_ms(), m0)
    assert elapsed_us > 0 and elapsed_ms >= 0, (elapsed_us, elapsed_ms)
    # ticks_add/ticks_diff are inverse across the wrap whatever the runtime's period.
    near_wrap = SYSTEM_CLOCK.ticks_add(0, -5)
    assert SYSTEM_CLOCK.ticks_diff(SYSTEM_CLOCK.ticks_add(near_wrap, 10), near_wrap) == 10


def test_virtual_sleepers_wake_in_order_when_one_sleeps_again_at_once():
    import asyncio

    clock = VirtualClock()
    woke = []

    async def ticker():
        for _ in range(3):
            await clock.asleep_ms(60000)
            woke.append(("tick", clock.now_us() // 1000000))

    async def long_sleeper():
        await clock.asleep_ms(180000)
        woke.append(("long", clock.now_us() // 1000000))

    async def both():
        await asyncio.gather(ticker(), long_sleeper())

    asyncio.run(both())
    assert [t for name, t in woke if name == "tick"] == [60, 120, 180], woke
    assert ("long", 180) in woke, woke
    assert clock.now_us() == 180000000
