"""Energy journal records: the bytes of one record of format version 1 or 2, and nothing else.

Encoding a version-2 record into a program window, checking and decoding a record of either
version, the CRC-32 behind both, slot sizes and the layout a record can hold. The byte table and
the guarantees built on it are in ``gateway.store``, the only writer; no flash is touched here.

Usage::

    from gateway.journal_record import RecordCodec, decode, layout_key, record_length

    key, counters = layout_key([(0x50, 2)])           # b"\\x50\\x02", 4 counters
    buf = bytearray(record_length(len(key) // 2, counters))
    codec = RecordCodec()
    codec.encode(buf, 0, 1, 0, 0, key, bytes(10), [5, 0, 7, 0])   # seq 1, backlog 0, reason 0
    if codec.readable(buf, 0, len(buf)):
        state = decode(buf, 0)                        # state.totals == [5, 0, 7, 0]

``encode`` and the CRC allocate nothing (the CRC is kept as two 16-bit halves) as long as the
totals are small ints: below 2**30 on 32-bit boards.
"""

import struct

from gateway.ledger import COUNTERS_PER_CHANNEL, EXPORT, IMPORT, slot, span

FORMAT_VERSION = 2      # the version this code writes; version 1 is read too
MAGIC = b"EJ"
COUNTER_LIMIT = 1 << 48
SEQ_LIMIT = 1 << 32
RECORD_LIMIT = 255      # the envelope's length byte
RESUME_LEN = 10         # resume bytes per module
MAX_ADDRESS = 0x77      # 7-bit I2C addresses below the reserved 0x78..0x7F
MAX_MODULE_CHANNELS = 8

MAGIC0 = 0x45
MAGIC1 = 0x4A
ENVELOPE_MIN = 12  # magic, version, length, seq, CRC: the smallest record any version can have
V1_HEADER = 14
V2_HEADER = 16
ENTRY_LEN = 2 + RESUME_LEN
CRC_LEN = 4
COUNTER_LEN = 6


class JournalState:
    """A valid record: what the gateway resumes from.

    ``layout``: ``[(address, channels), ...]`` of a version-2 record, None for a version-1
    record (whose ``totals`` have the count it was written with). ``resume``: the modules'
    10 bytes each, concatenated (None for version 1).
    """

    def __init__(self, seq, totals, backlog_seq, reason, layout=None, resume=None, version=2):
        self.seq = seq
        self.totals = totals
        self.backlog_seq = backlog_seq
        self.reason = reason
        self.layout = layout
        self.resume = resume
        self.version = version

    def imported(self, channel):
        return self.totals[slot(channel, IMPORT)]

    def exported(self, channel):
        return self.totals[slot(channel, EXPORT)]

    def __repr__(self):
        return "JournalState(seq=%d, totals=%r, backlog_seq=%d, reason=%d, layout=%r)" % (
            self.seq, self.totals, self.backlog_seq, self.reason, self.layout)


# CRC-32 kept as two 16-bit halves: on the 32-bit boards ints above 2**30 are heap objects, and
# a commit should not allocate. One pair of tables (1 KB) serves every codec.
_crc_tables = None


def _crc_table_pair():
    global _crc_tables
    if _crc_tables is None:
        from array import array

        low = array("H", bytes(512))  # from bytes: no 256-item list on the way
        high = array("H", bytes(512))
        for index in range(256):
            lo = index
            hi = 0
            for _ in range(8):
                carry = lo & 1
                lo = (lo >> 1) | ((hi & 1) << 15)
                hi >>= 1
                if carry:
                    lo ^= 0x8320
                    hi ^= 0xEDB8
            low[index] = lo
            high[index] = hi
        _crc_tables = (low, high)
    return _crc_tables


def _crc_halves(buf, start, end, low, high, out):
    """CRC-32 of buf[start:end] into out[0] (low 16 bits) and out[1] (high 16 bits)."""
    lo = 0xFFFF
    hi = 0xFFFF
    for i in range(start, end):
        index = (lo ^ buf[i]) & 0xFF
        lo = (((hi & 0xFF) << 8) | (lo >> 8)) ^ low[index]
        hi = (hi >> 8) ^ high[index]
    out[0] = lo ^ 0xFFFF
    out[1] = hi ^ 0xFFFF


