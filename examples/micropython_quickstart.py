"""rbAmp on an ESP32 / Pico W: DRDY-driven 5 Hz sampling with import/export, plus 60 s periods.

Copy ``lib/rbamp`` to the board (``mpremote cp -r lib :``), wire SDA/SCL and DRDY, then
``mpremote run examples/micropython_quickstart.py``. Pins below are an ESP32 DevKit's.
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


if __name__ == "__main__":
    from machine import I2C, Pin

    i2c = I2C(0, scl=Pin(22), sda=Pin(21), freq=50000)  # 50 kHz: ESP32 NACKs ~20 % at 100 kHz
    asyncio.run(run(i2c, Pin(4, Pin.IN, Pin.PULL_UP)))
