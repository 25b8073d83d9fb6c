RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from rbamp import (RbAmp, RbAmpError, RbAmpNotFoundError, RbAmpParamError, RbAmpTimeoutError,
                   RbAmpVersionError)
from rbampsim import SimI2C, SimModule, VirtualClock, loads
from support_driver import ADDR, rig


def test_identity_of_every_variant_and_version():
    expected = {"UI1": (1, True), "UI2": (2, True), "UI3": (3, True), "I1": (1, False),
                "I2": (2, False), "I3": (3, False)}
    for version in (0x03, 0x04):
        for variant in expected:
            clock, module, bus, dev = rig(variant, version)
            assert dev.version == version
            assert dev.variant == variant
            assert (dev.channels, dev.has_voltage) == expected[variant], (variant, version)
            assert dev.address == ADDR


def test_begin_clears_reset_occurred_and_waits_out_not_ready():
    clock = VirtualClock()
    module = SimModule("UI1", 0x04, addr=ADDR, clock=clock, load=loads.Constant([500.0]))
    bus = SimI2C([module], clock=clock)
    clock.advance_ms(15)  # answers, but RT data not valid yet (NOT_READY)
    assert module.read_reg(0x00)[0] & 0x01 == 0
    dev = RbAmp(bus, ADDR)
    dev.begin()
    assert module.read_reg(0x00)[0] & 0x01 == 1
    assert module.read_reg(0x2A)[0] & 0x20 == 0  # RESET_OCCURRED cleared


def test_context_manager_begins():
    clock, module, bus, _ = rig(begin=False)
    with RbAmp(bus, ADDR) as dev:
        assert dev.variant == "UI1"


def test_missing_module_names_the_address_and_a_wiring_hint():
    clock, module, bus, _ = rig(begin=False)
    dev = RbAmp(bus, 0x51)
    exc = xrt.raises(RbAmpNotFoundError, dev.begin)
    text = str(exc)
    assert "0x51" in text and "wiring" in text and "0x50" in text, text
    assert isinstance(exc, OSError) and isinstance(exc, RbAmpError)


def test_foreign_device_is_never_written_to():
    clock, module, bus, _ = rig(begin=False)
    module.regs[0x54] = 0x07  # something else answers at this address
    bus.record_trace()
    dev = RbAmp(bus, ADDR)
    exc = xrt.raises(RbAmpNotFoundError, dev.begin)
    assert "not an rbAmp" in str(exc)
    writes = [t for t in bus.trace if t[0] == "w"]
    assert writes == [], writes
    assert [t[2] for t in bus.trace] == [0x54]


def test_old_firmware_is_refused_clearly():
    clock, module, bus, _ = rig(begin=False)
    module.regs[0x03] = 0x02
    exc = xrt.raises(RbAmpVersionError, RbAmp(bus, ADDR).begin)
    assert "0x02" in str(exc)


def test_module_that_never_gets_ready_times_out():
    clock, module, bus, _ = rig(begin=False)
    module.regs[0x00] = 0  # STATUS.READY stays clear...
    module.rt_valid_from_us = 1 << 40  # ...because the module never finishes booting
    dev = RbAmp(bus, ADDR, ready_timeout_ms=500)
    exc = xrt.raises(RbAmpTimeoutError, dev.begin)
    assert "NOT_READY" in str(exc)


def test_bad_addresses_are_parameter_errors():
    clock, module, bus, _ = rig(begin=False)
    for addr in (0x07, 0x78, -1, "0x50"):
        exc = xrt.raises(ValueError, RbAmp, bus, addr)
        assert isinstance(exc, RbAmpParamError)


def test_reads_before_begin_are_refused():
    clock, module, bus, _ = rig(begin=False)
    dev = RbAmp(bus, ADDR)
    xrt.raises(RbAmpError, dev.read_all)
    xrt.raises(RbAmpError, lambda: dev.voltage)


def test_channel_out_of_range_is_a_parameter_error():
    clock, module, bus, dev = rig("UI2")
    exc = xrt.raises(RbAmpParamError, dev.read_power, 2)
    assert "2 channel" in str(exc)
    xrt.raises(ValueError, lambda: dev.power[5])
