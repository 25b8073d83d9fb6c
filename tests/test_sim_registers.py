RUNTIMES = ("cpython", "mpy64", "mpy32")

import struct

import xrt
from rbampsim import loads
from support_sim import ADDR, command, f32, f32_bytewise, make, oserror_errno, u8, u16, write


def test_identity_registers_per_variant_and_version():
    expected = {"UI1": (1, 1, True), "UI2": (2, 2, True), "I1": (4, 1, False), "I2": (5, 2, False),
                "I3": (6, 3, False)}
    for variant in expected:
        code, channels, has_u = expected[variant]
        for version in (0x03, 0x04):
            clock, module, bus = make(variant, version)
            assert u8(bus, 0x54) == 0x01
            assert u8(bus, 0x03) == version
            assert u8(bus, 0x55) == code
            assert u8(bus, 0x24) == channels
            cap = u16(bus, 0x57) if version == 0x04 else u8(bus, 0x57) | (u8(bus, 0x58) << 8)
            assert bool(cap & 0x0100) == has_u
            assert bool(cap & 0x0200) == (version == 0x04)
            if version == 0x04:
                assert cap == (0x079E if has_u else 0x069E)
            assert u16(bus, 0x2C) == 0xFFFF and u16(bus, 0x2E) == 0xFFFF
            assert u16(bus, 0x59) == 0xFFFF
            assert u8(bus, 0x30) == ADDR


def test_uid_is_twelve_bytes_and_stable():
    clock, module, bus = make(uid=bytes(range(1, 13)))
    assert bus.readfrom_mem(ADDR, 0x5C, 12) == bytes(range(1, 13))
    command(bus, 0x01)
    clock.advance_ms(400)
    assert bus.readfrom_mem(ADDR, 0x5C, 12) == bytes(range(1, 13))


def test_unmapped_registers_read_zero_and_never_nack():
    clock, module, bus = make()
    for reg in (0x04, 0x06, 0x40, 0x4F, 0xF0, 0xFF):
        assert u8(bus, reg) == 0


def test_rt_block_values_from_the_load():
    clock, module, bus = make("UI2", powers=[1000.0, -460.0], load=None)
    raw = bus.readfrom_mem(ADDR, 0x86, 56)
    rt = struct.unpack("<14f", raw)
    u_rms, u_peak = rt[0], rt[1]
    assert u_rms == 230.0
    assert abs(u_peak - 230.0 * 1.41421356) < 0.01
    assert rt[8] == 1000.0 and rt[9] == -460.0 and rt[10] == 0.0
    assert abs(rt[2] - 1000.0 / 230.0) < 1e-4 and abs(rt[3] - 2.0) < 1e-4 and rt[4] == 0.0
    assert rt[11] == 1.0 and rt[12] == 1.0
    assert u8(bus, 0x20) == 50 and u16(bus, 0x21) == 10000
    assert u8(bus, 0xCE) & 0x01


def test_i_variants_read_zero_voltage_and_power_but_real_currents():
    clock, module, bus = make("I3", powers=[230.0, 460.0, 0.0])
    rt = struct.unpack("<14f", bus.readfrom_mem(ADDR, 0x86, 56))
    assert rt[0] == 0.0 and rt[1] == 0.0
    assert rt[8] == 0.0 and rt[9] == 0.0 and rt[10] == 0.0
    assert abs(rt[2] - 1.0) < 1e-4 and abs(rt[3] - 2.0) < 1e-4
    assert rt[4] == 0.0  # below the noise floor is a valid zero reading


def test_mains_frequency_60_hz():
    clock, module, bus = make(load=loads.Constant([100.0], freq=60))
    assert u8(bus, 0x20) == 60
    assert u16(bus, 0x21) == 8333


def test_v12_burst_read_repeats_the_first_byte():
    clock, module, bus = make(version=0x03, uid=bytes(range(1, 13)))
    assert bus.readfrom_mem(ADDR, 0x5C, 4) == b"\x01\x01\x01\x01"
    assert u8(bus, 0x5D) == 2


def test_v13_burst_read_auto_increments():
    clock, module, bus = make(version=0x04, uid=bytes(range(1, 13)))
    assert bus.readfrom_mem(ADDR, 0x5C, 4) == b"\x01\x02\x03\x04"


