RUNTIMES = ("cpython", "mpy64", "mpy32")

# Commands, errors, events, persistence, address change, thresholds, DRDY and the General-Call
# latch of the simulator, checked against protocol.md. Literal register addresses and codes come
# from protocol.md on purpose: reusing the simulator's own table would hide a wrong address.

from rbampsim import SimI2C, SimModule, VirtualClock, loads
from support_sim import ADDR, command, latch, make, oserror_errno, u8, u16, write

STATUS, ERROR, CT_MODEL, PERIOD_VALID = 0x00, 0x02, 0x05, 0x07
SENSOR_CLASS, FLEET_CONFIG, GROUP_ID, DIGEST_CONFIG = 0x25, 0x27, 0x28, 0x29
EVENT_FLAGS, EVENT_MASK, THRESH_I_HI, THRESH_P_HI = 0x2A, 0x2B, 0x2C, 0x2E
I2C_ADDRESS, ADDR_COMMIT_MAGIC, RESET_CAUSE, CT_MODEL_CH0 = 0x30, 0x31, 0x4A, 0x51
GC_TICK, LABEL, PERIOD_COMMIT_CNT = 0x59, 0x68, 0xBE

CMD_RESET, CMD_SAVE_GAINS, CMD_LATCH, CMD_SET_CT_CH0 = 0x01, 0x26, 0x27, 0x28
CMD_COMMIT_ADDR, CMD_CLEAR_ERROR, CMD_SAVE_USER_CONFIG = 0x30, 0x31, 0x32

EV_PERIOD_READY, EV_THRESH_I, EV_THRESH_P, EV_ERROR = 0x01, 0x02, 0x04, 0x08
EV_CONFIG_CHANGED, EV_RESET_OCCURRED = 0x10, 0x20
ST_READY, ST_ERROR, ST_EVENTS = 0x01, 0x02, 0x04

ENODEV = 19  # what MicroPython ports raise for an address nobody ACKs


def _write_u16(bus, reg, value):
    # Multi-byte writes are byte-at-a-time on every protocol version.
    write(bus, reg, value & 0xFF)
    write(bus, reg + 1, value >> 8)


def _clear_all_events(bus):
    write(bus, EVENT_FLAGS, 0xFF)
    assert u8(bus, EVENT_FLAGS) == 0


def _reset_and_wait(clock, bus):
    command(bus, CMD_RESET)
    clock.advance_ms(350)


def _bytewise(bus, reg, n):
    # One register per read, so the helpers also hold on v1.2 (no read auto-increment).
    return bytes(u8(bus, reg + i) for i in range(n))


def _label(bus):
    return _bytewise(bus, LABEL, 8)


def _write_label(bus, text):
    for i in range(8):
        write(bus, LABEL + i, text[i] if i < len(text) else 0)


# ---------------------------------------------------------------- RESET


def test_reset_nacks_for_about_300_ms_then_reports_reset_occurred():
    clock, module, bus = make()
    _clear_all_events(bus)
    command(bus, CMD_RESET)
    clock.advance_ms(290)
    assert oserror_errno(bus.readfrom_mem, ADDR, STATUS, 1) == ENODEV
    assert bus.scan() == []
    clock.advance_ms(15)
    assert u8(bus, EVENT_FLAGS) & EV_RESET_OCCURRED
    assert u8(bus, RESET_CAUSE) == 0x04  # SW
    assert u8(bus, STATUS) & ST_EVENTS


