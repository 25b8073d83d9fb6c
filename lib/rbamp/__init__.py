"""rbamp: driver for the rbAmp I2C mains-measurement module (MicroPython and CPython).

The same source runs on MicroPython (``machine.I2C``) and on Linux (``smbus2.SMBus``); the backend
follows the bus object. Protocol v1.3 firmware is read in bursts, v1.2 byte by byte with a torn-value
guard. Hot paths fill pre-allocated results and allocate nothing; energy is integer fixed-point::

    from machine import I2C, Pin          # or: from smbus2 import SMBus; bus = SMBus(1)
    from rbamp import RbAmp
    bus = I2C(0, scl=Pin(22), sda=Pin(21), freq=50_000)
    with RbAmp(bus, addr=0x50) as dev:    # begin(): identify, wait ready, prime the period
        print(dev.variant, dev.voltage, dev.power[0])
        p = dev.read_period_snapshot()    # 60 s later: latch, settle 50 ms, read, integrate
        print(p.avg_p[0], dev.energy.wh(0))
        s = dev.sample_bidirectional()    # at 5 Hz: digest U and signed W, import/export split
        print(s.voltage_dv, s.power[0], dev.energy.export_wh(0))

Layout: ``device`` (``RbAmp``, the public object) is assembled from parts that share one
``regio.RegisterIO`` (retries, the throw-away read after a NACK, stats): ``identity`` (what
begin() learned), ``rtread`` (RT floats, never torn), ``phase`` (where v1.2 commits fall, from the
digest seq), ``sampling`` (the 5 Hz digest sample), ``period`` (latch, energy, reboots, resume with
``resume``), ``provisioning`` (settings and commands), ``drdy``, ``stream`` (``stream_period``);
``fleet`` latches many modules; ``transport``, ``clock``, ``ticks``, ``energy``, ``snapshot``,
``floatbits``, ``registers`` and ``errors`` are the leaves.
"""

# isort: off
# Leaves first, so that every module below finds what it imports already loaded: a chain of
# nested imports (an application importing this package from deep inside its own imports)
# overflows the C stack of the 32-bit builds the boards run ("maximum recursion depth exceeded").
from rbamp import errors, registers, floatbits, ticks, resume, snapshot, energy, clock  # noqa: F401
from rbamp import regio, rtread, sampling, period, identity, phase, drdy, stream  # noqa: F401
from rbamp import provisioning  # noqa: F401
# isort: on
from rbamp.device import RbAmp, RbAmpStats
from rbamp.energy import EnergyCounter, EnergyMeter
from rbamp.errors import (RbAmpCommandError, RbAmpError, RbAmpIOError, RbAmpNotFoundError,
                          RbAmpParamError, RbAmpStaleError, RbAmpTimeoutError, RbAmpVersionError)
from rbamp.fleet import RbAmpFleet
from rbamp.provisioning import RbAmpSensorClass
from rbamp.snapshot import RbAmpPeriodSnapshot, RbAmpSample, RbAmpSnapshot

__version__ = "0.1.0"

__all__ = ["RbAmp", "RbAmpFleet", "RbAmpSnapshot", "RbAmpSample", "RbAmpPeriodSnapshot", "RbAmpSensorClass",
           "RbAmpStats", "EnergyCounter", "EnergyMeter", "RbAmpError", "RbAmpIOError",
           "RbAmpStaleError", "RbAmpTimeoutError", "RbAmpNotFoundError", "RbAmpParamError",
           "RbAmpVersionError", "RbAmpCommandError"]
