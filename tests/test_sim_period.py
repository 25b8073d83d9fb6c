RUNTIMES = ("cpython", "mpy64", "mpy32")

from rbampsim import SimI2C, SimModule, VirtualClock, loads
from support_sim import ADDR, command, f32, latch, make, oserror_errno, u8, u32_bytewise


def _period(bus):
    return {
        "valid": u8(bus, 0x07),
        "avg0": f32(bus, 0xDC),
        "avg1": f32(bus, 0xC2),
        "avg2": f32(bus, 0xC6),
        "max": f32(bus, 0xE0),
        "count": u32_bytewise(bus, 0xBE),
        "latch_ms": u32_bytewise(bus, 0xEC),
    }


def test_latch_reports_average_count_and_max():
    clock, module, bus = make("UI2", load=loads.Schedule([(0, [500.0, 100.0]), (30, [1500.0, 100.0])]))
    latch(clock, bus)  # primes: covers the span since boot
    clock.advance_ms(60000 - 50)
    latch(clock, bus)
    p = _period(bus)
    assert p["valid"] == 1
    assert p["count"] == 300
    # 300 windows from ~0.3 s to 60.3 s: 149 at 500 W, 151 at 1500 W.
    expected = (149 * 500.0 + 151 * 1500.0) / 300
    assert abs(p["avg0"] - expected) < 0.01, p
    assert abs(p["avg1"] - 100.0) < 1e-3
    assert p["avg2"] == 0.0
    assert p["max"] == 1500.0


def test_basic_tier_clamps_each_window_at_zero():
    clock, module, bus = make("UI2", load=loads.Schedule(
        [(0, [800.0, -300.0]), (10, [-800.0, -300.0]), (20, [800.0, -300.0])]))
    latch(clock, bus)
    clock.advance_ms(30000 - 50)
    latch(clock, bus)
    p = _period(bus)
    assert p["avg1"] == 0.0  # export never counts in the latched average
    # RT power stays signed
    assert f32(bus, 0xAA) == -300.0
    windows_positive = p["count"] - 50  # the 10 s at -800 W contribute zero
    assert abs(p["avg0"] - 800.0 * windows_positive / p["count"]) < 0.05


def test_snapshot_settles_50_ms_after_the_latch():
    clock, module, bus = make()
    latch(clock, bus)
    clock.advance_ms(5000)
    command(bus, 0x27)
    clock.advance_ms(40)
    assert u8(bus, 0x07) == 0
    clock.advance_ms(10)
    assert u8(bus, 0x07) == 1
    assert u8(bus, 0x2A) & 0x01  # PERIOD_READY event


def test_period_valid_is_not_cleared_by_reading():
    clock, module, bus = make()
    latch(clock, bus)
    assert u8(bus, 0x07) == 1
    assert u8(bus, 0x07) == 1


def test_stale_latch_v13_keeps_accumulating_across_it():
    clock, module, bus = make(version=0x04, powers=[1000.0])
    latch(clock, bus)
    clock.advance_ms(1000)
    latch(clock, bus)
    good_count = u32_bytewise(bus, 0xBE)
    assert good_count >= 5
    latch(clock, bus)  # < 1 window since: stale
    assert u8(bus, 0x07) == 0
    clock.advance_ms(10000)
    latch(clock, bus)
    assert u8(bus, 0x07) == 1
    # The good latch covers the whole span since the last good one (stale span included).
    assert u32_bytewise(bus, 0xBE) == 50 or u32_bytewise(bus, 0xBE) == 51
    assert module.truth.dropped_us == 0


def test_stale_latch_v12_drops_the_partial_window():
    clock, module, bus = make(version=0x03, powers=[1000.0])
    latch(clock, bus)
    clock.advance_ms(1000)
    latch(clock, bus)
    latch(clock, bus)
    assert u8(bus, 0x07) == 0
    assert module.truth.dropped_us > 0


def test_truth_is_exact_for_a_constant_hour_and_splits_export():
    clock, module, bus = make("UI2", boot=False, powers=[1000.0, -250.0])
    start = module.truth.snapshot()
    clock.advance_ms(3600 * 1000)
    assert module.truth.import_wh_since(start, 0) == 1000.0
    assert module.truth.export_wh_since(start, 1) == 250.0
    assert module.truth.import_wh_since(start, 1) == 0.0
    assert module.truth.import_uwh(0) == 1000 * 1000000


