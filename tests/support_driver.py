"""Helpers for the driver tests: a booted simulated module on a simulated bus, and a begun RbAmp."""

from rbamp import RbAmp
from rbampsim import SimI2C, SimModule, SimSMBus, VirtualClock, loads

ADDR = 0x50
WINDOW_US = 200000


def rig(variant="UI1", version=0x04, powers=None, load=None, bus="i2c", start_us=0, begin=True,
        freq=None, **module_options):
    """(clock, module, bus, dev): the module booted, the driver begun."""
    clock = VirtualClock(start_us=start_us)
    if load is None:
        load = loads.Constant(powers if powers is not None else [1000.0, 500.0, 250.0])
    module = SimModule(variant=variant, version=version, addr=ADDR, clock=clock, load=load,
                       **module_options)
    if bus == "i2c":
        sim_bus = SimI2C([module], freq=freq or 50000, clock=clock)
    else:
        sim_bus = SimSMBus([module], freq=freq or 100000, clock=clock)
    clock.advance_ms(250)
    dev = RbAmp(sim_bus, ADDR)
    if begin:
        dev.begin()
    return clock, module, sim_bus, dev


def window_wh(watts):
    return watts * 0.2 / 3600


def run_periods(clock, dev, count, period_ms=60000, into=None):
    """count latched periods of period_ms each (the 50 ms settle is part of the period)."""
    results = []
    for _ in range(count):
        clock.advance_ms(period_ms - 50)
        results.append(dev.read_period_snapshot(into=into))
    return results


def advance_past_next_window(clock, module, margin_us=1000):
    """Move virtual time to just after the module's next 200 ms window commit (white-box)."""
    module.sync()
    wait = module._next_window_us - clock.now_us()
    clock.advance_us(wait + margin_us)
    module.sync()  # commit the window now, so its (simulator) work is not billed to the next read


def close(actual, expected, tolerance):
    return abs(actual - expected) <= tolerance
