"""Reconnect backoff: exponential ceiling 1 s .. 60 s, jitter in the upper half, private RNG."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from gateway.backoff import Backoff, Xorshift32


def test_each_delay_lies_in_the_upper_half_of_a_doubling_ceiling():
    backoff = Backoff(seed=12345)
    ceiling = 1000
    for attempt in range(12):
        assert backoff.ceiling_ms() == ceiling
        delay = backoff.next_delay_ms()
        assert ceiling // 2 <= delay <= ceiling, (attempt, delay, ceiling)
        ceiling = min(60000, ceiling * 2)
    assert backoff.attempts == 12


def test_ceiling_stays_at_the_cap_after_many_failures():
    backoff = Backoff(seed=7)
    for _ in range(1000):
        delay = backoff.next_delay_ms()
    assert backoff.ceiling_ms() == 60000
    assert 30000 <= delay <= 60000
    # the ceiling is a small int even on the 32-bit build (doubling stopped at the cap)
    assert backoff.ceiling_ms() < (1 << 30)


def test_reset_starts_again_from_one_second():
    backoff = Backoff(seed=99)
    for _ in range(8):
        backoff.next_delay_ms()
    assert backoff.ceiling_ms() == 60000
    backoff.reset()
    assert backoff.attempts == 0
    delay = backoff.next_delay_ms()
    assert 500 <= delay <= 1000


def test_jitter_spreads_over_the_whole_upper_half():
    backoff = Backoff(base_ms=60000, cap_ms=60000, seed=2024)
    delays = [backoff.next_delay_ms() for _ in range(400)]
    assert min(delays) >= 30000 and max(delays) <= 60000
    # 400 uniform draws leave no 3 s gap at either end and use many distinct values
    assert min(delays) < 33000, min(delays)
    assert max(delays) > 57000, max(delays)
    assert len(set(delays)) > 300
    low_half = len([d for d in delays if d < 45000])
    assert 120 < low_half < 280, low_half


def test_same_seed_same_sequence_different_seed_different_sequence():
    a = Backoff(seed=42)
    b = Backoff(seed=42)
    c = Backoff(seed=43)
    seq_a = [a.next_delay_ms() for _ in range(10)]
    seq_b = [b.next_delay_ms() for _ in range(10)]
    seq_c = [c.next_delay_ms() for _ in range(10)]
    assert seq_a == seq_b
    assert seq_a != seq_c


def test_unseeded_instances_do_not_retry_in_lock_step():
    # two gateways booting together must not hammer a restarted broker at the same instants
    first = Backoff()
    second = Backoff()
    # 8 draws from ~500..30000 values each: equal sequences would mean a shared seed
    assert [first.next_delay_ms() for _ in range(8)] != [second.next_delay_ms() for _ in range(8)]


def test_xorshift_matches_the_reference_recurrence_and_never_sticks_at_zero():
    rng = Xorshift32(1)
    x = 1
    for _ in range(50):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        assert rng.next_u32() == x
    zero = Xorshift32(0)
    assert zero.next_u32() != 0
    for n in (1, 2, 7, 1000):
        for _ in range(50):
            assert 0 <= zero.below(n) < n
    assert isinstance(xrt.raises(ValueError, zero.below, 0), ValueError)


def test_bad_arguments_are_refused_with_a_message():
    exc = xrt.raises(ValueError, Backoff, 0)
    assert "base_ms" in str(exc)
    exc = xrt.raises(ValueError, Backoff, 1000, 500)
    assert "cap_ms" in str(exc)