def _torn_results(version):
    # Power steps from 1000 W to 3000 W with the window that ends at 600 ms.
    results = []
    for offset_us in range(0, 5000, 100):
        clock, module, bus = make(version=version, boot=False,
                                  load=loads.Schedule([(0, [1000.0]), (0.4, [3000.0])]))
        clock.advance_us(600000 - 4000 + offset_us)
        if version == 0x03:
            results.append(f32_bytewise(bus, 0xA6))
        else:
            results.append(f32(bus, 0xA6))
    return results


def test_v12_bytewise_float_can_be_torn_by_a_commit():
    results = _torn_results(0x03)
    torn = [v for v in results if v not in (1000.0, 3000.0)]
    assert torn, results
    assert 1000.0 in results and 3000.0 in results


def test_v13_burst_float_is_never_torn():
    results = _torn_results(0x04)
    assert all(v in (1000.0, 3000.0) for v in results), results
    assert 1000.0 in results and 3000.0 in results


def test_label_is_written_byte_at_a_time_and_a_burst_keeps_only_the_first_byte():
    clock, module, bus = make()
    for i, ch in enumerate(b"kitchen"):
        write(bus, 0x68 + i, ch)
    assert bus.readfrom_mem(ADDR, 0x68, 8) == b"kitchen\x00"
    bus.writeto_mem(ADDR, 0x68, b"XYZ")
    assert bus.readfrom_mem(ADDR, 0x68, 8) == b"Xitchen\x00"


def test_digest_composition_follows_digest_config():
    clock, module, bus = make("UI2", powers=[1150.0, -230.0])
    write(bus, 0x29, 0x0F)
    clock.advance_ms(200)
    digest = bus.readfrom_mem(ADDR, 0x70, 22)
    status, seq = digest[0], digest[1]
    i0, i1, u, p0, p1 = struct.unpack_from("<HHHhh", digest, 2)
    pf0, pf1 = digest[12], digest[13]
    assert status == u8(bus, 0x00)
    assert i0 == 500 and i1 == 100
    assert u == 2300
    assert p0 == 1150 and p1 == -230
    assert pf0 == 100 and pf1 == 100
    assert digest[14:] == bytes(8)
    clock.advance_ms(400)
    assert (bus.readfrom_mem(ADDR, 0x70, 2)[1] - seq) & 0xFF == 2


def test_digest_only_voltage():
    clock, module, bus = make("UI1", powers=[100.0])
    write(bus, 0x29, 0x02)
    clock.advance_ms(200)
    digest = bus.readfrom_mem(ADDR, 0x70, 22)
    assert struct.unpack_from("<H", digest, 2)[0] == 2300
    assert digest[4:] == bytes(18)


def test_uptime_counts_seconds_since_boot():
    clock, module, bus = make()
    clock.advance_ms(10000)
    uptime = struct.unpack("<I", bus.readfrom_mem(ADDR, 0x46, 4))[0]
    assert uptime == 10


def test_readonly_register_write_is_rejected():
    clock, module, bus = make()
    write(bus, 0x54, 0x07)
    assert u8(bus, 0x54) == 0x01
    assert u8(bus, 0x02) == 0xFE


def test_missing_address_raises_enodev():
    clock, module, bus = make()
    err = oserror_errno(bus.readfrom_mem, 0x51, 0x00, 1)
    assert err == 19, err
    assert bus.scan() == [ADDR]


def test_rt_read_allocates_nothing_when_no_window_is_due():
    if not xrt.is_micropython():
        raise xrt.Skip("heap_lock is MicroPython-only")
    import micropython

    clock, module, bus = make("UI2")
    buf = bytearray(56)
    one = bytearray(1)
    for _ in range(200):
        clock.advance_ms(200)  # commits the next window outside the lock
        micropython.heap_lock()
        try:
            bus.readfrom_mem_into(ADDR, 0x86, buf)
            bus.readfrom_mem_into(ADDR, 0x07, one)
        finally:
            micropython.heap_unlock()
    assert struct.unpack_from("<f", buf, 0)[0] == 230.0