def crc32(data):
    """CRC-32 of a bytes-like object, as an int (same value as ``binascii.crc32``)."""
    from array import array

    low, high = _crc_table_pair()
    out = array("H", [0, 0])
    _crc_halves(data, 0, len(data), low, high, out)
    return out[0] | (out[1] << 16)


def is_blank(buf, start, end):
    """True if buf[start:end] is all 0xFF (erased flash)."""
    for i in range(start, end):
        if buf[i] != 0xFF:
            return False
    return True


def read_u32(buf, o):
    # Byte arithmetic, not unpack_from: no tuple per slot.
    return buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | (buf[o + 3] << 24)


def record_length(modules, counters):
    """Bytes of one version-2 record (CRC included; also its slot size) for ``modules`` modules
    and ``counters`` counters (2 per channel). Above ``RECORD_LIMIT`` the layout does not fit."""
    return V2_HEADER + ENTRY_LEN * modules + COUNTER_LEN * counters + CRC_LEN


def declared_length(buf, o):
    """The length a version-1 or -2 header's counts imply (0: not a readable header)."""
    version = buf[o + 2]
    counters = buf[o + 13]
    if counters < 2 or counters & 1:
        return 0
    if version == 2:
        modules = buf[o + 14]
        if modules < 1:
            return 0
        return record_length(modules, counters)
    if version == 1:
        return V1_HEADER + COUNTER_LEN * counters + CRC_LEN
    return 0