def test_reset_clears_ram_settings_and_keeps_the_persisted_ones():
    clock, module, bus = make("UI2")
    write(bus, SENSOR_CLASS, 1)
    write(bus, CT_MODEL, 3)
    command(bus, CMD_SET_CT_CH0)
    write(bus, FLEET_CONFIG, 1)
    write(bus, GROUP_ID, 9)
    _write_label(bus, b"boiler")
    command(bus, CMD_SAVE_USER_CONFIG)
    assert u8(bus, ERROR) == 0
    write(bus, DIGEST_CONFIG, 0x0F)
    write(bus, EVENT_MASK, 0x06)
    _write_u16(bus, THRESH_I_HI, 1234)
    _write_u16(bus, THRESH_P_HI, 2000)
    assert u8(bus, DIGEST_CONFIG) == 0x0F and u16(bus, THRESH_P_HI) == 2000
    _reset_and_wait(clock, bus)
    assert u8(bus, DIGEST_CONFIG) == 0
    assert u8(bus, EVENT_MASK) == 0
    assert u16(bus, THRESH_I_HI) == 0xFFFF and u16(bus, THRESH_P_HI) == 0xFFFF
    assert u8(bus, EVENT_FLAGS) == EV_RESET_OCCURRED
    assert u8(bus, SENSOR_CLASS) == 1
    assert u8(bus, CT_MODEL_CH0) == 3 and u8(bus, CT_MODEL_CH0 + 1) == 0
    assert u8(bus, FLEET_CONFIG) == 1 and u8(bus, GROUP_ID) == 9
    assert _label(bus) == b"boiler\x00\x00"


# ---------------------------------------------------------------- events and errors


def test_event_flags_are_write_one_to_clear():
    clock, module, bus = make()
    latch(clock, bus)
    flags = u8(bus, EVENT_FLAGS)
    assert flags == EV_RESET_OCCURRED | EV_PERIOD_READY, flags
    write(bus, EVENT_FLAGS, EV_PERIOD_READY)  # clears only the bit written as 1
    assert u8(bus, EVENT_FLAGS) == EV_RESET_OCCURRED
    write(bus, EVENT_FLAGS, 0x00)  # writing 0 changes nothing
    assert u8(bus, EVENT_FLAGS) == EV_RESET_OCCURRED
    assert u8(bus, STATUS) & ST_EVENTS
    write(bus, EVENT_FLAGS, EV_RESET_OCCURRED)
    assert u8(bus, EVENT_FLAGS) == 0
    assert u8(bus, STATUS) & ST_EVENTS == 0
    assert u8(bus, ERROR) == 0


def test_bad_parameter_sets_error_now_and_the_error_event_about_200_ms_later():
    clock, module, bus = make()
    _clear_all_events(bus)
    write(bus, CT_MODEL, 8)  # codes are 1..7
    assert u8(bus, ERROR) == 0xFE
    status = u8(bus, STATUS)
    assert status & ST_ERROR and status & ST_READY
    assert status & ST_EVENTS == 0
    assert u8(bus, EVENT_FLAGS) & EV_ERROR == 0
    clock.advance_ms(185)
    assert u8(bus, EVENT_FLAGS) & EV_ERROR == 0  # not before ~200 ms
    clock.advance_ms(25)
    assert u8(bus, EVENT_FLAGS) & EV_ERROR
    assert u8(bus, STATUS) & ST_EVENTS


def test_error_is_the_outcome_of_the_last_write_but_the_error_event_is_durable():
    clock, module, bus = make()
    _clear_all_events(bus)
    write(bus, 0x54, 0x02)  # PRODUCT_ID is read-only
    assert u8(bus, ERROR) == 0xFE
    write(bus, DIGEST_CONFIG, 0x01)  # a good write: ERROR is not sticky
    assert u8(bus, ERROR) == 0
    assert u8(bus, STATUS) & ST_ERROR == 0
    clock.advance_ms(250)
    assert u8(bus, EVENT_FLAGS) & EV_ERROR  # the rejected write still raises its event
    clock.advance_ms(5000)
    assert u8(bus, EVENT_FLAGS) & EV_ERROR  # and it stays until cleared
    write(bus, EVENT_FLAGS, EV_ERROR)
    assert u8(bus, EVENT_FLAGS) & EV_ERROR == 0


