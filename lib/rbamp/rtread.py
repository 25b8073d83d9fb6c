"""RT reads: floats of the RT block, never torn, never implausible, at the least bus time.

v1.3 reads are read-frozen bursts: one burst is one 200 ms window. ``read_all`` reads only the
span of the block the variant fills (an I1: I0 .. I0 peak, 16 bytes).

v1.2 answers one register per transaction and rewrites the block every ~200 ms, so a byte-wise
pass can straddle a commit. A pass is trusted when it ran right after a DRDY edge with no new
edge, or when the digest's commit counter (``seq``) reads the same before and after it; the
learned commit phase (``rbamp.phase``) lets a pass start after a commit rather than run into it.
"""

from rbamp import registers as R
from rbamp.errors import RbAmpIOError
from rbamp.floatbits import first_implausible, is_ghost

# Per RT float (U, U peak, I0..I2, I peak 0..2, P0..P2, PF0..PF2): largest plausible exponent, signed?
RT_MAX_EXP = bytes((136, 137, 136, 136, 136, 137, 137, 137, 143, 143, 143, 127, 127, 127))
RT_SIGNED = bytes((0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1))
RT_POWER = 8
RT_PF = 11
RT_CURRENT = 2
RT_CURRENT_PEAK = 5
DIGEST_SEQ = R.DIGEST + 1
TORN_ATTEMPTS = 6
_FRESH_EDGE_MS = 60  # a v1.2 pass may start this long after a DRDY edge...
_PASS_DEADLINE_MS = 150  # ...and must end this long after it, well before the next 200 ms commit


def absent_rt_floats(channels, has_voltage):
    """Bit k set: RT float k carries nothing on this variant (a channel it lacks, or the U, P and
    PF of a current-only module: they read 0.0, and a power factor needs the voltage). Reads
    skip them."""
    mask = 0
    for ch in range(channels, 3):
        for first in (RT_CURRENT, RT_CURRENT_PEAK, RT_POWER, RT_PF):
            mask |= 1 << (first + ch)
    if not has_voltage:
        mask |= 0b11 | (0b111 << RT_POWER) | (0b111 << RT_PF)
    return mask


def _zero(view, off, n):
    for i in range(off, off + n):
        view[i] = 0


def _copy(dst, off, src):
    for i in range(len(src)):
        dst[off + i] = src[i]


def _equal(a, b):
    for i in range(len(a)):
        if a[i] != b[i]:
            return False
    return True


def _span(absent):
    """(first, count): the floats one burst must cover to read every float that is not absent."""
    present = [k for k in range(R.RT_FLOATS) if not (absent >> k) & 1]
    return present[0], present[-1] - present[0] + 1


