"""Energy journal: power-cut-proof, wear-levelled persistence of the energy totals.

An append-only ring of fixed-size records on a block device with the extended block-device
protocol: ``readblocks(n, buf, off)``, ``writeblocks(n, buf, off)`` (program only, never an
implicit erase), ``ioctl(4, 0)`` block count, ``ioctl(5, 0)`` block size, ``ioctl(6, n)`` erase
and ``ioctl(3, 0)`` sync. That is ``esp32.Partition``, ``rp2.Flash(start=, len=)``,
``gateway.flashdev.FileBlockDevice`` (a file on the board's own filesystem, for stock firmware)
and the NOR-flash test device ``tools/norflash.py``.

Usage::

    store = EnergyStore(bdev, channels=2)
    state = store.load()              # None: nothing valid on the device (see ``load``)
    ...
    store.commit(totals, backlog_seq=n, reason=REASON_GROWTH)   # returns once durable
    store.prepare()                   # when idle: erase the block ahead, off the critical path

Totals are ``2 * channels`` unsigned integer counters, ordered
``[ch0 import, ch0 export, ch1 import, ch1 export, ...]``, each below ``2**48``. The gateway
counts milliwatt-hours (mWh): 1 mWh resolution, and 2**48 mWh = 281 GWh will not overflow in
any installation's lifetime. Only a float of Wh would be worse: float32 stops counting small
increments once a total is large. The store itself does not care about the unit; the commit
policy's thresholds are in the same unit.

Guarantees:

- ``commit()`` returns only after the record was programmed, synced, read back and compared.
- A power cut at any instant leaves the journal so that ``load()`` returns the last record whose
  ``commit()`` returned, or the one that was in flight; never anything else, never lower totals.
- ``commit()`` refuses (``ValueError``) any counter lower than the last durable value.
- Only the block ahead of the write pointer is ever erased, never the block holding the newest
  valid record. ``prepare()`` does that erase ahead of time, so a commit is one small program.
- A record of another format version, another channel count or data that is not a journal at
  all is never misread: ``load()`` and ``commit()`` raise ``JournalFormatError`` until someone
  deliberately calls ``format()``.

On-flash format (all integers little-endian). Every version keeps this envelope, so any version
recognises records of any other one::

    0  2  magic b"EJ"
    2  1  format version
    3  1  record length L in bytes, CRC included
    4  4  sequence number (1, 2, ... one per commit; the highest valid one is the newest record)
    L-4 4 CRC-32 (IEEE 802.3, the same as zlib/binascii.crc32) of bytes 0 .. L-5

Version 1 body::

    8  4  backlog_seq: opaque to the store; the gateway's period-record backlog position
    12 1  reason the record was written (REASON_*)
    13 1  number of counters n
    14 6n counters, 48 bits each
    L = 18 + 6n; slots are L rounded up to a multiple of 4 bytes and never straddle a block.

Programs are done in windows aligned to ``prog_size`` (rp2's flash only programs whole 256-byte
pages): the window is read, the record overlaid, the window written back. On NOR flash
re-programming a byte with its own value changes nothing, so neighbouring records are safe even
if the device replaced rather than ANDed bytes. The partition must not be flash-encrypted.
"""

import struct

FORMAT_VERSION = 1
MAGIC = b"EJ"
COUNTER_LIMIT = 1 << 48
SEQ_LIMIT = 1 << 32

REASON_UNSPECIFIED = 0
REASON_GROWTH = 1
REASON_INTERVAL = 2
REASON_SHUTDOWN = 3
REASON_RESET = 4
REASON_MIGRATION = 5

_MAGIC0 = 0x45
_MAGIC1 = 0x4A
_ENVELOPE_MIN = 12  # magic, version, length, seq, CRC: the smallest record any version can have
_HEADER_LEN = 14
_CRC_LEN = 4
_WRITE_ATTEMPTS = 3
_ERASE_ATTEMPTS = 2
_VERIFY_CHUNK_MAX = 256

_IOCTL_SYNC = 3
_IOCTL_BLOCK_COUNT = 4
_IOCTL_BLOCK_SIZE = 5
_IOCTL_BLOCK_ERASE = 6


class JournalError(Exception):
    """Base class of the journal's own errors."""


