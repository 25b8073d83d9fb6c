"""Float32 register values handled as bytes: sanity checks and fixed-point decoding, no float maths.

On the boards every float operation allocates, so the hot paths judge and convert the module's
IEEE-754 words with small-int arithmetic only. Floats are produced at the edges, from a float
array that aliases the bytes the bus wrote.
"""

from array import array

# Largest biased exponent a plausible value may have: |x| < 2**(max_exp - 126).
EXP_VOLTS = 136  # < 1024 V
EXP_VOLTS_PEAK = 137
EXP_AMPS = 136  # < 1024 A
EXP_AMPS_PEAK = 137
EXP_WATTS = 143  # < 131 kW per channel
EXP_PF = 127  # < 2 (a power factor is within -1..1; a little headroom for rounding)

# Wire bytes the ESP32 host driver hands back after a NACK (float 0x3C2FFB3F little-endian), and
# the same word byte-swapped (~1.96, the value the vendor reports seeing).
_GHOST = b"\x3f\xfb\x2f\x3c"
_GHOST_SWAPPED = b"\x3c\x2f\xfb\x3f"


def float_array(count):
    """A zeroed float32 array and a writable byte view of the same memory (allocated once)."""
    floats = array("f", [0.0] * count)
    try:
        import uctypes

        view = uctypes.bytearray_at(uctypes.addressof(floats), 4 * count)
    except ImportError:
        view = memoryview(floats).cast("B")
    return floats, view


def _is_pattern(buf, off, pattern):
    return (buf[off] == pattern[0] and buf[off + 1] == pattern[1] and buf[off + 2] == pattern[2]
            and buf[off + 3] == pattern[3])


def f32_plausible(buf, off, max_exp, signed):
    """False for NaN, infinities, magnitudes beyond max_exp, a sign where none is possible, ghosts."""
    b3 = buf[off + 3]
    exp = ((b3 & 0x7F) << 1) | (buf[off + 2] >> 7)
    if exp == 0xFF or exp > max_exp:
        return False
    if b3 & 0x80 and not signed and exp != 0:
        return False
    if _is_pattern(buf, off, _GHOST) or _is_pattern(buf, off, _GHOST_SWAPPED):
        return False
    return True


def first_implausible(buf, count, max_exps, signed_flags, first):
    """Index of the first of ``count`` words at ``buf[0:]``, ``buf[4:]``, ... that ``f32_plausible``
    would refuse (word k judged by ``max_exps[first + k]`` and ``signed_flags[first + k]``), or -1.

    The same rules in one loop over locals: the RT block's 14 words are judged on every sample,
    and a call of ``f32_plausible`` per word cost 67 us each on the RP2040 (0.94 ms of a 1.36 ms
    ``read_all``)."""
    for k in range(count):
        off = 4 * k
        b3 = buf[off + 3]
        b2 = buf[off + 2]
        exp = ((b3 & 0x7F) << 1) | (b2 >> 7)
        if exp == 0xFF or exp > max_exps[first + k]:
            return k
        if b3 & 0x80 and exp and not signed_flags[first + k]:
            return k
        # the ghost words, _GHOST and _GHOST_SWAPPED, byte by byte from the top
        if b3 == 0x3C:
            if b2 == 0x2F and buf[off + 1] == 0xFB and buf[off] == 0x3F:
                return k
        elif b3 == 0x3F and b2 == 0xFB and buf[off + 1] == 0x2F and buf[off] == 0x3C:
            return k
    return -1


def is_ghost(buf, off):
    return _is_pattern(buf, off, _GHOST) or _is_pattern(buf, off, _GHOST_SWAPPED)


def f32_milli(buf, off):
    """The float32 at buf[off:off+4] times 1000, rounded to an int (watts -> milliwatts).

    value = mant * 2**(exp-150), so value*1000 = mant*125 * 2**(exp-147); mant*125 needs 31 bits,
    more than a small int on 32-bit builds, so it is handled as two limbs.
    """
    b3 = buf[off + 3]
    b2 = buf[off + 2]
    exp = ((b3 & 0x7F) << 1) | (b2 >> 7)
    if exp == 0:
        return 0
    mant = ((b2 & 0x7F) << 16) | (buf[off + 1] << 8) | buf[off] | 0x800000
    shift = 147 - exp
    high = (mant >> 8) * 125
    low = (mant & 0xFF) * 125
    if shift <= 0:
        result = ((high << 8) + low) << -shift  # beyond any plausible reading; may be a big int
    elif shift <= 8:
        result = (high << (8 - shift)) + ((low + (1 << (shift - 1))) >> shift)
    elif shift <= 29:
        q = high >> (shift - 8)
        r = high - (q << (shift - 8))
        result = q + (((r << 8) + low + (1 << (shift - 1))) >> shift)
    elif shift < 60:
        result = ((mant >> (shift - 22)) * 125 + (1 << 21)) >> 22
    else:
        result = 0
    return -result if b3 & 0x80 else result


def u16(buf, off):
    return buf[off] | (buf[off + 1] << 8)


def u32(buf, off):
    """Little-endian u32; values >= 2**30 become big ints on 32-bit builds (only counters get there)."""
    return buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)
