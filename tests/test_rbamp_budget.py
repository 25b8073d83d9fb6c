RUNTIMES = ("cpython", "mpy64", "mpy32")


from rbamp import RbAmpSample, RbAmpSnapshot
from rbampsim import loads
from support_driver import advance_past_next_window, close, rig

A, B = 1000.0, 3000.0  # 0x447A0000 / 0x453B8000: a float torn between them is neither


def _alternating(channels, seconds, a=A, b=B):
    """Every 200 ms window the load flips between a and b W on every channel."""
    steps = []
    for i in range(seconds * 5):
        steps.append((0.2 * i, [a if i % 2 else b] * channels))
    return loads.Schedule(steps)


def _step_us(i):
    return 7919 * i % 200000  # successive calls land at every phase of the 200 ms window


def test_v12_read_all_is_one_window_although_the_module_rewrites_the_block_mid_pass():
    # A UI3 pass is 42 byte reads (37 ms at 50 kHz): at a random phase every fifth pass has a
    # commit inside it. All three powers flip together, so a pass mixing two windows shows.
    clock, module, bus, dev = rig("UI3", 0x03, load=_alternating(3, 120))
    snap = RbAmpSnapshot(3)
    for i in range(200):
        clock.advance_us(_step_us(i))
        dev.read_all(into=snap)
        p = snap.power[0]
        assert p in (A, B), p
        assert snap.power[1] == p and snap.power[2] == p, snap.power.list()
        # current and its peak come from the same window as the power (current = P / PF / U)
        assert close(snap.current[2] * snap.voltage * snap.power_factor[2], p, 0.01 * p), snap.to_dict()
    assert dev.stats.torn > 0, "no pass ever straddled a commit: the test proved nothing"


def test_v12_read_all_without_drdy_costs_at_most_1_3_times_the_naive_loop():
    clock, module, bus, dev = rig("UI3", 0x03, load=loads.Noisy([1500.0, 300.0, 20.0], 10.0))
    snap = RbAmpSnapshot(3)
    for i in range(20):  # learn the commit phase
        clock.advance_us(_step_us(i))
        dev.read_all(into=snap)
    bus.reset_stats()
    calls = 300
    for i in range(calls):
        clock.advance_us(_step_us(i + 20))
        dev.read_all(into=snap)
    naive_us = 14 * 4 * 880  # 14 floats, 4 single-byte reads each, 880 us a read at 50 kHz
    average_us = bus.stats.total_bus_time_us // calls
    assert average_us <= 1.3 * naive_us, (average_us, naive_us)


def test_v13_i1_read_all_is_one_window_and_cheaper_than_the_naive_loop():
    clock, module, bus, dev = rig("I1", 0x04, load=_alternating(1, 60))
    snap = RbAmpSnapshot(1)
    for i in range(100):
        clock.advance_us(_step_us(i))
        bus.reset_stats()
        dev.read_all(into=snap)
        assert bus.stats.total_bus_time_us <= 7040, bus.stats.total_bus_time_us  # naive: 8 reads
        current = snap.current[0]
        assert close(snap.current_peak[0], current * 1.41421356, 1e-3 * current), snap.to_dict()
        assert close(current, A / 230.0, 0.01) or close(current, B / 230.0, 0.01), current
        assert snap.voltage == 0.0 and snap.power[0] == 0.0
    raw = module.read_reg(0x86, 56)
    dev.read_all(into=snap)
    for k in (2, 5, 11):  # I0, I0 peak and PF0: the module's own bytes
        assert bytes(snap.raw[4 * k:4 * k + 4]) == raw[4 * k:4 * k + 4], k


def test_v13_ui_read_all_reads_no_more_than_one_burst():
    for variant, channels in (("UI1", 1), ("UI2", 2), ("UI3", 3)):
        clock, module, bus, dev = rig(variant, 0x04, load=loads.Noisy([900.0, 200.0, 40.0][:channels], 5.0))
        snap = RbAmpSnapshot(channels)
        advance_past_next_window(clock, module)
        bus.reset_stats()
        dev.read_all(into=snap)
        assert bus.stats.transactions == 1 and bus.stats.total_bus_time_us <= 10780, variant
        raw = module.read_reg(0x86, 56)
        for k in range(14):
            if k in (0, 1) or (k - 2) % 3 < channels:
                assert bytes(snap.raw[4 * k:4 * k + 4]) == raw[4 * k:4 * k + 4], (variant, k)


