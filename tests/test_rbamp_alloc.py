RUNTIMES = ("mpy64", "mpy32")

import gc

import micropython
from rbamp import RbAmpPeriodSnapshot, RbAmpSnapshot
from rbampsim import loads
from support_driver import advance_past_next_window, rig


def _noisy():
    return loads.Noisy([1500.0, -700.0], 40.0)


def test_read_all_into_allocates_nothing_v13_and_v12():
    for version in (0x04, 0x03):
        clock, module, bus, dev = rig("UI2", version, load=_noisy())
        snap = RbAmpSnapshot(2)
        micropython.heap_lock()
        try:
            for _ in range(1500):
                clock.advance_ms(200)
                dev.read_all(into=snap)
        finally:
            micropython.heap_unlock()
        assert snap.current[0] > 0


def test_period_snapshot_with_energy_update_allocates_nothing():
    clock, module, bus, dev = rig("UI3", 0x04, powers=[2500.0, 1234.5, 3.25])
    p = RbAmpPeriodSnapshot(3)
    micropython.heap_lock()
    try:
        for _ in range(1000):
            clock.advance_ms(59950)
            dev.latch_period()
            dev.read_period_snapshot(into=p, skip_latch=True)
    finally:
        micropython.heap_unlock()
    assert p.valid and dev.energy.consumption[0].wh > 40000


def test_sampling_and_the_drdy_handler_allocate_nothing():
    clock, module, bus, dev = rig("UI2", 0x04, load=_noisy())
    dev.attach_drdy(module.drdy)
    snap = RbAmpSnapshot(2)
    dev.sample_bidirectional(into=snap)
    edges = dev.drdy_edges
    t0 = clock.now_us()
    micropython.heap_lock()
    try:
        for _ in range(3000):
            clock.advance_ms(200)  # the simulated pin fires the driver's IRQ handler
            dev.sample_bidirectional(into=snap)
    finally:
        micropython.heap_unlock()
    windows = (clock.now_us() - t0) // 200000  # 200 ms steps plus each read's bus time
    assert abs(dev.drdy_edges - edges - windows) <= 1, (dev.drdy_edges - edges, windows)
    assert dev.energy.export_wh(1) > 0 and dev.energy.import_wh(0) > 0


def test_a_float_property_allocates_only_its_result():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[900.0])
    dev.voltage  # warm up: first-call caches
    advance_past_next_window(clock, module)
    half = 0.5
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        value = dev.voltage
        used = gc.mem_alloc() - before
        before = gc.mem_alloc()
        one_float = half * value
        float_size = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert value > 200.0 and one_float > 100.0
    assert 0 < float_size <= 32
    assert used == float_size, (used, float_size)


def test_digest_sample_allocates_nothing_v13_and_v12():
    from rbamp import RbAmpSample

    for version in (0x04, 0x03):
        clock, module, bus, dev = rig("UI2", version, load=_noisy())
        sample = RbAmpSample(2)
        advance_past_next_window(clock, module)
        dev.sample_bidirectional(into=sample)
        micropython.heap_lock()
        try:
            for _ in range(1500):
                clock.advance_ms(200)
                dev.sample_bidirectional(into=sample)
        finally:
            micropython.heap_unlock()
        assert dev.energy.export_wh(1) > 0 and dev.energy.import_wh(0) > 0 and sample.voltage_dv > 2000


def test_v12_read_all_at_every_phase_allocates_nothing():
    # calls at every phase of the window: some wait for a commit the learned phase expects
    clock, module, bus, dev = rig("UI3", 0x03, load=_noisy())
    snap = RbAmpSnapshot(3)
    before = clock.now_us()
    micropython.heap_lock()
    try:
        for i in range(600):
            clock.advance_us(7919 * i % 200000)
            dev.read_all(into=snap)
    finally:
        micropython.heap_unlock()
    assert snap.current[0] > 0 and clock.now_us() > before
