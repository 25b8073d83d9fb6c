RUNTIMES = ("cpython", "mpy64", "mpy32")

# Fault injection and boot behaviour of the simulator: NACK rate, EMI bursts, the ESP32 ghost
# bytes, a stuck bus, unplugging, watchdog reboots, the cold-boot timeline and unmapped registers.

import struct

import xrt
from rbampsim import SimI2C, SimModule, VirtualClock, loads
from support_sim import ADDR, command, latch, make, oserror_errno, u8, u16, u32_bytewise, write

PRODUCT_ID = 0x54
EVENT_FLAGS = 0x2A
RESET_CAUSE = 0x4A
I2C_ERR_COUNT = 0x4B
U_RMS = 0x86
PERIOD_VALID = 0x07
PERIOD_COMMIT_CNT = 0xBE

ENODEV, EIO, ETIMEDOUT = 19, 5, 110  # Linux numbers, which MicroPython's unix port uses too


def _read_outcomes(bus, count):
    """Read PRODUCT_ID count times; return (failures, errnos seen, wrong values)."""
    failures = 0
    errnos = set()
    wrong = 0
    for _ in range(count):
        try:
            value = bus.readfrom_mem(ADDR, PRODUCT_ID, 1)[0]
        except OSError as exc:
            failures += 1
            errnos.add(exc.args[0])
            continue
        if value != 0x01:
            wrong += 1
    return failures, errnos, wrong


def _nack_pattern(seed, count):
    clock, module, bus = make(seed=seed)
    module.faults.nack_rate = 0.3
    pattern = bytearray(count)
    for i in range(count):
        try:
            bus.readfrom_mem(ADDR, PRODUCT_ID, 1)
        except OSError:
            pattern[i] = 1
    return bytes(pattern)


# ---------------------------------------------------------------- NACK rate


def test_nack_rate_fails_about_that_share_of_transactions():
    clock, module, bus = make()
    module.faults.nack_rate = 0.2
    n = 2000
    failures, errnos, wrong = _read_outcomes(bus, n)
    # 400 expected, sigma ~18: the bounds are > 5 sigma wide yet fail for a broken feature.
    assert 300 <= failures <= 500, failures
    assert errnos == {EIO}
    assert wrong == 0  # without the ghost quirk a NACK never corrupts a later read
    assert module.faults.injected_nacks == failures
    assert bus.stats.nacks == failures
    assert bus.stats.transactions == n
    module.faults.nack_rate = 0.0
    assert u16(bus, I2C_ERR_COUNT) == failures  # the module counts its own bus errors


def test_no_nacks_without_faults():
    clock, module, bus = make()
    failures, errnos, wrong = _read_outcomes(bus, 500)
    assert failures == 0 and wrong == 0
    assert u16(bus, I2C_ERR_COUNT) == 0


def test_nack_rate_one_fails_everything_and_writes_are_not_applied():
    clock, module, bus = make()
    module.faults.nack_rate = 1.0
    failures, errnos, wrong = _read_outcomes(bus, 50)
    assert failures == 50
    assert oserror_errno(write, bus, 0x29, 0x0F) == EIO
    module.faults.clear()
    assert u8(bus, 0x29) == 0


def test_nack_pattern_is_reproducible_from_the_seed():
    a = _nack_pattern(7, 300)
    assert a == _nack_pattern(7, 300)
    assert a != _nack_pattern(8, 300)
    assert 40 <= sum(a) <= 140, sum(a)


# ---------------------------------------------------------------- EMI bursts


def test_emi_burst_fails_most_transactions_inside_the_window_and_none_outside():
    clock, module, bus = make()
    start = clock.now_us() + 100000
    module.faults.add_emi_burst(start, 40000)
    end = start + 40000
    inside = inside_failed = outside = outside_failed = 0
    while clock.now_us() < end + 100000:
        t = clock.now_us()
        try:
            bus.readfrom_mem(ADDR, PRODUCT_ID, 1)
            failed = False
        except OSError as exc:
            assert exc.args[0] == EIO
            failed = True
        if start <= t < end:
            inside += 1
            inside_failed += failed
        else:
            outside += 1
            outside_failed += failed
    assert inside >= 40, inside
    assert outside >= 150, outside
    assert outside_failed == 0
    share = inside_failed / inside
    assert 0.4 <= share <= 0.9, (inside_failed, inside)


def test_emi_burst_rate_and_validation():
    clock, module, bus = make()
    module.faults.add_emi_burst(clock.now_us(), 30000, fail_rate=1.0)
    failures, errnos, wrong = _read_outcomes(bus, 20)  # ~14 ms of traffic, all inside
    assert failures == 20
    clock.advance_ms(30)
    failures, errnos, wrong = _read_outcomes(bus, 20)
    assert failures == 0  # the bus recovers by itself
    faults = module.faults
    xrt.raises(ValueError, faults.add_emi_burst, 0, 0)
    xrt.raises(ValueError, faults.add_emi_burst, 0, 1000, 1.5)
    assert len(faults.bursts) == 1