def test_v13_sample_costs_under_3_ms_of_bus_and_integrates_signed_power():
    load = loads.Constant([1200.4, -300.6, 50.2], voltage=231.27)
    clock, module, bus, dev = rig("UI3", 0x04, load=load)
    sample = RbAmpSample(3)
    advance_past_next_window(clock, module)
    dev.sample_bidirectional(into=sample)
    t0 = clock.now_us()
    bus.reset_stats()
    for _ in range(5 * 600):  # ten minutes at 5 Hz
        clock.advance_ms(200)
        dev.sample_bidirectional(into=sample)
    assert bus.stats.transactions == 3000
    assert bus.stats.total_bus_time_us // 3000 <= 3000, bus.stats.total_bus_time_us // 3000
    assert sample.voltage_dv == 2313 and list(sample.power) == [1200, -301, 50], list(sample.power)
    # digest watts are whole: the energy is that of the rounded power over the sampled time
    hours = (clock.now_us() - t0) / 3.6e9
    for ch, watts in ((0, 1200), (2, 50)):
        assert close(dev.energy.import_wh(ch), watts * hours, 0.01), (ch, dev.energy.import_wh(ch))
    assert close(dev.energy.export_wh(1), 301 * hours, 0.01), dev.energy.export_wh(1)
    assert dev.energy.import_wh(1) == 0.0 and dev.energy.export_wh(0) == 0.0


def test_v12_sample_is_never_torn():
    clock, module, bus, dev = rig("UI2", 0x03, load=_alternating(2, 60, a=1000.0, b=-3000.0))
    sample = RbAmpSample(2)
    for i in range(200):
        clock.advance_us(_step_us(i))
        dev.sample_bidirectional(into=sample)
        assert sample.power[0] in (1000, -3000), list(sample.power)
        assert sample.power[1] == sample.power[0]
        assert sample.voltage_dv == 2300
    assert dev.energy.import_wh(0) > 0 and dev.energy.export_wh(1) > 0


def test_digest_config_comes_back_after_a_module_reboot_and_sampling_goes_on():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[600.0])
    assert module.read_reg(0x29)[0] == 0x06  # begin(): voltage and power for the 5 Hz sample
    sample = RbAmpSample(1)
    dev.sample_bidirectional(into=sample)
    module.reboot_at(clock.now_us() + 1000000)
    empty = 0
    for _ in range(5 * 20):
        clock.advance_ms(200)
        dev.sample_bidirectional(into=sample)
        if sample.voltage_dv != 2300 or sample.power[0] != 600:
            empty += 1  # the module just booted: nothing measured yet
    assert module.boots == 2 and empty <= 1, empty
    assert module.read_reg(0x29)[0] == 0x06  # written again by the sample that found it empty
    assert close(dev.energy.import_wh(0), 600.0 * 20.2 / 3600, 600.0 * 0.6 / 3600), dev.energy.import_wh(0)


def test_v12_commit_phase_survives_the_ticks_wraps():
    # ticks_ms wraps 4 s in (every ~12 days on 2**30 ports); ticks_us wraps every ~18 min
    for start_us in (((1 << 30) - 4000) * 1000, (1 << 30) - 4000000):
        clock, module, bus, dev = rig("UI2", 0x03, load=_alternating(2, 60), start_us=start_us)
        snap = RbAmpSnapshot(2)
        for i in range(20):  # learn the phase before the wrap
            clock.advance_us(_step_us(i))
            dev.read_all(into=snap)
        bus.reset_stats()
        for i in range(100):
            clock.advance_us(_step_us(i + 20))
            dev.read_all(into=snap)
            assert snap.power[0] in (A, B) and snap.power[1] == snap.power[0], snap.power.list()
        # a UI2 pass is 10 floats x 4 reads + 2 seq reads: little more than one pass a call
        assert bus.stats.transactions <= 100 * 42 * 1.1, bus.stats.transactions
