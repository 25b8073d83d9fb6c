RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from rbamp import RbAmp, RbAmpNotFoundError, RbAmpSnapshot
from rbampsim import SimSMBus
from support_driver import ADDR, close, rig, run_periods


def test_smbus_backend_reads_the_rt_block_in_one_transaction():
    clock, module, bus, dev = rig("UI3", 0x04, bus="smbus", powers=[1000.0, 2000.0, 3000.0])
    assert type(dev._t).__name__ == "SMBusTransport"
    snap = RbAmpSnapshot(3)
    bus.reset_stats()
    dev.read_all(into=snap)
    assert bus.stats.transactions == 1 and bus.stats.bytes == 59
    assert [snap.power[ch] for ch in range(3)] == [1000.0, 2000.0, 3000.0]


def test_smbus_backend_meters_and_provisions_both_versions():
    for version in (0x04, 0x03):
        clock, module, bus, dev = rig("UI1", version, bus="smbus", powers=[750.0])
        start = module.truth.snapshot()
        run_periods(clock, dev, 3)
        assert close(dev.energy.wh(0), module.truth.import_wh_since(start, 0), 0.1)
        dev.set_label("pi")
        assert dev.read_label() == "pi"


def test_smbus_missing_module_is_not_found():
    clock, module, bus, dev = rig("UI1", 0x04, bus="smbus", begin=False)
    xrt.raises(RbAmpNotFoundError, RbAmp(bus, 0x33).begin)


class _NoMsgClassBus(SimSMBus):
    i2c_msg = None  # like a real smbus2.SMBus: the driver must bring smbus2's own i2c_msg


def test_real_smbus2_messages_are_used_when_the_bus_has_none():
    if xrt.is_micropython():
        raise xrt.Skip("smbus2 is a CPython package")
    clock, module, _, _ = rig("UI1", 0x04, begin=False)
    bus = _NoMsgClassBus([], clock=clock)
    bus.add(module)
    dev = RbAmp(bus, ADDR).begin()
    assert dev._t._msg.__module__.startswith("smbus2")
    assert dev.read_all().voltage > 200.0