def test_unknown_opcode_and_unwritable_register_are_rejected():
    clock, module, bus = make()
    for opcode in (0x00, 0x02, 0x33, 0x7F, 0xFF):
        command(bus, CMD_CLEAR_ERROR)
        command(bus, opcode)
        assert u8(bus, ERROR) == 0xFE, opcode
    for reg in (0x00, 0x03, 0x07, 0x24, 0x46, 0x54, 0x86, 0xDC, 0x40):
        command(bus, CMD_CLEAR_ERROR)
        before = u8(bus, reg)
        write(bus, reg, before ^ 0x5A)
        assert u8(bus, ERROR) == 0xFE, reg
        if reg not in (0x00, 0x02):
            assert u8(bus, reg) == before, reg


def test_clear_error_clears_error_and_the_error_event():
    clock, module, bus = make()
    _clear_all_events(bus)
    command(bus, 0x77)
    clock.advance_ms(250)
    assert u8(bus, ERROR) == 0xFE and u8(bus, EVENT_FLAGS) & EV_ERROR
    command(bus, CMD_CLEAR_ERROR)
    assert u8(bus, ERROR) == 0
    assert u8(bus, EVENT_FLAGS) & EV_ERROR == 0
    assert u8(bus, STATUS) & (ST_ERROR | ST_EVENTS) == 0


def test_fresh_flash_reports_params_blank_at_every_boot_until_the_first_save():
    clock, module, bus = make(fresh_flash=True)
    assert u8(bus, ERROR) == 0xFB
    assert u8(bus, STATUS) & ST_ERROR
    _reset_and_wait(clock, bus)
    assert u8(bus, ERROR) == 0xFB  # a reset does not make blank flash good
    module.power_cycle()
    clock.advance_ms(250)
    assert u8(bus, ERROR) == 0xFB
    command(bus, CMD_SAVE_USER_CONFIG)
    assert u8(bus, ERROR) == 0
    assert module.flash_writes == 1
    _reset_and_wait(clock, bus)
    assert u8(bus, ERROR) == 0
    module.power_cycle()
    clock.advance_ms(250)
    assert u8(bus, ERROR) == 0


def test_a_provisioned_module_boots_with_error_ok():
    clock, module, bus = make(fresh_flash=False)
    assert u8(bus, ERROR) == 0
    assert module.flash_writes == 0


# ---------------------------------------------------------------- sensor class and CT models


def test_changing_sensor_class_resets_the_staged_ct_model():
    clock, module, bus = make()
    write(bus, SENSOR_CLASS, 1)
    write(bus, CT_MODEL, 4)
    _clear_all_events(bus)
    write(bus, SENSOR_CLASS, 1)  # same class: nothing changes
    assert u8(bus, CT_MODEL) == 4
    assert u8(bus, EVENT_FLAGS) & EV_CONFIG_CHANGED == 0
    write(bus, SENSOR_CLASS, 2)
    assert u8(bus, SENSOR_CLASS) == 2
    assert u8(bus, CT_MODEL) == 0
    assert u8(bus, EVENT_FLAGS) & EV_CONFIG_CHANGED
    write(bus, SENSOR_CLASS, 4)  # 0..3 only
    assert u8(bus, ERROR) == 0xFE
    assert u8(bus, SENSOR_CLASS) == 2


def test_ct_model_staging_and_binding_per_channel():
    clock, module, bus = make("UI3")
    write(bus, SENSOR_CLASS, 1)
    for bad in (0, 8, 0xFF):
        write(bus, CT_MODEL, bad)
        assert u8(bus, ERROR) == 0xFE, bad
    codes = (2, 7, 5)
    for ch in range(3):
        write(bus, CT_MODEL, codes[ch])
        assert u8(bus, CT_MODEL) == codes[ch]
        assert u8(bus, CT_MODEL_CH0 + ch) == 0  # staging alone binds nothing
        command(bus, CMD_SET_CT_CH0 + ch)
        assert u8(bus, ERROR) == 0
    assert bus.readfrom_mem(ADDR, CT_MODEL_CH0, 3) == bytes(codes)


