"""Commit policy: growth step (with anticipation), interval, shutdown/reset, tick wrap."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from gateway.commit_policy import CommitPolicy
from gateway.store import REASON_GROWTH, REASON_INTERVAL, REASON_RESET, REASON_SHUTDOWN
from rbampsim.clock import VirtualClock

TICKS_WRAP_MS = 1 << 30


def _steps_until_due(policy, clock, totals, counter, increment, step_ms=1000, limit=1000):
    for n in range(1, limit):
        totals[counter] += increment
        clock.advance_ms(step_ms)
        reason = policy.due(totals)
        if reason:
            return n, reason
    raise AssertionError("never due")


def test_growth_anticipates_the_last_increment():
    clock = VirtualClock()
    policy = CommitPolicy(4, headroom=0, clock=clock)
    totals = [0, 0, 0, 0]
    policy.committed(totals)
    # 1000 mWh per call: 5 calls reach exactly 5 Wh, a sixth would pass it.
    assert _steps_until_due(policy, clock, totals, 0, 1000, step_ms=100) == (5, REASON_GROWTH)
    policy.committed(totals)
    # 1022 mWh per call (3.68 kW every second): due at 4088, since one more would make 5110.
    n, reason = _steps_until_due(policy, clock, totals, 2, 1022, step_ms=100)
    assert (n, reason) == (4, REASON_GROWTH)
    policy.committed(totals)
    # Any counter counts, export ones included.
    assert _steps_until_due(policy, clock, totals, 3, 2500, step_ms=100) == (2, REASON_GROWTH)


def _worst_uncommitted(policy, clock, jump_at):
    totals = [0, 0]
    policy.committed(totals)
    worst = 0
    for second in range(1, 400):
        # 100 W (28 mWh a second), then 3.68 kW (1022 mWh a second) from jump_at on.
        totals[0] += 28 if second < jump_at else 1022
        clock.advance_ms(1000)
        worst = max(worst, totals[0] - policy._base[0])
        if policy.due(totals):
            policy.committed(totals)
    return worst


def test_default_headroom_keeps_a_sudden_load_within_the_step():
    clock = VirtualClock()
    quiet = 600000  # keep the interval rule out of the way
    # The jump comes the second after 4956 mWh had piled up at 100 W.
    policy = CommitPolicy(2, headroom=0, interval_ms=quiet, clock=clock)
    without = _worst_uncommitted(policy, clock, 178)
    assert without == 4956 + 1022, without
    for jump_at in range(100, 200, 7):
        policy = CommitPolicy(2, interval_ms=quiet, clock=clock)
        worst = _worst_uncommitted(policy, clock, jump_at)
        assert 3978 < worst <= 5000, (jump_at, worst)


def test_without_anticipation_the_step_is_a_plain_threshold():
    clock = VirtualClock()
    policy = CommitPolicy(2, anticipate=False, clock=clock)
    totals = [0, 0]
    policy.committed(totals)
    assert _steps_until_due(policy, clock, totals, 1, 1022, step_ms=100) == (5, REASON_GROWTH)
    policy.committed(totals)
    assert _steps_until_due(policy, clock, totals, 1, 10, step_ms=100) == (500, REASON_GROWTH)


def test_a_sudden_jump_is_committed_at_once():
    clock = VirtualClock()
    policy = CommitPolicy(2, clock=clock)
    totals = [0, 0]
    policy.committed(totals)
    totals[0] = 100
    assert policy.due(totals) == 0
    totals[0] = 9000
    assert policy.due(totals) == REASON_GROWTH


def test_interval_commits_only_when_something_changed():
    clock = VirtualClock()
    policy = CommitPolicy(2, clock=clock)
    totals = [0, 0]
    policy.committed(totals)
    for _ in range(180):  # three quiet minutes
        clock.advance_ms(1000)
        assert policy.due(totals) == 0
    totals[1] += 1
    assert policy.due(totals) == REASON_INTERVAL
    policy.committed(totals)
    totals[1] += 1
    clock.advance_ms(59999)
    assert policy.due(totals) == 0
    clock.advance_ms(1)
    assert policy.due(totals) == REASON_INTERVAL


def test_backlog_position_is_a_change_too():
    clock = VirtualClock()
    policy = CommitPolicy(2, clock=clock)
    policy.committed([5, 5], backlog_seq=10)
    clock.advance_ms(61000)
    assert policy.due([5, 5], backlog_seq=10) == 0
    assert policy.due([5, 5]) == 0
    assert policy.due([5, 5], backlog_seq=11) == REASON_INTERVAL
    policy.committed([5, 5], backlog_seq=11)
    clock.advance_ms(61000)
    assert policy.due([5, 5], backlog_seq=11) == 0


def test_a_quiet_week_across_the_tick_wrap():
    clock = VirtualClock(start_us=(TICKS_WRAP_MS - 5000) * 1000)
    policy = CommitPolicy(2, clock=clock)
    totals = [7, 0]
    policy.committed(totals)
    for _ in range(7 * 24 * 60):  # a week, one metering step a minute
        clock.advance_ms(60000)
        assert policy.due(totals) == 0
    # ticks_diff over a week has wrapped (it spans 6.2 days); the latched interval has not.
    assert clock.ticks_diff(clock.ticks_ms(), policy._since) < 0
    totals[0] += 1
    assert policy.due(totals) == REASON_INTERVAL


def test_shutdown_and_reset_commit_only_news():
    clock = VirtualClock()
    policy = CommitPolicy(2, clock=clock)
    policy.committed([3, 4], backlog_seq=1)
    assert policy.at_shutdown([3, 4]) == 0
    assert policy.before_reset([3, 4], backlog_seq=1) == 0
    assert policy.at_shutdown([3, 5]) == REASON_SHUTDOWN
    assert policy.before_reset([4, 4]) == REASON_RESET
    assert policy.before_reset([3, 4], backlog_seq=2) == REASON_RESET


def test_bad_settings_are_refused():
    clock = VirtualClock()
    xrt.raises(ValueError, CommitPolicy, 0, clock=clock)
    xrt.raises(ValueError, CommitPolicy, 2, step=0, clock=clock)
    xrt.raises(ValueError, CommitPolicy, 2, step=1000, headroom=1000, clock=clock)
    xrt.raises(ValueError, CommitPolicy, 2, headroom=-1, clock=clock)
    xrt.raises(ValueError, CommitPolicy, 2, interval_ms=0, clock=clock)
    xrt.raises(ValueError, CommitPolicy, 2, interval_ms=1 << 29, clock=clock)
    # Totals of another size are not refused: the journal's layout changed (a module joined
    # it), so they become the new baseline.
    policy = CommitPolicy(2, clock=clock)
    policy.committed([1, 2, 3])
    assert policy.counters == 3 and not policy.due([1, 2, 3])


def test_default_clock_is_the_system_clock():
    policy = CommitPolicy(2)
    policy.committed([0, 0])
    assert policy.due([1, 0]) == 0


def test_due_allocates_nothing():
    if not xrt.is_micropython():
        raise xrt.Skip("heap_lock exists only on MicroPython")
    import micropython

    clock = VirtualClock()
    policy = CommitPolicy(4, clock=clock)
    totals = [0, 0, 0, 0]
    policy.committed(totals)
    reasons = 0
    for _ in range(200):
        totals[0] += 700
        totals[3] += 1
        clock.advance_ms(1000)
        micropython.heap_lock()
        try:
            reason = policy.due(totals, backlog_seq=3)
        finally:
            micropython.heap_unlock()
        if reason:
            reasons += 1
            policy.committed(totals, backlog_seq=3)
    # 700 mWh a call, headroom 1022: due once 5 Wh is less than one headroom away, every 6 calls.
    assert reasons == 200 // 6
