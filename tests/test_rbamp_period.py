RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from rbamp import RbAmpPeriodSnapshot, RbAmpStaleError, RbAmpTimeoutError
from rbampsim import loads
from support_driver import advance_past_next_window, close, rig, run_periods, window_wh


def _energy_matches_truth(version, variant, powers):
    clock, module, bus, dev = rig(variant, version, powers=powers)
    start = module.truth.snapshot()
    periods = run_periods(clock, dev, 10)
    for ch in range(dev.channels):
        truth = module.truth.import_wh_since(start, ch)
        assert close(dev.energy.wh(ch), truth, 2 * window_wh(powers[ch])), (ch, dev.energy.wh(ch), truth)
    assert all(p.valid for p in periods)
    assert all(close(p.dt_ms, 60000, 100) for p in periods), [p.dt_ms for p in periods]
    assert periods[-1].commit_count in (299, 300, 301)
    return dev


def test_period_energy_matches_ground_truth_v13():
    _energy_matches_truth(0x04, "UI3", [1000.0, 2345.6, 12.5])


def test_period_energy_matches_ground_truth_v12():
    _energy_matches_truth(0x03, "UI2", [800.0, 3680.0])


def test_period_snapshot_fields_and_in_place_fill():
    load = loads.Schedule([(0, [500.0, 100.0]), (30, [1500.0, 100.0])])
    clock, module, bus, dev = rig("UI2", 0x04, load=load)
    p = RbAmpPeriodSnapshot(2)
    clock.advance_ms(60000 - 50)
    same = dev.read_period_snapshot(into=p)
    assert same is p and p.valid
    assert close(p.avg_p[0], 1000.0, 5.0) and p.avg_p[1] == 100.0
    assert p.max_p == 1500.0
    assert p.to_dict()["commit_count"] == p.commit_count


def _stale_cycles(version):
    clock, module, bus, dev = rig("UI1", version, powers=[2000.0])
    start = module.truth.snapshot()
    stale = 0
    for _ in range(20):
        advance_past_next_window(clock, module)
        clock.advance_ms(5000)
        dev.read_period_snapshot()
        try:  # right after a good latch: no window has completed since
            dev.read_period_snapshot()
        except RbAmpStaleError:
            stale += 1
    clock.advance_ms(10000)
    dev.read_period_snapshot()
    assert stale == 20 and dev.stats.stale == 20
    truth = module.truth.import_wh_since(start, 0)
    # a wrong anchor rule would be off by ~20 x 55 ms x 2 kW = 0.6 Wh; two windows are 0.22 Wh
    assert close(dev.energy.wh(0), truth, 2 * window_wh(2000.0)), (dev.energy.wh(0), truth)
    return module


def test_stale_latch_v13_holds_the_anchor():
    module = _stale_cycles(0x04)
    assert module.truth.dropped_us == 0


def test_stale_latch_v12_advances_the_anchor():
    module = _stale_cycles(0x03)
    assert module.truth.dropped_us > 0  # v1.2 really discarded time: the driver must not count it


def test_a_read_failure_after_a_good_latch_does_not_stretch_the_next_period():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[1000.0])
    start = module.truth.snapshot()
    run_periods(clock, dev, 2)
    clock.advance_ms(60000 - 50)
    dev.latch_period()
    bus.faults.stuck = True
    exc = xrt.raises(RbAmpTimeoutError, dev.read_period_snapshot, skip_latch=True)
    assert "0x50" in str(exc)
    bus.faults.stuck = False
    clock.advance_ms(60000)
    owed = dev.read_period_snapshot()  # the period latched before the failure
    assert close(owed.dt_ms, 60000, 100) and close(owed.avg_p[0], 1000.0, 0.01)
    clock.advance_ms(10000)
    nxt = dev.read_period_snapshot()  # from the owed latch to now: ~60 s + 10 s + retries
    assert close(nxt.avg_p[0], 1000.0, 0.01)
    truth = module.truth.import_wh_since(start, 0)
    assert close(dev.energy.wh(0), truth, 2 * window_wh(1000.0)), (dev.energy.wh(0), truth)


