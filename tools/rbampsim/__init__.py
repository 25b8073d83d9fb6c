"""rbampsim: a faithful simulator of the rbAmp I2C mains-measurement module.

It models the register map of both protocol versions (v1.2 byte-wise, v1.3 burst + read-freeze),
200 ms RT windows from a load profile with DRDY pulses, the period latch with the BASIC clamp, cold
boot, resets, errors and events, address change, General-Call latching, digest, labels, provisioning
and fault injection, and keeps exact ground-truth energy. Time comes from a clock seam shared with
the driver, so a simulated year runs in seconds::

    from rbampsim import SimModule, SimI2C, VirtualClock, loads
    clock = VirtualClock()
    module = SimModule(variant="UI2", version=0x04, clock=clock, load=loads.Constant([1000.0, -300.0]))
    bus = SimI2C([module], freq=50000, clock=clock)    # machine.I2C look-alike
    clock.advance_ms(60000)
    print(module.truth.import_wh(0), module.truth.export_wh(1))
"""

from rbampsim import loads
from rbampsim.bus import BusStats, SimI2C, SimSMBus, i2c_msg
from rbampsim.clock import RealClock, VirtualClock
from rbampsim.module import SimModule, float32
from rbampsim.pin import SimPin

__all__ = ["SimModule", "SimI2C", "SimSMBus", "SimPin", "VirtualClock", "RealClock", "BusStats",
           "i2c_msg", "loads", "float32"]