def test_ct_binding_is_rejected_without_sct013_class_or_beyond_the_topology():
    clock, module, bus = make("UI1")
    write(bus, SENSOR_CLASS, 2)  # wired CT: CT models do not apply
    write(bus, CT_MODEL, 3)
    command(bus, CMD_SET_CT_CH0)
    assert u8(bus, ERROR) == 0xFE
    assert u8(bus, CT_MODEL_CH0) == 0
    write(bus, SENSOR_CLASS, 1)
    command(bus, CMD_SET_CT_CH0)  # the class change reset the staged code
    assert u8(bus, ERROR) == 0xFE
    write(bus, CT_MODEL, 3)
    command(bus, CMD_SET_CT_CH0 + 1)  # UI1 has one channel
    assert u8(bus, ERROR) == 0xFE
    assert u8(bus, CT_MODEL_CH0 + 1) == 0
    command(bus, CMD_SET_CT_CH0)
    assert u8(bus, ERROR) == 0 and u8(bus, CT_MODEL_CH0) == 3


# ---------------------------------------------------------------- saving and persistence


def _provision(bus):
    write(bus, SENSOR_CLASS, 1)
    write(bus, CT_MODEL, 6)
    command(bus, CMD_SET_CT_CH0)
    write(bus, CT_MODEL, 3)
    command(bus, CMD_SET_CT_CH0 + 1)
    write(bus, FLEET_CONFIG, 1)
    write(bus, GROUP_ID, 4)
    _write_label(bus, b"garage")


def _assert_provisioned(bus):
    assert u8(bus, SENSOR_CLASS) == 1
    assert _bytewise(bus, CT_MODEL_CH0, 2) == b"\x06\x03"
    assert u8(bus, FLEET_CONFIG) == 1 and u8(bus, GROUP_ID) == 4
    assert _label(bus) == b"garage\x00\x00"


def _assert_factory(bus):
    assert u8(bus, SENSOR_CLASS) == 0
    assert _bytewise(bus, CT_MODEL_CH0, 2) == b"\x00\x00"
    assert u8(bus, FLEET_CONFIG) == 0 and u8(bus, GROUP_ID) == 0
    assert _label(bus) == bytes(8)


def test_save_user_config_on_v13_persists_across_power_cycle_and_reboot():
    clock, module, bus = make("UI2", version=0x04)
    _provision(bus)
    command(bus, CMD_SAVE_USER_CONFIG)
    assert u8(bus, ERROR) == 0
    assert module.flash_writes == 1
    # Unsaved changes made after the save are lost at the next boot.
    write(bus, SENSOR_CLASS, 3)
    _write_label(bus, b"scratch")
    write(bus, DIGEST_CONFIG, 0x03)
    module.power_cycle()
    clock.advance_ms(250)
    _assert_provisioned(bus)
    assert u8(bus, DIGEST_CONFIG) == 0
    assert u8(bus, RESET_CAUSE) == 0x02  # POR
    module.reboot_at(clock.now_us() + 1000000)
    clock.advance_ms(1300)
    assert u8(bus, RESET_CAUSE) == 0x08  # IWDG
    _assert_provisioned(bus)
    assert module.flash_writes == 1


def test_unsaved_settings_are_lost_at_power_cycle():
    clock, module, bus = make("UI2")
    _provision(bus)
    _assert_provisioned(bus)
    module.power_cycle()
    clock.advance_ms(250)
    _assert_factory(bus)
    assert module.flash_writes == 0


def test_save_gains_0x26_is_rejected_on_v13_and_saves_nothing():
    clock, module, bus = make("UI2", version=0x04)
    _provision(bus)
    _clear_all_events(bus)
    command(bus, CMD_SAVE_GAINS)
    assert u8(bus, ERROR) == 0xFE
    assert module.flash_writes == 0
    clock.advance_ms(250)
    assert u8(bus, EVENT_FLAGS) & EV_ERROR
    _reset_and_wait(clock, bus)
    _assert_factory(bus)


