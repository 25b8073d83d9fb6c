RUNTIMES = ("cpython", "mpy64", "mpy32")

import struct

from rbamp import RbAmpSnapshot
from rbampsim import float32, loads
from support_driver import rig
from support_sim import f32_bytewise


def test_rt_values_follow_the_load():
    load = loads.Constant([1500.0, -400.0], voltage=231.5, pf=0.8, freq=60)
    clock, module, bus, dev = rig("UI2", 0x04, load=load)
    clock.advance_ms(400)
    snap = dev.read_all()
    assert snap.voltage == float32(231.5)
    assert abs(snap.voltage_peak - 231.5 * 1.41421356) < 0.01
    assert snap.power[0] == 1500.0 and snap.power[1] == -400.0
    assert abs(snap.power_factor[0] - 0.8) < 1e-6
    assert abs(snap.current[0] - 1500.0 / 0.8 / 231.5) < 1e-3
    assert dev.voltage == snap.voltage
    assert dev.power[1] == -400.0
    assert abs(dev.reactive_power[0] - 1125.0) < 0.1  # sqrt(1875^2 - 1500^2)
    assert abs(dev.frequency - 60.0) < 0.1
    assert len(snap.power) == 2


def test_i_variants_read_zero_voltage_and_power():
    clock, module, bus, dev = rig("I2", 0x04, powers=[1000.0, 200.0])
    clock.advance_ms(400)
    snap = dev.read_all()
    assert snap.voltage == 0.0 and snap.power[0] == 0.0
    assert snap.current[0] > 0.0


def test_v13_full_read_is_one_burst_under_11_ms_at_50khz():
    clock, module, bus, dev = rig("UI3", 0x04)
    snap = RbAmpSnapshot(3)
    bus.reset_stats()
    dev.read_all(into=snap)
    assert bus.stats.transactions == 1
    assert bus.stats.bytes == 59  # address+register+address and 56 data bytes
    assert bus.stats.total_bus_time_us < 11000, bus.stats.total_bus_time_us


def test_v12_is_never_read_in_bursts():
    clock, module, bus, dev = rig("UI2", 0x03)
    bus.record_trace()
    dev.read_all()
    clock.advance_ms(400)  # at least one window in the period
    dev.read_period_snapshot()
    reads = [t for t in bus.trace if t[0] == "r"]
    assert reads and all(len(t[3]) == 1 for t in reads), [t for t in reads if len(t[3]) != 1][:3]


def _alternating(a, b, seconds):
    steps = []
    for i in range(seconds * 5):
        steps.append((0.2 * i, [a if i % 2 else b]))
    return loads.Schedule(steps)


def test_v12_byte_wise_reads_never_return_a_torn_float():
    a, b = 1000.0, 3000.0  # 0x447A0000 / 0x453B8000: mixing their bytes gives other values
    clock, module, bus, dev = rig("UI1", 0x03, load=_alternating(a, b, 40))
    torn_naive = 0
    for i in range(150):
        clock.advance_us(7919 * i % 200000)  # calls at every phase of the 200 ms window
        value = f32_bytewise(bus, 0xA6)  # the naive reader, for contrast
        if value not in (a, b):
            torn_naive += 1
        assert dev.read_power(0) in (a, b)
        snap = dev.read_all()
        assert snap.power[0] in (a, b), snap.power[0]
    assert torn_naive > 0, "the load never tore a naive read: the test would prove nothing"
    assert dev.stats.torn > 0


def test_snapshot_is_filled_in_place():
    clock, module, bus, dev = rig("UI1", 0x04, load=loads.Schedule([(0, [100.0]), (1, [900.0])]))
    snap = RbAmpSnapshot(1)
    dev.read_all(into=snap)
    assert snap.power[0] == 100.0
    clock.advance_ms(1000)
    same = dev.read_all(into=snap)
    assert same is snap and snap.power[0] == 900.0
    assert snap.to_dict()["power"] == [900.0]


def test_raw_block_matches_the_module_registers():
    clock, module, bus, dev = rig("UI3", 0x04, load=loads.Noisy([800.0, 200.0, 50.0], 30.0))
    snap = dev.read_all()
    raw = module.read_reg(0x86, 56)
    assert bytes(snap.raw) == raw
    assert struct.unpack("<f", raw[40:44])[0] == snap.power[2]


def test_v12_with_drdy_reads_one_pass_right_after_the_commit_and_is_still_never_torn():
    a, b = 1000.0, 3000.0
    clock, module, bus, dev = rig("UI1", 0x03, load=_alternating(a, b, 40))
    dev.attach_drdy(module.drdy)
    snap = RbAmpSnapshot(1)

    async def main():
        for _ in range(60):
            await dev.wait_drdy()
            bus.reset_stats()
            dev.read_all(into=snap)
            assert snap.power[0] in (a, b), snap.power[0]
            assert bus.stats.transactions == 6 * 4  # UI1's 6 floats in a single pass: no second read needed
        # far from the edge the pass is not trusted: it is bracketed by two reads of the digest seq
        clock.advance_ms(90)
        bus.reset_stats()
        dev.read_all(into=snap)
        assert snap.power[0] in (a, b) and bus.stats.transactions >= 6 * 4 + 2

    import asyncio

    asyncio.run(main())


def test_v12_reads_skip_the_floats_a_variant_does_not_have():
    # UI1: U, U peak, I0, I0 peak, P0, PF0 = 6 floats, one byte-wise pass between two reads of
    # the digest seq
    clock, module, bus, dev = rig("UI1", 0x03, load=loads.Constant([700.0], voltage=229.0, pf=0.9))
    clock.advance_ms(400)
    bus.reset_stats()
    snap = dev.read_all()
    assert bus.stats.transactions == 6 * 4 + 2, bus.stats.transactions
    assert snap.voltage == float32(229.0) and snap.power[0] == 700.0
    assert abs(snap.power_factor[0] - 0.9) < 1e-6
    # I2: no U, U peak, P or PF (a power factor needs the voltage); I0, I1 with peaks = 4 floats
    clock, module, bus, dev = rig("I2", 0x03, powers=[1000.0, 200.0])
    clock.advance_ms(400)
    bus.reset_stats()
    snap = dev.read_all()
    assert bus.stats.transactions == 4 * 4 + 2, bus.stats.transactions
    assert snap.voltage == 0.0 and snap.power[0] == 0.0 and snap.current[1] > 0.0
    assert snap.power_factor[0] == 0.0 and snap.power_factor[1] == 0.0
    # the same fields as the module's own registers hold
    raw = module.read_reg(0x86, 56)
    for k in (2, 3, 5, 6, 11, 12):
        assert bytes(snap.raw[4 * k:4 * k + 4]) == raw[4 * k:4 * k + 4], k

