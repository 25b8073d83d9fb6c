RUNTIMES = ("cpython", "mpy64", "mpy32")

import asyncio
import sys

from rbampsim import SimI2C, SimModule, SimSMBus, VirtualClock, loads

_EXAMPLES = __file__.rsplit("/", 2)[0] + "/examples" if __file__.count("/") >= 2 else "examples"
if _EXAMPLES not in sys.path:
    sys.path.append(_EXAMPLES)


def test_cpython_example_runs_on_an_smbus_lookalike():
    import cpython_quickstart

    clock = VirtualClock()
    module = SimModule("UI2", 0x04, addr=0x50, clock=clock, load=loads.Constant([1000.0, 250.0]))
    bus = SimSMBus([module], clock=clock)
    clock.advance_ms(300)
    lines = []
    dev = cpython_quickstart.run(bus, 0x50, period_s=60, count=3, out=lines.append)
    assert lines[0].startswith("rbAmp UI2 at 0x50, protocol v1.3, 2 channel(s)")
    assert "P=['1000.0', '250.0'] W" in lines[1]
    assert len(lines) == 5 and abs(dev.energy.wh(0) - 50.0) < 0.1, lines


def test_micropython_example_samples_and_meters_on_a_machine_i2c_lookalike():
    import micropython_quickstart

    clock = VirtualClock()
    module = SimModule("UI2", 0x03, addr=0x50, clock=clock, load=loads.Constant([800.0, -1200.0]))
    bus = SimI2C([module], clock=clock)
    clock.advance_ms(300)
    start = module.truth.snapshot()
    lines = []
    dev = asyncio.run(micropython_quickstart.run(bus, module.drdy, periods=2, out=lines.append))
    assert lines[0] == "rbAmp UI2 v1.2 at 0x50"
    assert len(lines) == 3 and "period:" in lines[2]
    assert abs(dev.energy.export_wh(1) - module.truth.export_wh_since(start, 1)) < 0.2
    assert abs(dev.energy.wh(0) - 800.0 * 2 / 60) < 0.1