def test_v12_persists_with_save_gains_and_has_no_save_user_config():
    clock, module, bus = make("UI2", version=0x03)
    _provision(bus)
    command(bus, CMD_SAVE_USER_CONFIG)
    # protocol.md: v1.2 has no SAVE_USER_CONFIG; it leaves the error code open, so only
    # "rejected and nothing saved" is checked.
    assert u8(bus, ERROR) != 0
    assert u8(bus, STATUS) & ST_ERROR
    assert module.flash_writes == 0
    command(bus, CMD_SAVE_GAINS)
    assert u8(bus, ERROR) == 0
    assert module.flash_writes == 1
    module.power_cycle()
    clock.advance_ms(250)
    _assert_provisioned(bus)


def test_save_marks_config_changed():
    clock, module, bus = make()
    _clear_all_events(bus)
    command(bus, CMD_SAVE_USER_CONFIG)
    assert u8(bus, EVENT_FLAGS) & EV_CONFIG_CHANGED


# ---------------------------------------------------------------- address change


def _read_at(bus, addr, reg):
    return bus.readfrom_mem(addr, reg, 1)[0]


def test_two_phase_address_change_answers_at_the_new_address_only():
    clock, module, bus = make()
    write(bus, I2C_ADDRESS, 0x42)
    assert u8(bus, ERROR) == 0
    assert u8(bus, I2C_ADDRESS) == 0x42  # the staged value
    write(bus, ADDR_COMMIT_MAGIC, 0xA5)
    assert u8(bus, ERROR) == 0
    command(bus, CMD_COMMIT_ADDR)
    assert u8(bus, ERROR) == 0
    assert module.flash_writes == 1
    clock.advance_ms(700)
    assert bus.scan() == [ADDR]  # the new address takes effect at the reset
    command(bus, CMD_RESET)
    clock.advance_ms(350)
    assert bus.scan() == [0x42]
    assert oserror_errno(bus.readfrom_mem, ADDR, STATUS, 1) == ENODEV
    assert _read_at(bus, 0x42, I2C_ADDRESS) == 0x42
    assert _read_at(bus, 0x42, 0x54) == 0x01
    assert _read_at(bus, 0x42, EVENT_FLAGS) & EV_RESET_OCCURRED
    module.power_cycle()
    clock.advance_ms(250)
    assert bus.scan() == [0x42]  # the address is in flash


def test_commit_addr_without_magic_is_rejected():
    clock, module, bus = make()
    write(bus, I2C_ADDRESS, 0x42)
    command(bus, CMD_COMMIT_ADDR)
    assert u8(bus, ERROR) == 0xFE
    write(bus, ADDR_COMMIT_MAGIC, 0x5A)  # only 0xA5 arms
    assert u8(bus, ERROR) == 0xFE
    command(bus, CMD_COMMIT_ADDR)
    assert u8(bus, ERROR) == 0xFE
    assert module.flash_writes == 0
    _reset_and_wait(clock, bus)
    assert bus.scan() == [ADDR]
    assert u8(bus, I2C_ADDRESS) == ADDR  # reads the active address after boot


def test_commit_addr_needs_a_staged_address():
    clock, module, bus = make()
    write(bus, ADDR_COMMIT_MAGIC, 0xA5)
    command(bus, CMD_COMMIT_ADDR)
    assert u8(bus, ERROR) == 0xFE
    assert module.flash_writes == 0


def test_staged_address_must_be_valid():
    clock, module, bus = make()
    for bad in (0x00, 0x07, 0x78, 0xFF):
        write(bus, I2C_ADDRESS, bad)
        assert u8(bus, ERROR) == 0xFE, bad
        assert u8(bus, I2C_ADDRESS) == ADDR