# ---------------------------------------------------------------- ESP32 ghost bytes


def _nack_once(module, bus):
    module.faults.nack_rate = 1.0
    assert oserror_errno(bus.readfrom_mem, ADDR, U_RMS, 4) == EIO
    module.faults.nack_rate = 0.0


def test_ghost_bytes_follow_a_nack_once():
    clock, module, bus = make(powers=[100.0])
    module.faults.ghost = True
    _nack_once(module, bus)
    ghost = bus.readfrom_mem(ADDR, U_RMS, 4)
    assert ghost == b"\x3f\xfb\x2f\x3c"
    assert struct.unpack("<I", ghost)[0] == 0x3C2FFB3F
    value = struct.unpack("<f", ghost)[0]
    assert value == value and 0.0 < value < 1.0  # finite and harmless-looking: a NaN check misses it
    assert module.faults.ghost_reads == 1
    assert struct.unpack("<f", bus.readfrom_mem(ADDR, U_RMS, 4))[0] == 230.0


def test_ghost_bytes_fill_any_read_length_and_survive_a_write_in_between():
    clock, module, bus = make()
    module.faults.ghost = True
    _nack_once(module, bus)
    write(bus, 0x29, 0x01)  # the stale buffer belongs to the next read, not the next write
    assert u8(bus, PRODUCT_ID) == 0x3F
    _nack_once(module, bus)
    assert bus.readfrom_mem(ADDR, 0x5C, 10) == b"\x3f\xfb\x2f\x3c" * 2 + b"\x3f\xfb"
    assert u8(bus, 0x29) == 0x01


def test_no_ghost_bytes_without_the_quirk_or_without_a_nack():
    clock, module, bus = make()
    _nack_once(module, bus)
    assert struct.unpack("<f", bus.readfrom_mem(ADDR, U_RMS, 4))[0] == 230.0
    module.faults.ghost = True
    for _ in range(20):
        assert struct.unpack("<f", bus.readfrom_mem(ADDR, U_RMS, 4))[0] == 230.0
    assert module.faults.ghost_reads == 0


# ---------------------------------------------------------------- stuck bus, unplug


def test_stuck_bus_times_out_everything_until_released():
    clock, module, bus = make()
    bus.faults.stuck = True
    assert oserror_errno(bus.readfrom_mem, ADDR, PRODUCT_ID, 1) == ETIMEDOUT
    assert oserror_errno(write, bus, 0x29, 1) == ETIMEDOUT
    assert oserror_errno(bus.readfrom, ADDR, 1) == ETIMEDOUT
    assert oserror_errno(bus.writeto, 0x00, bytes((0xA5, 0x27, 0, 0, 0))) == ETIMEDOUT
    assert oserror_errno(bus.readfrom_mem, 0x33, PRODUCT_ID, 1) == ETIMEDOUT  # even absent ones
    assert bus.scan() == []
    bus.faults.stuck = False
    assert u8(bus, PRODUCT_ID) == 0x01
    assert u8(bus, 0x29) == 0  # the write during the hang never arrived
    assert bus.scan() == [ADDR]


def test_unplug_gives_enodev_and_plug_cold_boots():
    clock, module, bus = make()
    write(bus, EVENT_FLAGS, 0xFF)
    module.unplug()
    assert oserror_errno(bus.readfrom_mem, ADDR, PRODUCT_ID, 1) == ENODEV
    assert bus.scan() == []
    clock.advance_ms(5000)
    assert oserror_errno(bus.readfrom_mem, ADDR, PRODUCT_ID, 1) == ENODEV
    module.plug()
    assert oserror_errno(bus.readfrom_mem, ADDR, PRODUCT_ID, 1) == ENODEV  # boot NACK window
    clock.advance_ms(15)
    assert u8(bus, EVENT_FLAGS) & 0x20
    assert u8(bus, RESET_CAUSE) == 0x02  # POR
    assert u8(bus, 0x46) == 0  # uptime restarted


# ---------------------------------------------------------------- reboots


def test_reboot_at_sets_reset_occurred_and_restarts_the_period_sequence():
    clock, module, bus = make(powers=[100.0])
    write(bus, 0x29, 0x0F)
    latch(clock, bus)  # primed
    write(bus, EVENT_FLAGS, 0xFF)
    reboot = clock.now_us() + 3000000
    module.reboot_at(reboot)
    clock.advance_us(reboot - clock.now_us() - 1000)
    assert u8(bus, EVENT_FLAGS) & 0x20 == 0
    clock.advance_ms(5)
    # ~4 ms after the reboot: still inside the boot NACK window.
    assert oserror_errno(bus.readfrom_mem, ADDR, PRODUCT_ID, 1) == ENODEV
    clock.advance_ms(10)
    assert u8(bus, EVENT_FLAGS) & 0x20
    assert u8(bus, RESET_CAUSE) == 0x08  # IWDG
    assert u8(bus, 0x29) == 0  # RAM settings are gone
    clock.advance_us(reboot + 2100000 - clock.now_us())
    latch(clock, bus)
    assert u8(bus, PERIOD_VALID) == 1
    # The latch covers the span since the reboot only (10 windows), not since the priming latch.
    assert u32_bytewise(bus, PERIOD_COMMIT_CNT) == 10


