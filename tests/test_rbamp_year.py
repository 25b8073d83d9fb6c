RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from rbamp import RbAmpPeriodSnapshot
from support_driver import rig

# The precision claim is about the boards' float32 and 31-bit small ints, so mpy32 runs the full
# year; the other runtimes run a month of the same body to keep the suite short.
DAYS = 365 if xrt.runtime() == "mpy32" else 30


def test_a_year_at_1_kw_with_60_s_periods_matches_ground_truth():
    clock, module, bus, dev = rig("UI1", 0x04, powers=[1000.0])
    start = module.truth.snapshot()
    p = RbAmpPeriodSnapshot(1)
    for _ in range(DAYS * 1440):
        clock.advance_ms(59950)
        dev.read_period_snapshot(into=p)
    truth_uwh = (module.truth._import[0] - start.imported[0]) // 3600000000
    got_uwh = dev.energy.consumption[0].mwh() * 1000
    error = abs(got_uwh - truth_uwh) / truth_uwh
    assert truth_uwh > DAYS * 23900 * 1000000  # ~24 kWh a day really flowed
    assert error < 0.00001, (got_uwh, truth_uwh, error)