def test_commit_magic_expires_after_5_s():
    clock, module, bus = make()
    write(bus, I2C_ADDRESS, 0x42)
    write(bus, ADDR_COMMIT_MAGIC, 0xA5)
    clock.advance_ms(5100)
    command(bus, CMD_COMMIT_ADDR)
    assert u8(bus, ERROR) == 0xFE
    assert module.flash_writes == 0
    write(bus, ADDR_COMMIT_MAGIC, 0xA5)  # re-arming works
    clock.advance_ms(4800)
    command(bus, CMD_COMMIT_ADDR)
    assert u8(bus, ERROR) == 0
    _reset_and_wait(clock, bus)
    assert bus.scan() == [0x42]


def test_magic_is_consumed_by_a_commit():
    clock, module, bus = make()
    write(bus, I2C_ADDRESS, 0x42)
    write(bus, ADDR_COMMIT_MAGIC, 0xA5)
    command(bus, CMD_COMMIT_ADDR)
    assert u8(bus, ERROR) == 0
    write(bus, I2C_ADDRESS, 0x43)
    command(bus, CMD_COMMIT_ADDR)
    assert u8(bus, ERROR) == 0xFE
    _reset_and_wait(clock, bus)
    assert bus.scan() == [0x42]


# ---------------------------------------------------------------- thresholds, mask, DRDY


def _step_load():
    # 100 W, then 3000 W (13 A at 230 V) from 2 s to 4 s, then 100 W again.
    return loads.Schedule([(0, [100.0]), (2, [3000.0]), (4, [100.0])])


def test_power_threshold_raises_thresh_p_only():
    clock, module, bus = make("UI1", load=_step_load())
    _write_u16(bus, THRESH_P_HI, 1000)
    _clear_all_events(bus)
    clock.advance_ms(1500)  # ~1.75 s, still 100 W
    assert u8(bus, EVENT_FLAGS) == 0
    clock.advance_ms(700)
    assert u8(bus, EVENT_FLAGS) == EV_THRESH_P
    clock.advance_ms(3000)  # load is back to 100 W: the flag is latched until cleared
    assert u8(bus, EVENT_FLAGS) == EV_THRESH_P
    write(bus, EVENT_FLAGS, EV_THRESH_P)
    clock.advance_ms(1000)
    assert u8(bus, EVENT_FLAGS) == 0


def test_current_threshold_raises_thresh_i_only():
    clock, module, bus = make("UI1", load=_step_load())
    _write_u16(bus, THRESH_I_HI, 1000)  # 10.00 A
    _clear_all_events(bus)
    clock.advance_ms(1500)
    assert u8(bus, EVENT_FLAGS) == 0
    clock.advance_ms(700)
    assert u8(bus, EVENT_FLAGS) == EV_THRESH_I


def test_thresholds_off_at_0xffff_and_just_above_the_load_do_not_fire():
    clock, module, bus = make("UI1", load=_step_load())
    _clear_all_events(bus)
    clock.advance_ms(3000)
    assert u8(bus, EVENT_FLAGS) == 0
    _write_u16(bus, THRESH_P_HI, 3001)
    _write_u16(bus, THRESH_I_HI, 1400)  # 14.00 A > 13.04 A
    clock.advance_ms(800)
    assert u8(bus, EVENT_FLAGS) == 0


def test_event_mask_holds_drdy_low_until_the_flag_is_cleared():
    clock, module, bus = make("UI1", load=_step_load())
    edges = []
    module.drdy.irq(lambda pin: edges.append(clock.now_us()))
    _write_u16(bus, THRESH_P_HI, 1000)
    _clear_all_events(bus)
    write(bus, EVENT_MASK, EV_THRESH_P)
    clock.advance_ms(1500)
    assert module.drdy.value() == 1
    pulses_before = len(edges)
    assert pulses_before >= 5
    clock.advance_ms(700)  # the threshold crossing at ~2.2 s
    # The pin is read without any bus traffic: DRDY must follow the module on its own.
    assert module.drdy.value() == 0
    held_since = len(edges)
    assert held_since > pulses_before  # RT pulses up to the crossing, then the hold's own edge
    clock.advance_ms(3000)
    assert module.drdy.value() == 0
    assert len(edges) == held_since  # no RT pulses while held low
    write(bus, EVENT_FLAGS, EV_THRESH_P)
    assert module.drdy.value() == 1
    clock.advance_ms(1000)
    assert len(edges) == held_since + 5  # pulses resume
    assert module.drdy.value() == 1