def layout_key(layout):
    """Validate a layout; return its (address, channels) pairs as bytes and the counter count."""
    try:
        modules = len(layout)
    except TypeError:
        raise ValueError("layout must be a list of (address, channels), got %r" % (layout,))
    if modules < 1:
        raise ValueError("layout must name at least one module")
    key = bytearray(2 * modules)
    channels = 0
    for k in range(modules):
        entry = layout[k]
        try:
            address, count = entry
        except (TypeError, ValueError):
            raise ValueError("layout entry %d must be (address, channels), got %r" % (k, entry))
        if not isinstance(address, int) or not 0 <= address <= MAX_ADDRESS:
            raise ValueError("layout entry %d: address must be an int in 0 .. 0x%02x, got %r"
                             % (k, MAX_ADDRESS, address))
        if not isinstance(count, int) or not 1 <= count <= MAX_MODULE_CHANNELS:
            raise ValueError("layout entry %d (address 0x%02x): channels must be an int in 1 .. %d,"
                             " got %r" % (k, address, MAX_MODULE_CHANNELS, count))
        for j in range(k):
            if key[2 * j] == address:
                raise ValueError("layout names address 0x%02x twice (entries %d and %d)"
                                 % (address, j, k))
        key[2 * k] = address
        key[2 * k + 1] = count
        channels += count
    length = record_length(modules, span(channels))
    if length > RECORD_LIMIT:
        fit = (RECORD_LIMIT - record_length(modules, 0)) // (COUNTERS_PER_CHANNEL * COUNTER_LEN)
        raise ValueError(
            "%d module(s) with %d channels need %d-byte records; a record holds at most %d bytes, "
            "so with %d module(s) at most %d channels fit (modules + channels <= %d)"
            % (modules, channels, length, RECORD_LIMIT, modules, fit,
               (RECORD_LIMIT - record_length(0, 0)) // (COUNTERS_PER_CHANNEL * COUNTER_LEN)))
    return bytes(key), span(channels)


def read_key(buf, o):
    """The (address, channels) pairs of the version-2 record at buf[o:], as ``layout_key``
    gives them."""
    modules = buf[o + 14]
    key = bytearray(2 * modules)
    e = o + V2_HEADER
    for k in range(modules):
        key[2 * k] = buf[e]
        key[2 * k + 1] = buf[e + 1]
        e += ENTRY_LEN
    return bytes(key)


def read_resume(buf, o):
    """The modules' resume data of the version-2 record at buf[o:], as one bytearray."""
    modules = buf[o + 14]
    resume = bytearray(RESUME_LEN * modules)
    e = o + V2_HEADER
    for k in range(modules):
        resume[k * RESUME_LEN:(k + 1) * RESUME_LEN] = buf[e + 2:e + ENTRY_LEN]
        e += ENTRY_LEN
    return resume


def decode(buf, o):
    """The JournalState of the readable record at buf[o:] (checked by ``RecordCodec.readable``)."""
    version = buf[o + 2]
    counters = buf[o + 13]
    layout = None
    resume = None
    p = o + V1_HEADER
    if version == 2:
        modules = buf[o + 14]
        layout = []
        p = o + V2_HEADER
        for _ in range(modules):
            layout.append((buf[p], buf[p + 1]))
            p += ENTRY_LEN
        resume = bytes(read_resume(buf, o))
    totals = []
    for _ in range(counters):
        lo, mid, hi = struct.unpack_from("<HHH", buf, p)
        totals.append(lo | (mid << 16) | (hi << 32))
        p += COUNTER_LEN
    return JournalState(read_u32(buf, o + 4), totals, read_u32(buf, o + 8), buf[o + 12], layout,
                        resume, version)


class RecordCodec:
    """The CRC tables and the one scratch array the CRC needs, so that encoding and checking
    records allocates nothing. One per store: the scratch array is not shared."""

    def __init__(self):
        from array import array

        self._low, self._high = _crc_table_pair()
        self._out = array("H", [0, 0])

    def crc_matches(self, buf, start, crc_at):
        """True if the 4 bytes at buf[crc_at:] are the CRC-32 of buf[start:crc_at]."""
        out = self._out
        _crc_halves(buf, start, crc_at, self._low, self._high, out)
        lo = out[0]
        hi = out[1]
        return (buf[crc_at] == lo & 0xFF and buf[crc_at + 1] == lo >> 8
                and buf[crc_at + 2] == hi & 0xFF and buf[crc_at + 3] == hi >> 8)

    def readable(self, buf, o, limit):
        """True if buf[o:limit] starts with a whole, consistent version-1 or -2 record with a
        valid CRC."""
        length = buf[o + 3]
        if length != declared_length(buf, o) or o + length > limit:
            return False
        if not self.crc_matches(buf, o, o + length - CRC_LEN):
            return False
        if buf[o + 2] == 2:
            # The modules' channels must account for every counter, or the record cannot be split.
            channels = 0
            e = o + V2_HEADER
            for _ in range(buf[o + 14]):
                channels += buf[e + 1]
                e += ENTRY_LEN
            return span(channels) == buf[o + 13]
        return True

    def block_stride(self, buf, size):
        """Slot size of a block: that of its first valid record of any version (0: none found).

        Every version's slots are multiples of 4 bytes and start at multiples of their own size,
        so looking at every 4th offset finds the first good record even behind a torn slot 0.
        """
        o = 0
        last = size - ENVELOPE_MIN
        while o <= last:
            if buf[o] == MAGIC0 and buf[o + 1] == MAGIC1:
                length = buf[o + 3]
                if (ENVELOPE_MIN <= length <= size - o
                        and self.crc_matches(buf, o, o + length - CRC_LEN)):
                    stride = (length + 3) & ~3
                    if o % stride == 0:
                        return stride
            o += 4
        return 0

    def encode(self, buf, o, seq, backlog_seq, reason, key, resume, totals):
        """Write the version-2 record of ``key``'s modules (``layout_key``) into buf[o:], CRC
        included; return its length. Trusts its arguments: the store validated them.

        ``resume``: 10 bytes per module; ``totals``: the layout's counters, each below 2**48.
        """
        modules = len(key) // 2
        counters = len(totals)
        buf[o] = MAGIC0
        buf[o + 1] = MAGIC1
        buf[o + 2] = FORMAT_VERSION
        buf[o + 3] = record_length(modules, counters)
        struct.pack_into("<HH", buf, o + 4, seq & 0xFFFF, seq >> 16)
        struct.pack_into("<HH", buf, o + 8, backlog_seq & 0xFFFF, backlog_seq >> 16)
        buf[o + 12] = reason
        buf[o + 13] = counters
        buf[o + 14] = modules
        buf[o + 15] = 0
        p = o + V2_HEADER
        r = 0
        for k in range(modules):
            buf[p] = key[2 * k]
            buf[p + 1] = key[2 * k + 1]
            p += 2
            for _ in range(RESUME_LEN):
                buf[p] = resume[r]
                p += 1
                r += 1
        for i in range(counters):
            value = totals[i]
            struct.pack_into("<HHH", buf, p, value & 0xFFFF, (value >> 16) & 0xFFFF, value >> 32)
            p += COUNTER_LEN
        out = self._out
        _crc_halves(buf, o, p, self._low, self._high, out)
        struct.pack_into("<HH", buf, p, out[0], out[1])
        return p + CRC_LEN - o