def test_module_reboot_reprimes_and_restores_ram_settings():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[1200.0])
    dev.set_digest_config(0x05)
    dev.set_power_threshold(5000)
    start = module.truth.snapshot()
    run_periods(clock, dev, 2)
    last_latch_us = clock.now_us()
    module.reboot_at(last_latch_us + 20000000)  # 20 s into the next period
    p = run_periods(clock, dev, 1)[0]
    assert p.rebooted and dev.stats.reboots == 1
    assert module.read_reg(0x29)[0] == 0x05 | 0x06  # DIGEST_CONFIG written again (+ U, P: the 5 Hz sample)
    assert module.read_reg(0x2E, 2) == bytes((5000 & 0xFF, 5000 >> 8))
    assert module.read_reg(0x2A)[0] & 0x20 == 0
    run_periods(clock, dev, 2)
    lost_by_module = 1200.0 * 20.0 / 3600  # the 20 s the module's RAM held when it rebooted
    truth = module.truth.import_wh_since(start, 0)
    assert close(dev.energy.wh(0), truth - lost_by_module, 3 * window_wh(1200.0)), (
        dev.energy.wh(0), truth, lost_by_module)


def test_reboot_seen_only_through_uptime_going_backwards():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[300.0])
    run_periods(clock, dev, 3)
    module.power_cycle()
    clock.advance_ms(500)
    bus.writeto_mem(0x50, 0x2A, b"\x20")  # another master cleared RESET_OCCURRED
    p = run_periods(clock, dev, 1)[0]
    assert p.rebooted and dev.stats.reboots == 1
    assert close(p.dt_ms, 60450, 250)  # what the module measured since its boot, not since our last latch


def _wrap_run(period_ms, periods, start_us):
    clock, module, bus, dev = rig("UI2", 0x04, powers=[1500.0, 70.0], start_us=start_us)
    start = module.truth.snapshot()
    run_periods(clock, dev, periods, period_ms)
    for ch in range(2):
        truth = module.truth.import_wh_since(start, ch)
        assert close(dev.energy.wh(ch), truth, 2 * window_wh(1500.0 if ch == 0 else 70.0)), (
            period_ms, ch, dev.energy.wh(ch), truth)


def test_periods_from_1_s_to_1_h_integrate_across_ticks_wraps():
    us_wrap = (1 << 30) - 3000000  # ticks_us wraps 3 s in (every ~18 min on 2**30 ports)
    ms_wrap = ((1 << 30) - 2 * 3600 * 1000) * 1000  # ticks_ms wraps 2 h in (every ~12 days)
    _wrap_run(1000, 300, us_wrap)
    _wrap_run(60000, 40, us_wrap)
    _wrap_run(600000, 4, us_wrap)
    _wrap_run(3600000, 4, ms_wrap)


def test_bidirectional_sampling_splits_import_and_export():
    clock, module, bus, dev = rig("UI2", 0x04, load=loads.Household(seed=5, start_hour=11.0))
    start = module.truth.snapshot()
    dev.sample_bidirectional()
    for _ in range(3600 * 5):  # one hour at the module's 5 Hz
        clock.advance_ms(200)
        dev.sample_bidirectional()
    for ch in range(2):
        for kind in ("import", "export"):
            truth = getattr(module.truth, kind + "_wh_since")(start, ch)
            got = getattr(dev.energy, kind + "_wh")(ch)
            assert close(got, truth, 0.002 * truth + 0.5), (ch, kind, got, truth)
    assert dev.energy.export_wh(1) > 100  # midday PV really exported


def test_a_latch_refused_by_a_rebooting_module_does_not_stretch_the_next_period():
    # The module rebooted 30 ms before our latch: it refuses it (booting) and its accumulation
    # restarted, so the next period covers the time since then, not since the last good latch.
    clock, module, bus, dev = rig("UI1", 0x04, powers=[1000.0])
    run_periods(clock, dev, 2)
    module.reboot_at(clock.now_us() + 60000000 - 50000 - 30000)
    clock.advance_ms(60000 - 50)
    xrt.raises(RbAmpStaleError, dev.read_period_snapshot)
    assert dev.stats.reboots == 1 and dev.stats.stale == 1
    after = run_periods(clock, dev, 1)[0]
    assert after.valid and close(after.dt_ms, 60000, 100), after.dt_ms  # 120000 would count 60 s twice
    assert after.commit_count in (299, 300, 301)