def test_drdy_level_follows_the_module_when_polled_without_a_handler():
    # A driver whose IRQ edge was lost polls the pin; no bus traffic happens in between.
    clock, module, bus = make("UI1", load=_step_load())
    _write_u16(bus, THRESH_P_HI, 1000)
    _clear_all_events(bus)
    write(bus, EVENT_MASK, EV_THRESH_P)
    clock.advance_ms(1500)
    assert module.drdy.value() == 1
    clock.advance_ms(700)
    assert module.drdy.value() == 0
    write(bus, EVENT_FLAGS, EV_THRESH_P)
    assert module.drdy.value() == 1


def test_event_mask_on_a_bit_already_set_holds_drdy_at_once():
    clock, module, bus = make()
    assert u8(bus, EVENT_FLAGS) & EV_RESET_OCCURRED
    write(bus, EVENT_MASK, EV_RESET_OCCURRED)
    assert module.drdy.value() == 0
    write(bus, EVENT_MASK, EV_PERIOD_READY)  # masking something else releases it
    assert module.drdy.value() == 1


def test_drdy_pulses_five_times_a_second():
    clock, module, bus = make("UI2")
    edges = []
    module.drdy.irq(lambda pin: edges.append(clock.now_us()))
    start = clock.now_us()
    clock.advance_ms(10000)
    assert len(edges) == 50
    gaps = [edges[i + 1] - edges[i] for i in range(len(edges) - 1)]
    assert min(gaps) == 200000 and max(gaps) == 200000
    assert edges[0] - start <= 200000
    module.drdy.irq(None)
    clock.advance_ms(1000)
    assert len(edges) == 50


def test_drdy_handler_receives_the_pin_and_may_read_the_bus():
    clock, module, bus = make()
    seen = []

    def on_drdy(pin):
        # Reading the pin and the RT block from inside the handler must not disturb the windows.
        pin.value()
        seen.append((pin, bus.readfrom_mem(ADDR, 0xCE, 1)[0]))

    module.drdy.irq(on_drdy)
    clock.advance_ms(1000)
    assert len(seen) == 5
    for pin, rt_status in seen:
        assert pin is module.drdy
        assert rt_status & 0x01


def test_registering_a_handler_late_does_not_deliver_past_edges():
    clock, module, bus = make()
    clock.advance_ms(1050)  # several windows pass with nobody listening
    edges = []
    module.drdy.irq(lambda pin: edges.append(clock.now_us()))
    assert edges == []
    clock.advance_ms(100)
    assert len(edges) == 1


# ---------------------------------------------------------------- General-Call latch


def _fleet(addrs):
    clock = VirtualClock()
    modules = [SimModule("UI1", addr=a, clock=clock, load=loads.Constant([500.0])) for a in addrs]
    bus = SimI2C(modules, clock=clock)
    clock.advance_ms(250)
    return clock, modules, bus


def _gc(bus, group, tick):
    return bus.writeto(0x00, bytes((0xA5, 0x27, group, tick & 0xFF, tick >> 8)))


def _enable_fleet(bus, addr, group):
    bus.writeto_mem(addr, FLEET_CONFIG, b"\x01")
    bus.writeto_mem(addr, GROUP_ID, bytes((group,)))
    bus.writeto_mem(addr, 0x01, bytes((CMD_SAVE_USER_CONFIG,)))
    bus.writeto_mem(addr, 0x01, bytes((CMD_RESET,)))