def test_two_scheduled_reboots_both_happen():
    clock, module, bus = make()
    t0 = clock.now_us()
    module.reboot_at(t0 + 1000000)
    module.reboot_at(t0 + 3000000)
    boots = module.boots
    clock.advance_ms(2000)
    assert module.boots == boots + 1
    clock.advance_ms(2000)
    assert module.boots == boots + 2
    clock.advance_ms(5000)
    assert module.boots == boots + 2


# ---------------------------------------------------------------- cold boot


def _cold(version=0x04):
    clock = VirtualClock()
    module = SimModule("UI1", version=version, addr=ADDR, clock=clock, load=loads.Constant([500.0]))
    return clock, module, SimI2C([module], clock=clock)


def test_cold_boot_nacks_for_the_first_10_ms():
    clock, module, bus = _cold()
    clock.advance_ms(9)
    assert oserror_errno(bus.readfrom_mem, ADDR, PRODUCT_ID, 1) == ENODEV
    assert bus.scan() == []
    clock.advance_ms(1)
    assert bus.scan() == [ADDR]
    assert u8(bus, PRODUCT_ID) == 0x01


def test_cold_boot_is_not_ready_then_ready_then_rt_valid():
    clock, module, bus = _cold()
    clock.advance_ms(20)
    assert u8(bus, 0x00) & 0x01 == 0
    command(bus, 0x27)
    assert u8(bus, 0x02) == 0xFC  # commands are refused while not ready
    assert u8(bus, 0xCE) & 0x01 == 0
    assert struct.unpack("<f", bus.readfrom_mem(ADDR, U_RMS, 4))[0] == 0.0
    clock.advance_ms(60)  # ~80 ms
    assert u8(bus, 0x00) & 0x01
    clock.advance_ms(125)  # past the first 200 ms window
    assert u8(bus, 0xCE) & 0x01
    assert struct.unpack("<f", bus.readfrom_mem(ADDR, U_RMS, 4))[0] == 230.0


def test_first_valid_latch_comes_with_the_first_window():
    early_clock, early, early_bus = _cold()
    early_clock.advance_ms(190)
    latch(early_clock, early_bus)
    assert u8(early_bus, PERIOD_VALID) == 0  # nothing measured yet
    late_clock, late, late_bus = _cold()
    late_clock.advance_ms(210)
    latch(late_clock, late_bus)
    assert u8(late_bus, PERIOD_VALID) == 1
    assert u32_bytewise(late_bus, PERIOD_COMMIT_CNT) == 1


# ---------------------------------------------------------------- unmapped registers

# Every mapped address from protocol.md's register map (multi-byte registers in full).
_MAPPED_SPANS = (
    (0x00, 4), (0x05, 1), (0x07, 1), (0x10, 8), (0x20, 3), (0x24, 2), (0x27, 11), (0x46, 7),
    (0x51, 10), (0x5C, 12), (0x68, 8), (0x70, 22), (0x86, 56), (0xBE, 17), (0xD0, 12),
    (0xDC, 8), (0xEC, 4),
)


def _unmapped():
    mapped = bytearray(256)
    for start, length in _MAPPED_SPANS:
        for reg in range(start, start + length):
            mapped[reg] = 1
    return [reg for reg in range(256) if not mapped[reg]]


def test_unmapped_registers_read_zero_after_activity_on_both_versions():
    for version in (0x03, 0x04):
        clock, module, bus = make("UI3", version=version, powers=[900.0, -400.0, 120.0])
        write(bus, 0x29, 0x0F)
        write(bus, 0x2C, 0x10)
        write(bus, 0x2E, 0x20)
        write(bus, 0x2B, 0x01)
        for i, ch in enumerate(b"label"):
            write(bus, 0x68 + i, ch)
        latch(clock, bus)
        clock.advance_ms(2000)
        latch(clock, bus)
        unmapped = _unmapped()
        assert len(unmapped) > 60
        for reg in unmapped:
            assert u8(bus, reg) == 0, (version, hex(reg))
        if version == 0x04:
            page = bus.readfrom_mem(ADDR, 0x00, 255) + bus.readfrom_mem(ADDR, 0xFF, 1)
            assert [reg for reg in unmapped if page[reg]] == []
