RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from rbamp import RbAmpError, RbAmpIOError, RbAmpSnapshot, RbAmpTimeoutError
from support_driver import rig


def test_emi_burst_is_survived_with_spaced_retries():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[1000.0])
    snap = RbAmpSnapshot(1)
    module.faults.add_emi_burst(clock.now_us(), 60000, fail_rate=0.67)
    for _ in range(20):
        dev.read_all(into=snap)
        assert snap.power[0] == 1000.0
    assert dev.stats.retries > 0 and dev.stats.bus_errors == module.faults.injected_nacks


def test_esp32_nack_rate_and_ghost_bytes_never_reach_the_caller():
    clock, module, bus, dev = rig("UI2", 0x04, powers=[1000.0, 250.0])
    module.faults.nack_rate = 0.05  # several times what an ESP32 sees at 50 kHz
    module.faults.ghost = True
    snap = RbAmpSnapshot(2)
    for _ in range(500):
        dev.read_all(into=snap)
        assert snap.power[0] == 1000.0 and snap.power[1] == 250.0, snap.to_dict()
        assert dev.power[1] == 250.0
    # every NACK left a ghost behind; the throw-away read before each retry absorbed them all
    assert module.faults.ghost_reads > 40 and dev.stats.ghosts == 0


def test_ghosts_on_v12_byte_reads_are_caught_too():
    clock, module, bus, dev = rig("UI1", 0x03, powers=[1000.0])
    module.faults.nack_rate = 0.03
    module.faults.ghost = True
    for _ in range(100):
        assert dev.read_power(0) == 1000.0
        assert 229.0 < dev.voltage < 231.0
    assert module.faults.ghost_reads > 30


def test_ghost_bytes_from_another_masters_nack_are_rejected_by_the_filter():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[1000.0])
    module.faults.ghost = True
    snap = RbAmpSnapshot(1)
    for _ in range(30):
        module.faults.nack_rate = 1.0
        try:
            bus.readfrom_mem(0x50, 0x00, 1)  # someone else's transaction fails on the shared bus
        except OSError:
            pass
        module.faults.nack_rate = 0.0
        dev.read_all(into=snap)
        assert snap.power[0] == 1000.0 and 229.0 < snap.voltage < 231.0
    assert dev.stats.ghosts == 30 and dev.stats.rejected == 30


def test_a_gone_module_gives_an_io_error_naming_address_and_register():
    clock, module, bus, dev = rig("UI1", 0x04)
    module.unplug()
    exc = xrt.raises(RbAmpIOError, dev.read_all)
    text = str(exc)
    assert "0x50" in text and "0x86" in text and "3 retries" in text, text
    assert isinstance(exc, OSError) and isinstance(exc, RbAmpError)
    assert exc.addr == 0x50 and exc.reg == 0x86
    assert dev.stats.retries == 3


def test_a_stuck_bus_is_a_timeout_error():
    clock, module, bus, dev = rig("UI1", 0x04)
    bus.faults.stuck = True
    exc = xrt.raises(RbAmpTimeoutError, lambda: dev.voltage)
    assert exc.errno == 110 and isinstance(exc, RbAmpIOError)
    bus.faults.stuck = False
    assert dev.voltage > 0


def test_retries_are_configurable_and_bounded():
    clock, module, bus, dev = rig("UI1", 0x04, begin=False)
    from rbamp import RbAmp

    dev = RbAmp(bus, 0x50, retries=0)
    dev.begin()
    module.faults.nack_rate = 1.0
    xrt.raises(RbAmpIOError, dev.read_all)
    assert dev.stats.retries == 0 and dev.stats.bus_errors == 1
    xrt.raises(ValueError, RbAmp, bus, 0x50, retries=50)