class RtReader:
    """RT floats for ``RbAmp`` through its ``RegisterIO``; ``configure`` after begin()."""

    def __init__(self, io, clock, stats, drdy, phase):
        self.io = io
        self.clock = clock
        self.stats = stats
        self.drdy = drdy
        self.phase = phase
        self.absent = 0
        self._byte = bytearray(1)
        self._word = bytearray(4)
        self._check = bytearray(4)
        self._read_us = 1000  # one v1.2 transaction, learned from the passes
        self._span = (0, R.RT_FLOATS)
        self._span_owner = None  # the last byte view a span was read into, and its slice
        self._span_slice = None

    def configure(self, channels, has_voltage):
        self.absent = absent_rt_floats(channels, has_voltage)
        self._span = _span(self.absent)
        self._span_owner = None
        self._span_slice = None

    # ------------------------------------------------------------------ entry point
    def read_floats(self, reg, view, count, first):
        """``count`` RT floats (the first is RT float number ``first``) into the byte view;
        implausible values are re-read (bounded)."""
        attempt = 0
        while True:
            if not self.io.burst:
                self._read_v12(reg, view, count, first)
            elif count == R.RT_FLOATS:
                self._read_block_v13(view)
            else:
                self.io.read(reg, view)
            bad = first_implausible(view, count, RT_MAX_EXP, RT_SIGNED, first)
            if bad < 0:
                return
            self.stats.rejected += 1
            if is_ghost(view, 4 * bad):
                self.stats.ghosts += 1
            if attempt >= self.io.retries:
                raise RbAmpIOError("implausible value kept coming back", self.io.address, reg + 4 * bad)
            attempt += 1
            self.clock.sleep_ms(self.io.retry_ms)

    # ------------------------------------------------------------------ v1.3
    def _read_block_v13(self, view):
        first, count = self._span
        if count == R.RT_FLOATS:
            self.io.read(R.RT_BLOCK, view)
            return
        if view is not self._span_owner:
            # A result seen for the first time: the span is read straight into a slice of it from
            # now on (copying bytes in Python cost more CPU on the RP2040 than the shorter burst
            # saved). The slice is the one allocation (once per result object); with the heap
            # locked the whole block is read instead, which allocates nothing.
            try:
                span_slice = memoryview(view)[4 * first:4 * (first + count)]
            except MemoryError:
                self.io.read(R.RT_BLOCK, view)
                return
            _zero(view, 0, 4 * R.RT_FLOATS)  # outside the span: the module's 0.0 for good
            self._span_slice = span_slice
            self._span_owner = view
        self.io.read(R.RT_BLOCK + 4 * first, self._span_slice)

    # ------------------------------------------------------------------ v1.2
    def _pass(self, reg, view, count, absent):
        """One byte-wise pass over the floats that are not absent."""
        byte = self._byte
        io = self.io
        for k in range(count):
            if (absent >> k) & 1:
                _zero(view, 4 * k, 4)
                continue
            for i in range(4 * k, 4 * k + 4):
                io.read(reg + i, byte)
                view[i] = byte[0]

    def _read_v12(self, reg, view, count, first):
        absent = self.absent >> first if count > 1 else 0
        if self._pass_after_edge(reg, view, count, absent):
            return
        reads = 0
        for k in range(count):
            if not (absent >> k) & 1:
                reads += 4
        self.read_guarded(reg, view, count, absent, reads)

    def read_seq(self):
        """The digest's commit counter, fed to the commit phase."""
        clock = self.clock
        before = clock.ticks_ms()
        seq = self.io.read_u8(DIGEST_SEQ)
        self.phase.observe(seq, before, clock.ticks_ms())
        return seq

    def read_guarded(self, reg, view, count, absent, reads):
        """A pass bracketed by two reads of the digest seq: equal, no commit fell inside it.
        It starts after the commit the learned phase expects within it (a wait, no bus time)."""
        clock = self.clock
        for _ in range(TORN_ATTEMPTS):
            pass_ms = ((reads + 2) * self._read_us) // 1000 + 1
            wait = self.phase.wait_ms(clock.ticks_ms(), pass_ms)
            if wait > 0:
                clock.sleep_ms(wait)
            start = clock.ticks_us()
            seq = self.read_seq()
            self._pass(reg, view, count, absent)
            same = self.read_seq() == seq
            took = clock.ticks_diff(clock.ticks_us(), start)
            if 0 < took < 1000000:
                self._read_us = (3 * self._read_us + took // (reads + 2)) >> 2
            if same:
                return
            self.stats.torn += 1
        raise RbAmpIOError("RT block kept changing while read byte by byte", self.io.address, reg)

    def _pass_after_edge(self, reg, view, count, absent):
        """v1.2 with DRDY: one byte-wise pass is torn-free if it starts soon after a commit's edge
        and ends, with no new edge, well before the next commit (~200 ms)."""
        drdy = self.drdy
        if not drdy.attached or drdy.held_low:
            return False
        clock = self.clock
        edges = drdy.edges
        if clock.ticks_diff(clock.ticks_ms(), drdy.edge_ms) > _FRESH_EDGE_MS:
            return False
        self._pass(reg, view, count, absent)
        if drdy.edges == edges and clock.ticks_diff(clock.ticks_ms(), drdy.edge_ms) < _PASS_DEADLINE_MS:
            return True
        self.stats.torn += 1
        return False

    def read_word_agreed(self, reg, buf, off):
        """Four bytes read byte-wise twice until both passes agree (a v1.2 counter such as the
        uptime, which changes at commits)."""
        first = self._word
        second = self._check
        for _ in range(TORN_ATTEMPTS):
            self.io.read_block(reg, first, 0, 4)
            self.io.read_block(reg, second, 0, 4)
            if _equal(first, second):
                _copy(buf, off, first)
                return
            self.stats.torn += 1
        raise RbAmpIOError("value kept changing while read byte by byte", self.io.address, reg)
