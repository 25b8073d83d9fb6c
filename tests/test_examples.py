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


def test_micropython_example_runs_on_the_simulator_with_sim():
    import micropython_quickstart

    lines = []
    problem = micropython_quickstart.main(["micropython_quickstart.py", "--sim", "UI2@1.2", "--sim-clock", "virtual"],
                                          out=lines.append)
    assert problem is None and lines[0] == "rbAmp UI2 v1.2 at 0x50", (problem, lines)
    # the simulated household from 11 h: the house imports on ch1, the solar inverter exports on ch2
    assert len(lines) == 4 and all(line.startswith("period: ") for line in lines[1:]), lines
    assert "export ['0.000', '0.000']" not in lines[-1], lines


def test_examples_without_hardware_say_what_to_do_in_one_line():
    import micropython_quickstart
    import simulated

    problem = micropython_quickstart.main(["micropython_quickstart.py"], out=None)
    assert problem is not None and "\n" not in problem and "--sim UI2" in problem, problem
    assert "machine.I2C" in problem
    for argv, fragment in ((["--sim", "UX2"], "unknown variant 'UX2'"), (["--sim", "UI2@1.4"], "1.2 or 1.3"),
                           (["--sim", "--sim-clock", "fast"], "real or virtual")):
        try:
            simulated.options(argv)
            raise AssertionError("accepted %r" % argv)
        except ValueError as exc:
            assert fragment in str(exc), (argv, str(exc))
    assert simulated.options(["--sim"]) == ("UI2", 0x04, False)
    assert simulated.options(["x"]) is None
