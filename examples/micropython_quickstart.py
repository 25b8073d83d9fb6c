"""rbAmp on an ESP32 / Pico W: DRDY-driven 5 Hz sampling with import/export, plus 60 s periods.

Copy ``lib/rbamp`` to the board (``mpremote cp -r lib :``), wire SDA/SCL and DRDY, then
``mpremote run examples/micropython_quickstart.py``. Pins below are an ESP32 DevKit's.

Without a board, against the simulator (MicroPython's unix port or CPython, from a checkout):

    micropython examples/micropython_quickstart.py --sim UI2 --sim-clock virtual
"""

import asyncio


async def sample(dev, samples):
    for _ in range(samples):
        await dev.wait_drdy()  # falls back to polling if an edge is lost
        dev.sample_bidirectional()


async def meter(dev, periods, out):
    stream = dev.stream_period(interval_s=60)
    for _ in range(periods):
        p = await stream.__anext__()
        out("period: %s W avg over %d ms; import %s Wh, export %s Wh" % (
            ["%.1f" % w for w in p.avg_p.list()], p.dt_ms,
            ["%.3f" % dev.energy.import_wh(ch) for ch in range(dev.channels)],
            ["%.3f" % dev.energy.export_wh(ch) for ch in range(dev.channels)]))


async def run(bus, drdy_pin, addr=0x50, periods=3, out=print):
    from rbamp import RbAmp

    dev = RbAmp(bus, addr).begin()
    dev.attach_drdy(drdy_pin)
    out("rbAmp %s v1.%d at 0x%02X" % (dev.variant, dev.version - 1, dev.address))
    await asyncio.gather(sample(dev, periods * 300), meter(dev, periods, out))
    return dev


def main(argv, out=print):
    """Run on the board's I2C, or with ``--sim`` on the simulator; a problem is returned as one
    line for the user (no traceback)."""
    if "--sim" in argv:
        import simulated

        try:
            bus, module = simulated.bus_of("i2c", argv)
        except ValueError as exc:
            return "micropython_quickstart: %s" % exc
        asyncio.run(run(bus, module.drdy, out=out))
        return None
    try:
        from machine import I2C, Pin
    except ImportError:  # the unix port has no machine.I2C; CPython has no machine at all
        return ("micropython_quickstart: no I2C hardware here (machine.I2C): run it on a board with "
                "mpremote run, or against the simulator: --sim UI2")
    i2c = I2C(0, scl=Pin(22), sda=Pin(21), freq=50000)  # 50 kHz: ESP32 NACKs ~20 % at 100 kHz
    try:
        asyncio.run(run(i2c, Pin(4, Pin.IN, Pin.PULL_UP), out=out))
    except OSError as exc:  # no module answering, or a bus that keeps failing: one line
        return "micropython_quickstart: %s" % exc
    return None


if __name__ == "__main__":
    import sys

    problem = main(getattr(sys, "argv", None) or [])
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(1)
