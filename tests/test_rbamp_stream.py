RUNTIMES = ("cpython", "mpy64", "mpy32")

import asyncio

import xrt
from rbamp import RbAmpParamError
from support_driver import close, rig

US_WRAP = (1 << 30) - 2000000  # ticks_us wraps 2 s in (2**30 ports), ticks_ms much later


def _stream(interval_s, count, start_us=0, variant="UI1", version=0x04):
    clock, module, bus, dev = rig(variant, version, powers=[500.0], start_us=start_us)
    start = module.truth.snapshot()
    t0 = clock.ticks_ms()

    async def main():
        periods = []
        stream = dev.stream_period(interval_s=interval_s)
        async for p in stream:
            periods.append((p.valid, p.dt_ms, p.commit_count))
            if len(periods) == count:
                break
        return periods

    periods = asyncio.run(main())
    elapsed_ms = clock.ticks_diff(clock.ticks_ms(), t0)
    truth = module.truth.import_wh_since(start, 0)
    return periods, elapsed_ms, dev.energy.wh(0), truth


def test_stream_period_takes_sub_second_and_fractional_intervals():
    for interval_s, count in ((0.2, 25), (0.5, 20), (1.5, 8), (2.25, 4)):
        periods, elapsed_ms, wh, truth = _stream(interval_s, count)
        interval_ms = int(interval_s * 1000 + 0.5)
        assert len(periods) == count
        # every period is one interval of master time (give or take a window for its latch)...
        for valid, dt_ms, windows in periods:
            assert valid and close(dt_ms, interval_ms, 210), (interval_s, periods)
        # ...and the boundaries do not drift: count intervals after the start, not count + 1
        assert close(elapsed_ms, count * interval_ms + 50, 250), (interval_s, elapsed_ms)
        assert close(wh, truth, 2 * 500.0 * 0.2 / 3600), (interval_s, wh, truth)


def test_stream_period_fractional_interval_across_a_ticks_wrap():
    periods, elapsed_ms, wh, truth = _stream(0.5, 20, start_us=US_WRAP, version=0x03)
    assert all(valid for valid, _, _ in periods) and close(elapsed_ms, 20 * 500 + 50, 250), elapsed_ms
    assert close(wh, truth, 2 * 500.0 * 0.2 / 3600), (wh, truth)


def test_stream_period_rejects_intervals_below_one_window_or_above_an_hour():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[500.0])
    for bad in (0, 0.1, 0.19, -1, 3600.5, 7200, "60", None, True):
        exc = xrt.raises(RbAmpParamError, dev.stream_period, bad)
        assert "interval_s" in str(exc)
    for good in (0.2, 0.5, 1, 1.5, 60, 3600):
        dev.stream_period(good)