def test_truth_matches_latched_averages_window_by_window():
    clock, module, bus = make("UI1", load=loads.Noisy([700.0], 50.0, seed=3))
    latch(clock, bus)
    start = module.truth.snapshot()
    total_wh = 0.0
    for _ in range(10):
        clock.advance_ms(6000)
        latch(clock, bus)
        total_wh += f32(bus, 0xDC) * u32_bytewise(bus, 0xBE) * 0.2 / 3600
    truth = module.truth.import_wh_since(start, 0)
    assert abs(total_wh - truth) < 1e-4 * truth, (total_wh, truth)


def test_a_year_is_processed_in_closed_form_and_stays_exact():
    clock, module, bus = make("UI1", boot=False, powers=[1000.0])
    start = module.truth.snapshot()
    for _ in range(365):
        clock.advance_ms(24 * 3600 * 1000)
    assert module.truth.import_wh_since(start, 0) == 8760000.0
    assert module.truth.windows >= 365 * 24 * 3600 * 5 - 1


def test_cold_boot_timeline():
    clock, module, bus = make(boot=False, fresh_flash=True)
    assert oserror_errno(bus.readfrom_mem, ADDR, 0x00, 1) == 19
    clock.advance_ms(12)
    status = u8(bus, 0x00)
    assert status & 0x01 == 0  # not ready yet
    assert u8(bus, 0x02) == 0xFB  # fresh flash: params blank
    assert u8(bus, 0x2A) & 0x20  # RESET_OCCURRED
    command(bus, 0x27)
    assert u8(bus, 0x02) == 0xFC  # not ready
    clock.advance_ms(60)
    assert u8(bus, 0x00) & 0x01
    assert u8(bus, 0xCE) & 0x01 == 0  # no RT commit before the first 200 ms window
    clock.advance_ms(130)
    assert u8(bus, 0xCE) & 0x01


def test_first_latch_after_boot_covers_the_span_since_power_on():
    clock, module, bus = make(powers=[100.0])
    clock.advance_ms(2000)
    latch(clock, bus)
    assert u8(bus, 0x07) == 1
    assert u32_bytewise(bus, 0xBE) == 11  # (250 ms + 2000 ms) / 200 ms


def test_reboot_restarts_the_period_sequence():
    clock, module, bus = make(powers=[100.0])
    latch(clock, bus)
    module.reboot_at(clock.now_us() + 3000000)
    clock.advance_ms(3100)
    assert u8(bus, 0x2A) & 0x20
    assert u8(bus, 0x4A) & 0x08  # IWDG
    latch(clock, bus)
    assert u32_bytewise(bus, 0xBE) == 0 or u8(bus, 0x07) == 0


def test_general_call_latches_listeners_in_the_group_only():
    clock = VirtualClock()
    mods = [SimModule("UI1", addr=a, clock=clock, load=loads.Constant([100.0])) for a in (0x50, 0x51, 0x52)]
    bus = SimI2C(mods, clock=clock)
    clock.advance_ms(250)
    err = oserror_errno(bus.writeto, 0x00, bytes((0xA5, 0x27, 0, 1, 0)))
    assert err == 19  # nobody listens: NACK
    for addr, group in ((0x50, 2), (0x51, 2), (0x52, 3)):
        bus.writeto_mem(addr, 0x27, b"\x01")
        bus.writeto_mem(addr, 0x28, bytes((group,)))
        bus.writeto_mem(addr, 0x01, b"\x32")  # save
        bus.writeto_mem(addr, 0x01, b"\x01")  # reset: fleet config takes effect after reset
    clock.advance_ms(1000)
    for addr in (0x50, 0x51, 0x52):  # prime
        bus.writeto_mem(addr, 0x01, b"\x27")
    clock.advance_ms(2000)
    bus.writeto(0x00, bytes((0xA5, 0x27, 2, 0x34, 0x12)))
    clock.advance_ms(50)
    counts = [u32_bytewise(_Addr(bus, a), 0xBE) for a in (0x50, 0x51, 0x52)]
    ticks = [bus.readfrom_mem(a, 0x59, 2) for a in (0x50, 0x51, 0x52)]
    assert counts[0] == counts[1] == 10, counts
    assert ticks[0] == ticks[1] == b"\x34\x12" and ticks[2] == b"\xff\xff"
    assert counts[2] != 10


class _Addr:
    """Adapter so the single-address helpers can read another module on the same bus."""

    def __init__(self, bus, addr):
        self.bus = bus
        self.addr = addr

    def readfrom_mem(self, addr, reg, n):
        return self.bus.readfrom_mem(self.addr, reg, n)
