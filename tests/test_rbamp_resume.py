"""A restarted master takes over a module that kept running: begin(resume=...) counts the period
the module holds (and one latched but never counted) instead of priming it away."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

from rbamp import RbAmp
from rbampsim import loads
from support_driver import ADDR, rig, window_wh

PERIOD_MS = 60000


def _point(dev):
    return (dev.window_us, dev.counted_uptime_s, dev.counted_fingerprint)


def _restart(clock, bus, old, resume=True):
    """A new master (a gateway after a crash): its counters start from what the old one counted
    (as if loaded from the journal) and it begins with the old one's resume point."""
    dev = RbAmp(bus, ADDR)
    point = _point(old)
    dev.begin(resume=point if resume else None)
    for ch in range(dev.channels):
        dev.energy.consumption[ch].set_mwh(dev.energy.consumption[ch].mwh() + old.energy.consumption[ch].mwh())
    return dev


def _periods(clock, dev, count):
    for _ in range(count):
        clock.advance_ms(PERIOD_MS - 50)
        dev.read_period_snapshot()


def _restart_at_phase(phase_ms, load=None, version=0x04):
    watts = 3000.0
    clock, module, bus, dev = rig("UI1", version, load=load or loads.Constant([watts]))
    start = module.truth.snapshot()
    _periods(clock, dev, 3)
    clock.advance_ms(phase_ms)  # the gateway dies here, mid-period; the module keeps counting
    dev = _restart(clock, bus, dev)
    _periods(clock, dev, 2)
    lost = module.truth.import_wh_since(start, 0) - dev.energy.wh(0)
    return lost, dev


def test_restart_mid_period_loses_at_most_one_window_at_every_phase():
    for phase_ms in (0, 1, 199, 7000, 29999, 45123, 59000):
        lost, dev = _restart_at_phase(phase_ms)
        assert -window_wh(3000.0) <= lost <= window_wh(3000.0), (phase_ms, lost)
        assert dev.stats.resumed == 1, dev.stats.to_dict()
        if phase_ms >= 7000:  # right after a latch no window has completed: nothing to recover
            assert dev.stats.recovered_periods == 1, (phase_ms, dev.stats.to_dict())


def test_restart_on_v12_loses_at_most_one_window():
    lost, dev = _restart_at_phase(31234, version=0x03)
    assert -window_wh(3000.0) <= lost <= window_wh(3000.0), lost


def test_without_resume_the_open_period_is_lost():
    # what the resume point is for: priming throws the module's open period away
    clock, module, bus, dev = rig("UI1", 0x04, powers=[3000.0])
    start = module.truth.snapshot()
    _periods(clock, dev, 3)
    clock.advance_ms(40000)
    dev = _restart(clock, bus, dev, resume=False)
    _periods(clock, dev, 2)
    lost = module.truth.import_wh_since(start, 0) - dev.energy.wh(0)
    assert lost > 30.0, lost  # 40 s at 3 kW = 33.3 Wh


def _missed_period(load):
    clock, module, bus, dev = rig("UI1", 0x04, load=load)
    start = module.truth.snapshot()
    _periods(clock, dev, 2)
    clock.advance_ms(PERIOD_MS - 50)
    dev.latch_period()          # latched, then the gateway dies before it reads and commits
    clock.advance_ms(20000)
    dev = _restart(clock, bus, dev)
    _periods(clock, dev, 1)
    lost = module.truth.import_wh_since(start, 0) - dev.energy.wh(0)
    return lost, dev


def test_a_period_latched_but_never_counted_is_counted_after_the_restart():
    load = loads.Schedule([(0, [1000.0]), (90, [2500.0]), (150, [1800.0])])
    lost, dev = _missed_period(load)
    assert abs(lost) <= window_wh(2500.0), lost
    assert dev.stats.recovered_periods == 2


def test_a_missed_period_with_the_same_figures_is_told_apart_by_the_uptime():
    # a steady load latches identical snapshots: the fingerprint cannot tell them apart
    lost, dev = _missed_period(loads.Constant([2000.0]))
    assert abs(lost) <= window_wh(2000.0), lost
    assert dev.stats.recovered_periods == 2


def test_no_missed_period_is_invented_for_a_steady_load():
    lost, dev = _restart_at_phase(45000, load=loads.Constant([2000.0]))
    assert abs(lost) <= window_wh(2000.0), lost
    assert dev.stats.recovered_periods == 1


def test_module_reboot_during_the_restart_counts_only_what_it_holds():
    watts = 2000.0
    clock, module, bus, dev = rig("UI1", 0x04, powers=[watts])
    start = module.truth.snapshot()
    _periods(clock, dev, 2)
    clock.advance_ms(20000)     # the gateway dies 20 s into a period...
    module.power_cycle()        # ...and the module loses power too: those 20 s are gone
    clock.advance_ms(15000)
    dev = _restart(clock, bus, dev)
    _periods(clock, dev, 1)
    lost = module.truth.import_wh_since(start, 0) - dev.energy.wh(0)
    gone = watts * 20.0 / 3600
    assert gone - 2 * window_wh(watts) <= lost <= gone + 2 * window_wh(watts), (lost, gone)


def test_the_window_length_is_learned_from_ordinary_periods():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[500.0])
    assert dev.window_us == 200000
    _periods(clock, dev, 5)
    assert abs(dev.window_us - 200000) <= 1000, dev.window_us
    point = _point(dev)
    assert point[1] > 0 and point[2] > 0
