RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from rbamp import RbAmpCommandError, RbAmpParamError, RbAmpSensorClass
from rbampsim import SimModule, loads
from support_driver import ADDR, rig


def _writes(bus):
    return [t for t in bus.trace if t[0] == "w"]


def test_sensor_class_and_ct_binding_with_mirrors_and_no_rewrite():
    for version in (0x04, 0x03):
        clock, module, bus, dev = rig("UI3", version)
        assert dev.set_sensor_class(RbAmpSensorClass.SCT013) is True
        assert dev.set_ct_model_ch(1, 3) is True
        assert [dev.read_ct_model_ch(ch) for ch in range(3)] == [0, 3, 0]
        assert dev.set_ct_model(4) is True
        assert [dev.read_ct_model_ch(ch) for ch in range(3)] == [4, 4, 4]
        bus.record_trace()
        assert dev.set_sensor_class(1) is False
        assert dev.set_ct_model(4) is False
        assert _writes(bus) == []  # read-compare-write: nothing changed, nothing written


def test_ct_codes_are_checked_against_class_and_channel():
    clock, module, bus, dev = rig("UI2")
    exc = xrt.raises(RbAmpParamError, dev.set_ct_model_ch, 0, 3)  # class still unset
    assert "SCT-013" in str(exc)
    dev.set_sensor_class(1)
    xrt.raises(ValueError, dev.set_ct_model_ch, 0, 8)
    xrt.raises(RbAmpParamError, dev.set_ct_model_ch, 2, 3)  # UI2 has channels 0 and 1
    xrt.raises(RbAmpParamError, dev.set_sensor_class, 4)


def test_save_uses_the_opcode_of_the_firmware_and_only_when_needed():
    for version, opcode in ((0x04, 0x32), (0x03, 0x26)):
        clock, module, bus, dev = rig("UI1", version)
        assert dev.save_user_config() is False  # nothing changed: no flash cycle
        assert module.flash_writes == 0
        dev.set_sensor_class(1)
        dev.set_ct_model(2)
        dev.set_label("garage")
        bus.record_trace()
        assert dev.save_user_config() is True
        assert [t for t in _writes(bus) if t[2] == 0x01] == [("w", ADDR, 0x01, bytes((opcode,)))]
        assert module.flash_writes == 1
        assert dev.save_user_config() is False
        module.power_cycle()
        clock.advance_ms(300)
        dev.begin()
        assert dev.read_sensor_class() == 1 and dev.read_ct_model_ch(0) == 2
        assert dev.read_label() == "garage"


def test_fresh_module_is_not_provisioned_until_saved():
    clock, module, bus, dev = rig("UI1", 0x04, fresh_flash=True)
    assert dev.is_provisioned() is False
    assert dev.flash_blank is True
    dev.set_sensor_class(2)
    assert dev.save_user_config() is True
    assert dev.is_provisioned() is True


def test_label_is_written_byte_by_byte_and_validated():
    clock, module, bus, dev = rig("UI1", 0x04)
    bus.record_trace()
    dev.set_label("abc")
    writes = _writes(bus)
    assert writes and all(len(t[3]) == 1 for t in writes)
    assert dev.read_label() == "abc"
    dev.set_label("ab")
    assert dev.read_label() == "ab"
    for bad in ("toolonglabel", "caf\u00e9", 12):
        xrt.raises(RbAmpParamError, dev.set_label, bad)


def test_uid_and_diagnostics():
    clock, module, bus, dev = rig("UI1", 0x03, uid=bytes(range(1, 13)))
    assert dev.read_uid() == bytes(range(1, 13))
    clock.advance_ms(5000)
    assert dev.read_uptime_s() >= 5
    assert dev.read_reset_cause() & 0x02  # power-on


def test_rejected_command_raises_with_the_module_error_code():
    clock, module, bus, dev = rig("UI1", 0x04)
    exc = xrt.raises(RbAmpCommandError, dev.config._command, 0x26, 0, "SAVE_GAINS on v1.3")
    assert exc.code == 0xFE and "0xFE" in str(exc) and "bad parameter" in str(exc)
    clock.advance_ms(250)
    assert dev.read_event_flags() & 0x08  # the durable ERROR event
    dev.clear_error()
    assert dev.read_last_error() == 0 and dev.read_event_flags() & 0x08 == 0


def test_event_flags_clear_and_thresholds_round_trip():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[2000.0])
    dev.set_current_threshold(5.0)
    dev.set_power_threshold(1500)
    assert dev.read_thresholds() == (5.0, 1500)
    clock.advance_ms(400)
    flags = dev.read_event_flags()
    assert flags & 0x06 == 0x06, flags
    dev.clear_event_flags(0x06)
    dev.set_current_threshold(None)
    dev.set_power_threshold(None)
    assert dev.read_thresholds() == (None, None)
    clock.advance_ms(400)
    assert dev.read_event_flags() & 0x06 == 0
    xrt.raises(RbAmpParamError, dev.set_power_threshold, -5)
    xrt.raises(RbAmpParamError, dev.set_event_mask, 0x80)


def test_digest_read_and_decode():
    clock, module, bus, dev = rig("UI2", 0x04, load=loads.Constant([1200.0, -300.0], voltage=230.0, pf=0.5))
    dev.set_digest_config(0x0F)
    clock.advance_ms(400)
    digest = dev.decode_digest(dev.read_digest())
    assert digest["voltage"] == 230.0
    assert digest["power"] == [1200, -300]
    assert digest["power_factor"] == [0.5, 0.5]
    assert abs(digest["current"][0] - 1200.0 / 0.5 / 230.0) < 0.01


def test_change_address_full_sequence():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[400.0])
    bus.record_trace()
    assert dev.change_address(0x42) is True
    assert dev.address == 0x42 and module.addr == 0x42
    assert bus.scan() == [0x42]
    assert dev.voltage > 0
    cmd = [t[3][0] for t in _writes(bus) if t[2] == 0x01]
    assert 0x30 in cmd and 0x01 in cmd and cmd.index(0x30) < cmd.index(0x01)
    xrt.raises(RbAmpParamError, dev.change_address, 0x80)


def test_change_address_refuses_an_occupied_target():
    clock, module, bus, dev = rig("UI1", 0x04)
    other = SimModule("UI1", 0x04, addr=0x51, clock=clock)
    bus.add(other)
    clock.advance_ms(300)
    exc = xrt.raises(RbAmpParamError, dev.change_address, 0x51)
    assert "0x51" in str(exc)
    assert module.addr == ADDR and module.flash_writes == 0


def test_deliberate_reset_keeps_the_running_period_energy():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[1000.0])
    start = module.truth.snapshot()
    clock.advance_ms(30000)
    dev.set_digest_config(0x02)
    dev.reset()
    assert module.read_reg(0x29)[0] == 0x02 | 0x06  # RAM setting written again after the reset (+ U, P)
    clock.advance_ms(30000)
    dev.read_period_snapshot()
    truth = module.truth.import_wh_since(start, 0)
    # only the module's ~0.3 s reboot gap (plus at most a window at each end) is missing
    assert abs(dev.energy.wh(0) - truth) < 1000.0 * 0.75 / 3600, (dev.energy.wh(0), truth)
