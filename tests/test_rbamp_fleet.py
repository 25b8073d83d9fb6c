RUNTIMES = ("cpython", "mpy64", "mpy32")

from rbamp import RbAmpError, RbAmpFleet, RbAmpPeriodSnapshot
from rbampsim import SimI2C, SimModule, VirtualClock, loads
from support_driver import close


def _fleet_rig():
    clock = VirtualClock()
    modules = [
        SimModule("UI1", 0x04, addr=0x50, clock=clock, load=loads.Constant([1000.0]), seed=1),
        SimModule("UI2", 0x03, addr=0x51, clock=clock, load=loads.Constant([200.0, 300.0]), seed=2),
        SimModule("I3", 0x04, addr=0x52, clock=clock, load=loads.Constant([50.0, 60.0, 70.0]), seed=3),
    ]
    stranger = SimModule("UI1", 0x04, addr=0x60, clock=clock, seed=4)
    bus = SimI2C(modules + [stranger], clock=clock)
    clock.advance_ms(300)
    stranger.regs[0x54] = 0x33  # some other product answers at 0x60
    return clock, modules, stranger, bus


def test_scan_finds_rbamps_and_never_writes_to_strangers():
    clock, modules, stranger, bus = _fleet_rig()
    bus.record_trace()
    fleet = RbAmpFleet(bus)
    found = fleet.scan()
    assert [d.address for d in found] == [0x50, 0x51, 0x52]
    assert [d.variant for d in found] == ["UI1", "UI2", "I3"]
    assert 0x60 in fleet.errors
    assert [t for t in bus.trace if t[1] == 0x60 and t[0] == "w"] == []


def test_sequential_latch_shares_one_settle_and_meters_every_module():
    clock, modules, stranger, bus = _fleet_rig()
    fleet = RbAmpFleet(bus)
    fleet.scan()
    starts = [m.truth.snapshot() for m in modules]
    for _ in range(5):
        clock.advance_ms(59900)
        sleeps = clock.sleeps
        results = fleet.read_periods()
        assert clock.sleeps - sleeps == 1  # one shared 50 ms settle
        assert all(isinstance(p, RbAmpPeriodSnapshot) and p.valid for p in results.values()), results
    for dev, module, start in zip(fleet.modules, modules, starts):
        if not dev.has_voltage:
            assert dev.energy.wh(0) == 0.0  # I-variants measure current only: no power, no energy
            continue
        for ch in range(dev.channels):
            truth = module.truth.import_wh_since(start, ch)
            assert close(dev.energy.wh(ch), truth, 0.12), (dev.address, ch, dev.energy.wh(ch), truth)
    assert close(fleet.total_energy_wh(), 1000.0 * 5 / 60 + 500.0 * 5 / 60, 0.3)
    assert close(fleet.total_power(), 1500.0, 0.01)  # the I3 module reads 0 W (no voltage)


def test_general_call_latch_with_group_witness_and_fallback():
    clock, modules, stranger, bus = _fleet_rig()
    fleet = RbAmpFleet(bus)
    fleet.scan()
    for dev in fleet.modules[:2]:
        dev.set_fleet(True, group=7)
        dev.save_user_config()
        dev.reset()
    bus.record_trace()
    clock.advance_ms(60000)
    by_frame = fleet.gc_latch(group=7)
    assert [d.address for d in by_frame] == [0x50, 0x51]
    gc_frames = [t for t in bus.trace if t[0] == "gc"]
    assert len(gc_frames) == 1 and gc_frames[0][3][:3] == bytes((0xA5, 0x27, 7))
    latch_writes = [t[1] for t in bus.trace if t[0] == "w" and t[2] == 0x01 and t[3] == b"\x27"]
    assert latch_writes == [0x52]  # the module outside the fleet was latched on its own
    for dev in fleet.modules:
        assert dev.read_period_snapshot(skip_latch=True, settle_ms=0).valid
    clock.advance_ms(60000)
    results = fleet.read_periods(use_general_call=True, group=7)
    assert all(p.valid for p in results.values())


def test_general_call_nobody_listens_falls_back_to_individual_latches():
    clock, modules, stranger, bus = _fleet_rig()
    fleet = RbAmpFleet(bus)
    fleet.scan()
    clock.advance_ms(60000)
    assert fleet.gc_latch() == []
    results = fleet.read_periods(use_general_call=True)
    assert all(p.valid for p in results.values())


def test_tick_increments_and_skips_the_none_marker():
    fleet = RbAmpFleet(None)
    fleet._tick = 0xFFFD
    assert [fleet._next_tick() for _ in range(3)] == [0xFFFE, 0, 1]


def test_one_failing_module_does_not_stop_the_others():
    clock, modules, stranger, bus = _fleet_rig()
    fleet = RbAmpFleet(bus)
    fleet.scan()
    clock.advance_ms(60000)
    modules[1].unplug()
    results = fleet.read_periods()
    assert isinstance(results[0x51], RbAmpError)
    assert results[0x50].valid and results[0x52].valid
    assert close(fleet.total_power(), 1000.0, 0.01)
    assert 0x51 in fleet.errors