class JournalFormatError(JournalError):
    """The device holds something this code must not read or overwrite.

    ``kind`` is ``"foreign"`` (not a journal), ``"version"`` (another format version) or
    ``"channels"`` (a journal with another number of counters, given in ``counters``: open the
    device with ``counters // 2`` channels to read it, then migrate). ``format()`` wipes
    deliberately.
    """

    def __init__(self, message, kind, version=None, counters=None):
        super().__init__(message)
        self.kind = kind
        self.version = version
        self.counters = counters


class JournalWriteError(JournalError):
    """The flash did not take a program or an erase (worn out or failing)."""


class JournalState:
    """The newest valid record: what the gateway resumes from."""

    def __init__(self, seq, totals, backlog_seq, reason):
        self.seq = seq
        self.totals = totals
        self.backlog_seq = backlog_seq
        self.reason = reason

    def imported(self, channel):
        return self.totals[2 * channel]

    def exported(self, channel):
        return self.totals[2 * channel + 1]

    def __repr__(self):
        return "JournalState(seq=%d, totals=%r, backlog_seq=%d, reason=%d)" % (
            self.seq, self.totals, self.backlog_seq, self.reason)


class ScanReport:
    """What the last scan found, slot by slot (diagnostics for the gateway's log)."""

    def __init__(self):
        self.blank = 0           # erased slots
        self.valid = 0           # records checked and found valid (the newest one at least)
        self.damaged = 0         # records with our header whose CRC failed (torn or corrupted)
        self.foreign = 0         # non-blank slots that are not journal records at all
        self.foreign_blocks = 0  # blocks holding at least one foreign slot
        self.other = 0           # valid records of another version or channel count

    def __repr__(self):
        return "ScanReport(blank=%d, valid=%d, damaged=%d, foreign=%d in %d blocks, other=%d)" % (
            self.blank, self.valid, self.damaged, self.foreign, self.foreign_blocks, self.other)


# CRC-32 kept as two 16-bit halves: on the 32-bit boards ints above 2**30 are heap objects, and
# a commit should not allocate.
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


def _crc_stored_matches(buf, start, crc_at, low, high, out):
    _crc_halves(buf, start, crc_at, low, high, out)
    lo = out[0]
    hi = out[1]
    return (buf[crc_at] == lo & 0xFF and buf[crc_at + 1] == lo >> 8
            and buf[crc_at + 2] == hi & 0xFF and buf[crc_at + 3] == hi >> 8)


def _all_ff(buf, start, end):
    for i in range(start, end):
        if buf[i] != 0xFF:
            return False
    return True


def record_length(counters):
    """Bytes of one version-1 record holding ``counters`` counters, CRC included."""
    return _HEADER_LEN + 6 * counters + _CRC_LEN


