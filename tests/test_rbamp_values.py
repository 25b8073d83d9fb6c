RUNTIMES = ("cpython", "mpy64", "mpy32")

import struct

from rbamp.energy import EnergyCounter
from rbamp.floatbits import f32_milli, f32_plausible, first_implausible, is_ghost
from rbampsim.loads import Prng


def _exact_milli(word):
    """Reference: round(value * 1000) from the float's bits with unbounded ints (allocates)."""
    sign = -1 if word >> 31 else 1
    exp = (word >> 23) & 0xFF
    if exp == 0:
        return 0
    mant = (word & 0x7FFFFF) | 0x800000
    num = mant * 1000
    shift = 150 - exp
    if shift <= 0:
        return sign * (num << -shift)
    return sign * ((num + (1 << (shift - 1))) >> shift)


def _word_bytes(word):
    return bytes((word & 0xFF, (word >> 8) & 0xFF, (word >> 16) & 0xFF, word >> 24))


def test_milli_matches_exact_rounding_over_the_plausible_range():
    rng = Prng(7)
    checked = 0
    for exp in range(100, 144):
        for _ in range(40):
            mant = rng.next() & 0x7FFFFF
            for sign in (0, 1):
                word = (sign << 31) | (exp << 23) | mant
                got = f32_milli(_word_bytes(word), 0)
                want = _exact_milli(word)
                # below 2**-6 W the fast path may be off by one milliwatt; above it, exact
                tolerance = 1 if exp < 121 else 0
                assert abs(got - want) <= tolerance, (hex(word), got, want)
                checked += 1
    assert checked == 44 * 40 * 2


def test_milli_of_familiar_values():
    for value, milli in ((1000.0, 1000000), (0.001, 1), (-300.0, -300000), (0.0, 0), (3680.0, 3680000),
                         (1234.5, 1234500), (100000.0, 100000000)):
        assert f32_milli(struct.pack("<f", value), 0) == milli, value


def test_plausibility_rejects_nan_inf_absurd_negative_and_ghosts():
    def ok(value, max_exp=143, signed=1):
        return f32_plausible(struct.pack("<f", value), 0, max_exp, signed)

    assert ok(230.1, 136, 0)
    assert ok(0.0, 136, 0)
    assert ok(-0.0, 136, 0)
    assert not ok(-1.0, 136, 0)
    assert ok(-2500.0)
    assert not ok(2000.0, 136, 0)  # 2000 V
    assert not ok(200000.0)  # 200 kW on one channel
    assert not f32_plausible(b"\x00\x00\xc0\x7f", 0, 143, 1)  # NaN
    assert not f32_plausible(b"\x00\x00\x80\x7f", 0, 143, 1)  # +inf
    ghost = b"\x3f\xfb\x2f\x3c"
    assert is_ghost(ghost, 0)
    assert not f32_plausible(ghost, 0, 143, 1)
    assert not f32_plausible(b"\x3c\x2f\xfb\x3f", 0, 143, 1)


def test_the_block_check_judges_every_word_as_the_single_check_does():
    # the RT block's one-loop check (the hot path) against f32_plausible, word by word
    rng = Prng(7)
    limits = bytes((136, 137, 127, 143))
    signed = bytes((0, 0, 1, 1))
    specials = (b"\x3f\xfb\x2f\x3c", b"\x3c\x2f\xfb\x3f", b"\x00\x00\xc0\x7f", b"\x00\x00\x80\xff",
                b"\x00\x00\x00\x80", b"\x3f\xfb\x2f\x3d", b"\x3c\x2f\xfb\x3e")
    for trial in range(3000):
        words = bytearray()
        for k in range(4):
            if rng.uniform() < 0.1:
                words += specials[rng.next() % len(specials)]
            else:
                exponent = 100 + rng.next() % 50
                sign = 0x80 if rng.uniform() < 0.3 else 0
                words += bytes((rng.next() & 0xFF, rng.next() & 0xFF, ((exponent & 1) << 7) | (rng.next() & 0x7F),
                                sign | (exponent >> 1)))
        for first in (0, 1):
            count = 4 - first
            block = words[4 * first:]
            expected = -1
            for k in range(count):
                if not f32_plausible(block, 4 * k, limits[first + k], signed[first + k]):
                    expected = k
                    break
            assert first_implausible(block, count, limits, signed, first) == expected, (trial, bytes(block))


def test_energy_counter_keeps_small_increments_on_a_huge_total():
    counter = EnergyCounter()
    counter.set_mwh(10000000 * 1000)  # 10 MWh
    before = counter.mwh()
    for _ in range(3600):  # one hour at 100 W in 1 s steps
        counter.add(100000, 1000)
    assert counter.mwh() - before == 100000  # 100 Wh to the milliwatt-hour
    assert counter.mj == 0 and counter.uj == 0


def test_energy_counter_is_exact_for_odd_powers_and_durations():
    counter = EnergyCounter()
    total_uj = 0
    rng = Prng(3)
    for _ in range(500):
        mw = rng.next() % 30000000
        ms = rng.next() % 4000000
        counter.add(mw, ms)
        total_uj += mw * ms
    assert counter.wh * 3600000000 + counter.mj * 1000 + counter.uj == total_uj


def test_energy_counter_ignores_non_positive_input_and_rejects_negative_totals():
    counter = EnergyCounter()
    counter.add(-5, 1000)
    counter.add(5, 0)
    assert counter.mwh() == 0
    try:
        counter.set_mwh(-1)
    except ValueError:
        return
    raise AssertionError("negative total accepted")