def _count_at(bus, addr):
    data = bus.readfrom_mem(addr, PERIOD_COMMIT_CNT, 4)
    return data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)


def test_general_call_is_nacked_when_nobody_listens():
    clock, modules, bus = _fleet((0x50,))
    assert oserror_errno(_gc, bus, 0, 1) == ENODEV
    bus.writeto_mem(0x50, FLEET_CONFIG, b"\x01")  # effective only after a reset
    assert oserror_errno(_gc, bus, 0, 1) == ENODEV
    bus.writeto_mem(0x50, 0x01, bytes((CMD_RESET,)))  # unsaved: the reset drops it
    clock.advance_ms(350)
    assert _read_at(bus, 0x50, FLEET_CONFIG) == 0
    assert oserror_errno(_gc, bus, 0, 1) == ENODEV
    assert bus.readfrom_mem(0x50, GC_TICK, 2) == b"\xff\xff"


def test_general_call_needs_the_latch_frame():
    clock, modules, bus = _fleet((0x50,))
    _enable_fleet(bus, 0x50, 0)
    clock.advance_ms(350)
    assert oserror_errno(bus.writeto, 0x00, bytes((0x5A, 0x27, 0, 1, 0))) == ENODEV
    assert oserror_errno(bus.writeto, 0x00, bytes((0xA5, 0x01, 0, 1, 0))) == ENODEV
    assert oserror_errno(bus.writeto, 0x00, bytes((0xA5, 0x27, 0))) == ENODEV
    assert _gc(bus, 0, 7) == 5
    clock.advance_ms(50)
    assert bus.readfrom_mem(0x50, GC_TICK, 2) == b"\x07\x00"


def test_general_call_latches_the_group_and_modules_in_group_zero():
    clock, modules, bus = _fleet((0x50, 0x51, 0x52, 0x53))
    for addr, group in ((0x50, 2), (0x51, 2), (0x52, 3), (0x53, 0)):
        _enable_fleet(bus, addr, group)
    clock.advance_ms(350)
    for addr in (0x50, 0x51, 0x52, 0x53):
        assert _read_at(bus, addr, FLEET_CONFIG) == 1
        bus.writeto_mem(addr, 0x01, bytes((CMD_LATCH,)))  # prime
    clock.advance_ms(50)
    primed = _count_at(bus, 0x52)
    clock.advance_ms(2000 - 50)
    _gc(bus, 2, 0x1234)
    clock.advance_ms(50)
    for addr in (0x50, 0x51, 0x53):
        assert _read_at(bus, addr, PERIOD_VALID) == 1, addr
        assert _count_at(bus, addr) == 10, addr
        assert bus.readfrom_mem(addr, GC_TICK, 2) == b"\x34\x12", addr
    # The group-3 module ignored the frame: its snapshot is still the priming one.
    assert bus.readfrom_mem(0x52, GC_TICK, 2) == b"\xff\xff"
    assert _count_at(bus, 0x52) == primed
    bus.writeto_mem(0x52, 0x01, bytes((CMD_LATCH,)))
    clock.advance_ms(50)
    assert _read_at(bus, 0x52, PERIOD_VALID) == 1
    assert _count_at(bus, 0x52) >= 10  # still accumulating since its priming latch


def test_general_call_skips_a_module_that_is_still_booting():
    clock, modules, bus = _fleet((0x50, 0x51))
    for addr in (0x50, 0x51):
        _enable_fleet(bus, addr, 0)
    clock.advance_ms(350)
    modules[1].power_cycle()
    assert _gc(bus, 0, 3) == 5
    clock.advance_ms(50)
    assert bus.readfrom_mem(0x50, GC_TICK, 2) == b"\x03\x00"
    assert bus.readfrom_mem(0x51, GC_TICK, 2) == b"\xff\xff"