class EnergyStore:
    """The journal on one block device. See the module docstring for the guarantees.

    ``channels``: metering channels; each has an import and an export counter.
    ``prog_size``: the device's program granularity. The default 256 suits every supported
    device (rp2 flash needs it; smaller windows are only a little faster elsewhere).
    """

    def __init__(self, bdev, channels=2, prog_size=256):
        if not 1 <= channels:
            raise ValueError("channels must be at least 1, got %r" % (channels,))
        self._bdev = bdev
        self.channels = channels
        self.counters = 2 * channels
        self.record_len = record_length(self.counters)
        if self.record_len > 255:
            raise ValueError("at most 39 channels fit in one record, got %d" % channels)
        self.slot_size = (self.record_len + 3) & ~3
        self.block_count = bdev.ioctl(_IOCTL_BLOCK_COUNT, 0)
        self.block_size = bdev.ioctl(_IOCTL_BLOCK_SIZE, 0)
        if not isinstance(self.block_count, int) or self.block_count < 2:
            raise ValueError("the journal needs a device of at least 2 blocks, got %r"
                             % (self.block_count,))
        if not isinstance(self.block_size, int) or self.block_size < 2 * self.slot_size:
            raise ValueError("block size %r holds fewer than 2 records of %d bytes"
                             % (self.block_size, self.slot_size))
        if prog_size < 1 or prog_size > self.block_size or self.block_size % prog_size:
            raise ValueError("prog_size %r must divide the block size %d"
                             % (prog_size, self.block_size))
        self.prog_size = prog_size
        self.slots_per_block = self.block_size // self.slot_size
        self.capacity = self.slots_per_block * self.block_count

        # Every buffer a commit touches exists before the first commit.
        self._windows = {}
        for slot in range(self.slots_per_block):
            length = self._window_of(slot)[1]
            if length not in self._windows:
                self._windows[length] = (bytearray(length), bytearray(length))
        chunk = _VERIFY_CHUNK_MAX
        while self.block_size % chunk:
            chunk >>= 1
        self._chunk = bytearray(chunk)
        self._ff_chunk = b"\xff" * chunk
        self._slot_buf = bytearray(self.slot_size)
        self._crc_low, self._crc_high = _crc_table_pair()
        from array import array

        self._crc_out = array("H", [0, 0])

        self._totals = [0] * self.counters
        self._erased = [False] * self.block_count
        self._reset_position()
        self._scanned = False
        self._format_error = None
        self.report = None
        self.erases = 0         # erases done by this object (prepare, commit, format)
        self.inline_erases = 0  # erases a commit had to do itself (prepare() was not called)
        self.skipped_slots = 0  # slots given up because they were not blank or failed verify

    # ----------------------------------------------------------------- geometry helpers

    def _window_of(self, slot):
        offset = slot * self.slot_size
        start = offset - offset % self.prog_size
        end = offset + self.slot_size
        end += (-end) % self.prog_size
        return start, end - start

    def _reset_position(self):
        self._seq = 0
        self._backlog = 0
        self._last_reason = REASON_UNSPECIFIED
        self._newest_block = -1
        self._write = 0  # global slot index of the next record: block * slots_per_block + slot
        for i in range(self.counters):
            self._totals[i] = 0

    # ----------------------------------------------------------------- reading

    def load(self):
        """Scan the device; return the newest valid record as a ``JournalState``, or None.

        None means no valid record: a blank or freshly formatted device, or one whose records
        are all damaged (``report.damaged``/``report.foreign`` tell those apart; a power cut
        during the very first commit also leaves one damaged slot). The store can commit either
        way, counting again from the totals the gateway gives it.

        Raises ``JournalFormatError`` when the device holds a valid record of another format
        version or channel count that is newer than the newest readable one (or nothing is
        readable), or when it holds no journal record at all but non-journal data in more than
        one block. The last rule is a judgement: a power cut leaves junk in one slot (torn
        program) or one block (torn erase), so one block of junk on an otherwise empty journal
        reads as empty; foreign data (a filesystem, another program's image) spans blocks.

        The scan reads every block once and briefly holds a block-sized buffer and 4 bytes per
        slot (about 21 KB for 16 x 4 KiB on a 32-bit board).
        """
        self._scan()
        if self._format_error is not None:
            raise self._format_error
        if self._seq == 0:
            return None
        return JournalState(self._seq, list(self._totals), self._backlog, self._last_reason)

    def _scan(self):
        bdev = self._bdev
        per_block = self.slots_per_block
        slot_size = self.slot_size
        block = bytearray(self.block_size)
        ff_block = b"\xff" * self.block_size
        report = ScanReport()
        from array import array

        # Sequence number of every slot holding our header, 0 elsewhere (valid ones start at
        # 1): 4 bytes a slot instead of a list of tuples, which would be tens of KiB at boot.
        seqs = array("I", bytes(4 * self.capacity))
        last_used = [-1] * self.block_count
        other_seq = -1
        other = None
        for b in range(self.block_count):
            bdev.readblocks(b, block, 0)
            if block == ff_block:
                self._erased[b] = True
                report.blank += per_block
                continue
            self._erased[b] = False
            foreign_here = False
            for i in range(per_block):
                o = i * slot_size
                if block[o] == 0xFF and _all_ff(block, o, o + slot_size):
                    report.blank += 1
                    continue
                last_used[b] = i
                if block[o] != _MAGIC0 or block[o + 1] != _MAGIC1:
                    report.foreign += 1
                    foreign_here = True
                    continue
                version = block[o + 2]
                length = block[o + 3]
                if (version == FORMAT_VERSION and length == self.record_len
                        and block[o + 13] == self.counters):
                    # Byte arithmetic, not unpack_from: no tuple per slot.
                    seq = (block[o + 4] | (block[o + 5] << 8) | (block[o + 6] << 16)
                           | (block[o + 7] << 24))
                    if seq:
                        seqs[b * per_block + i] = seq
                    else:
                        report.damaged += 1
                    continue
                if (_ENVELOPE_MIN <= length <= self.block_size - o
                        and _crc_stored_matches(block, o, o + length - _CRC_LEN, self._crc_low,
                                                self._crc_high, self._crc_out)):
                    report.other += 1
                    seq = struct.unpack_from("<I", block, o + 4)[0]
                    if seq > other_seq:
                        other_seq = seq
                        counters = block[o + 13] if version == FORMAT_VERSION else None
                        other = (version, counters)
                else:
                    report.damaged += 1
            if foreign_here:
                report.foreign_blocks += 1

        newest = None
        buf = self._slot_buf
        while True:
            # Newest candidate first; a damaged one is dropped and the search repeats.
            g = -1
            seq = 0
            for index in range(self.capacity):
                if seqs[index] > seq:
                    seq = seqs[index]
                    g = index
            if g < 0:
                break
            b = g // per_block
            bdev.readblocks(b, buf, (g - b * per_block) * slot_size)
            if _crc_stored_matches(buf, 0, self.record_len - _CRC_LEN, self._crc_low,
                                   self._crc_high, self._crc_out):
                newest = (seq, b)
                report.valid += 1
                break
            report.damaged += 1
            seqs[g] = 0

        self._reset_position()
        self._format_error = None
        if newest is not None:
            self._decode(buf)
            self._newest_block = newest[1]
            self._write = newest[1] * per_block + last_used[newest[1]] + 1
            if self._write == self.capacity:
                self._write = 0
        if other is not None and (newest is None or other_seq > newest[0]):
            version, counters = other
            if version != FORMAT_VERSION:
                self._format_error = JournalFormatError(
                    "the journal was written in format version %d; this code reads version %d"
                    % (version, FORMAT_VERSION), "version", version=version)
            else:
                self._format_error = JournalFormatError(
                    "the journal holds %d counters (%d channels); the store is set up for %d"
                    % (counters, counters // 2, self.counters), "channels", version=version,
                    counters=counters)
        elif newest is None and report.foreign_blocks > 1 and report.foreign > report.damaged:
            self._format_error = JournalFormatError(
                "the device holds data that is not an energy journal (%d foreign slots in %d "
                "blocks); format() it only if it is really meant for the journal"
                % (report.foreign, report.foreign_blocks), "foreign")
        self.report = report
        self._scanned = True

    def _decode(self, buf):
        self._seq = struct.unpack_from("<I", buf, 4)[0]
        self._backlog = struct.unpack_from("<I", buf, 8)[0]
        self._last_reason = buf[12]
        o = _HEADER_LEN
        for i in range(self.counters):
            lo, mid, hi = struct.unpack_from("<HHH", buf, o)
            self._totals[i] = lo | (mid << 16) | (hi << 32)
            o += 6

    # ----------------------------------------------------------------- state without reading

    @property
    def seq(self):
        """Sequence number of the newest durable record (0: none yet)."""
        return self._seq

    @property
    def backlog_seq(self):
        """backlog_seq of the newest durable record."""
        return self._backlog

    def durable_totals(self):
        """A copy of the counters of the newest durable record (zeros if none)."""
        return list(self._totals)

    @property
    def needs_prepare(self):
        """True while ``prepare()`` has an erase to do."""
        return self._prepare_target() >= 0

    # ----------------------------------------------------------------- writing

    def commit(self, totals, backlog_seq=None, reason=REASON_UNSPECIFIED):
        """Append one record and return its sequence number once it is durable.

        ``totals``: ``2 * channels`` ints, none lower than the last durable value (ValueError
        otherwise; nothing is written). ``backlog_seq``: 0 .. 2**32-1, None keeps the last one.
        Allocates nothing when the block ahead was prepared and, on 32-bit boards, the totals
        are small ints (below 2**30).
        """
        if not self._scanned:
            self._scan()
        if self._format_error is not None:
            raise self._format_error
        counters = self.counters
        if len(totals) != counters:
            raise ValueError("expected %d counters, got %d" % (counters, len(totals)))
        floor = self._totals
        for i in range(counters):
            value = totals[i]
            if not isinstance(value, int) or value < 0 or value >= COUNTER_LIMIT:
                raise ValueError("counter %d must be an int in 0 .. 2**48-1, got %r" % (i, value))
            if value < floor[i]:
                raise ValueError("counter %d would go backwards: %d after %d"
                                 % (i, value, floor[i]))
        if backlog_seq is None:
            backlog_seq = self._backlog
        elif not isinstance(backlog_seq, int) or not 0 <= backlog_seq < SEQ_LIMIT:
            raise ValueError("backlog_seq must be an int in 0 .. 2**32-1, got %r" % (backlog_seq,))
        if not isinstance(reason, int) or not 0 <= reason <= 255:
            raise ValueError("reason must be an int in 0 .. 255, got %r" % (reason,))
        seq = self._seq + 1
        if seq >= SEQ_LIMIT:
            raise JournalError("sequence numbers exhausted: format() the journal")

        for _ in range(_WRITE_ATTEMPTS):
            if self._program(totals, seq, backlog_seq, reason):
                for i in range(counters):
                    floor[i] = totals[i]
                self._seq = seq
                self._backlog = backlog_seq
                self._last_reason = reason
                return seq
        raise JournalWriteError("%d slots in a row did not take the record" % _WRITE_ATTEMPTS)

    def _program(self, totals, seq, backlog_seq, reason):
        per_block = self.slots_per_block
        block = self._write // per_block
        slot = self._write - block * per_block
        if slot == 0 and not self._erased[block]:
            self.inline_erases += 1
            self._erase(block)
        # Same arithmetic as _window_of, inline: a returned tuple would allocate.
        offset = slot * self.slot_size
        start = offset - offset % self.prog_size
        end = offset + self.slot_size
        end += (-end) % self.prog_size
        window, readback = self._windows[end - start]
        bdev = self._bdev
        bdev.readblocks(block, window, start)
        o = offset - start
        self._advance(block, slot)
        if not _all_ff(window, o, o + self.slot_size):
            self.skipped_slots += 1
            return False

        window[o] = _MAGIC0
        window[o + 1] = _MAGIC1
        window[o + 2] = FORMAT_VERSION
        window[o + 3] = self.record_len
        struct.pack_into("<HH", window, o + 4, seq & 0xFFFF, seq >> 16)
        struct.pack_into("<HH", window, o + 8, backlog_seq & 0xFFFF, backlog_seq >> 16)
        window[o + 12] = reason
        window[o + 13] = self.counters
        p = o + _HEADER_LEN
        for i in range(self.counters):
            value = totals[i]
            struct.pack_into("<HHH", window, p, value & 0xFFFF, (value >> 16) & 0xFFFF,
                             value >> 32)
            p += 6
        out = self._crc_out
        _crc_halves(window, o, p, self._crc_low, self._crc_high, out)
        struct.pack_into("<HH", window, p, out[0], out[1])

        bdev.writeblocks(block, window, start)
        bdev.ioctl(_IOCTL_SYNC, 0)
        bdev.readblocks(block, readback, start)
        if readback != window:
            self.skipped_slots += 1
            return False
        self._newest_block = block
        return True

    def _advance(self, block, slot):
        # The slot is spent whatever happens next: never program the same slot twice.
        self._erased[block] = False
        self._write += 1
        if self._write == self.capacity:
            self._write = 0

    def _prepare_target(self):
        per_block = self.slots_per_block
        block = self._write // per_block
        if self._write == block * per_block and not self._erased[block]:
            return block
        ahead = block + 1
        if ahead == self.block_count:
            ahead = 0
        if self._erased[ahead] or ahead == self._newest_block:
            return -1
        return ahead

    def prepare(self):
        """Erase the block the next commits will need, if any. Return True if it erased.

        Call it when the gateway is idle: an erase stalls the CPU (about 80 ms with
        interrupts blocked on ESP32), so it should never be in the way of metering.
        """
        if not self._scanned:
            self._scan()
        if self._format_error is not None:
            raise self._format_error
        target = self._prepare_target()
        if target < 0:
            return False
        self._erase(target)
        return True

    def _erase(self, block):
        if block == self._newest_block:
            raise JournalWriteError("refusing to erase block %d: it holds the newest record"
                                    % block)
        for _ in range(_ERASE_ATTEMPTS):
            self._bdev.ioctl(_IOCTL_BLOCK_ERASE, block)
            self.erases += 1
            if self._block_is_blank(block):
                self._erased[block] = True
                return
        raise JournalWriteError("block %d does not erase (worn out?)" % block)

    def _block_is_blank(self, block):
        chunk = self._chunk
        step = len(chunk)
        for off in range(0, self.block_size, step):
            self._bdev.readblocks(block, chunk, off)
            if chunk != self._ff_chunk:
                return False
        return True

    def format(self):
        """Deliberately wipe the device and start an empty journal (sequence restarts at 1).

        Not atomic: if it is cut short, the device may still hold old records; call it again.
        """
        self._newest_block = -1
        for b in range(self.block_count):
            if not self._block_is_blank(b):
                self._erase(b)
            self._erased[b] = True
        self._reset_position()
        self._format_error = None
        self.report = ScanReport()
        self.report.blank = self.capacity
        self._scanned = True
