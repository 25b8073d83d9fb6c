RUNTIMES = ("cpython", "mpy64", "mpy32")

import asyncio

from rbampsim import SimPin
from support_driver import close, rig


class NoHardPin(SimPin):
    """An ESP32-style pin: ``irq()`` has no ``hard=`` keyword."""

    def irq(self, handler=None, trigger=SimPin.IRQ_FALLING):
        SimPin.irq(self, handler, trigger)


def _run(coro):
    return asyncio.run(coro)


def test_wait_drdy_wakes_on_every_commit():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[500.0])
    dev.attach_drdy(module.drdy)
    assert module.drdy.hard is True

    async def main():
        t0 = clock.now_us()
        woken = 0
        for _ in range(25):
            if await dev.wait_drdy():
                woken += 1
                dev.read_all()
        return woken, clock.now_us() - t0

    woken, elapsed_us = _run(main())
    assert woken == 25
    assert close(elapsed_us, 25 * 200000, 200000), elapsed_us  # the module's 5 Hz


def test_esp32_style_pin_without_hard_keyword_is_accepted():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[500.0])
    pin = NoHardPin(module)
    module.drdy = pin
    dev.attach_drdy(pin)
    assert pin.has_handler

    async def main():
        return await dev.wait_drdy()

    assert _run(main()) is True


def test_a_lost_edge_times_out_to_polling():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[500.0])
    dev.attach_drdy(SimPin())  # a pin nobody drives: every edge is lost

    async def main():
        t0 = clock.now_us()
        got = await dev.wait_drdy(timeout_ms=300)
        return got, clock.now_us() - t0

    got, waited = _run(main())
    assert got is False and waited == 300000
    assert dev.read_all().power[0] == 500.0  # polling still works


def test_an_event_mask_holding_drdy_low_does_not_stall_the_loop():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[1500.0])
    dev.attach_drdy(module.drdy)
    dev.set_power_threshold(1000)
    dev.set_event_mask(0x04)
    clock.advance_ms(400)
    assert module.drdy.value() == 0  # THRESH_P holds the line low

    async def main():
        t0 = clock.now_us()
        for _ in range(10):
            await dev.wait_drdy()
            dev.read_all()
        return clock.now_us() - t0

    elapsed = _run(main())
    assert elapsed < 10 * 260000, elapsed  # paced by the 200 ms window, not stuck on timeouts
    dev.clear_event_flags(0x04)
    dev.set_power_threshold(None)


def test_stream_period_yields_periods_and_never_blocks_the_loop():
    clock, module, bus, dev = rig("UI2", 0x04, powers=[800.0, 100.0])
    start = module.truth.snapshot()
    ticks = []

    async def ticker(stop):
        while not stop[0]:
            ticks.append(clock.ticks_ms())
            await asyncio.sleep(0)

    async def main():
        stop = [False]
        task = asyncio.create_task(ticker(stop))
        periods = []
        stream = dev.stream_period(interval_s=60)
        async for p in stream:
            periods.append((p.valid, p.dt_ms, p.avg_p[0]))
            if len(periods) == 3:
                break
        stop[0] = True
        await task
        return periods

    periods = _run(main())
    assert [valid for valid, _, _ in periods] == [True, True, True]
    assert all(close(dt, 60000, 200) for _, dt, _ in periods), periods
    assert all(close(avg, 800.0, 0.01) for _, _, avg in periods)
    assert len(ticks) >= 6  # the other task ran during every sleep and every 50 ms settle
    truth = module.truth.import_wh_since(start, 0)
    assert close(dev.energy.wh(0), truth, 2 * 800.0 * 0.2 / 3600), (dev.energy.wh(0), truth)


def test_async_period_read_yields_during_the_settle():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[100.0])
    order = []

    async def other():
        order.append("other")

    async def main():
        clock.advance_ms(60000)
        task = asyncio.create_task(other())
        p = await dev.aread_period_snapshot()
        order.append("period")
        await task
        return p

    p = _run(main())
    assert p.valid and order == ["other", "period"]


def test_a_flag_left_set_by_an_event_already_reported_does_not_end_the_wait_early():
    # An edge that came while the bus was busy is reported by happened() at once, with the flag
    # still set; the next wait must wait for a new edge, not return "none came" on the stale flag.
    from rbamp.clock import SYSTEM_CLOCK
    from rbamp.drdy import make_flag

    flag = make_flag()
    edges = [1]
    seen = [0]

    def happened():
        return edges[0] != seen[0]

    async def edge_later():
        await SYSTEM_CLOCK.asleep_ms(40)
        edges[0] += 1
        flag.set()

    async def main():
        flag.set()
        first = await SYSTEM_CLOCK.wait_event(flag, 200, happened)  # the pending edge
        seen[0] = edges[0]
        asyncio.create_task(edge_later())
        second = await SYSTEM_CLOCK.wait_event(flag, 500, happened)
        return first, second

    assert _run(main()) == (True, True)
