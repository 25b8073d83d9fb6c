"""Energy journal: power-cut-proof, wear-levelled persistence of the energy totals.

An append-only ring of records on a block device with the extended block-device protocol:
``readblocks(n, buf, off)``, ``writeblocks(n, buf, off)`` (program only, never an implicit
erase), ``ioctl(4, 0)`` block count, ``ioctl(5, 0)`` block size, ``ioctl(6, n)`` erase and
``ioctl(3, 0)`` sync. That is ``esp32.Partition``, ``rp2.Flash(start=, len=)``,
``gateway.flashdev.FileBlockDevice`` (a file on the board's own filesystem, for stock firmware)
and the NOR-flash test device ``tools/norflash.py``.

Usage::

    store = EnergyStore(bdev)
    state = store.load()              # None: nothing valid on the device (see ``load``)
    store.set_layout([(0x50, 2), (0x51, 1)])   # (address, channels) per module, config order
    ...
    store.commit(totals, backlog_seq=n, reason=REASON_GROWTH, resume=resume)   # once durable
    store.prepare()                   # when idle: erase the block ahead, off the critical path

``EnergyStore(bdev, channels=N)`` is short for ``set_layout([(0, N)])``: address 0 stands for
one anonymous module.

Totals are ``2 * channels`` unsigned integer counters over all modules, ordered
``[m0 ch0 import, m0 ch0 export, m0 ch1 import, ..., m1 ch0 import, ...]``, each below
``2**48``. The gateway counts milliwatt-hours (mWh): 1 mWh resolution, and 2**48 mWh = 281 GWh
will not overflow in any installation's lifetime. Only a float of Wh would be worse: float32
stops counting small increments once a total is large. The store itself does not care about
the unit; the commit policy's thresholds are in the same unit.

Every record says which module each counter belongs to, so a journal is readable whatever the
gateway's configuration is today: ``load()`` returns the newest record with its own ``layout``
(and, per module, 10 bytes of ``resume`` data that are opaque to the store). The gateway compares
that layout with the modules it found and moves the totals over; ``set_layout()`` then tells the
store what the next records hold.

Reasons (one per record): ``REASON_UNSPECIFIED`` 0, ``REASON_GROWTH`` 1, ``REASON_INTERVAL`` 2,
``REASON_SHUTDOWN`` 3, ``REASON_RESET`` 4, ``REASON_MIGRATION`` 5, ``REASON_POWER_LOSS`` 6,
``REASON_LAYOUT`` 7, ``REASON_PERIOD`` 8. The store records them and never acts on them.

Guarantees:

- ``commit()`` returns only after the record was programmed, synced, read back and compared.
- A power cut at any instant leaves the journal so that ``load()`` returns the last record whose
  ``commit()`` returned, or the one that was in flight; never anything else, never lower totals.
  That holds across layout changes and across the upgrade of a version-1 journal.
- ``commit()`` refuses (``ValueError``) any counter lower than the last durable value of the
  same layout. A commit in another layout than the newest record's (a *layout change*) starts
  from a floor of zero: carrying totals across modules is the gateway's business.
- Every block holds records of one length: a layout change writes its record at the start of
  the block ahead (erased first if needed); the older layout's records stay until the ring
  wraps over them.
- Only the block ahead of the write pointer is ever erased, never the block holding the newest
  valid record. ``prepare()`` does that erase ahead of time, so a commit is one small program.
- A record of a format version newer than the newest readable one, or data that is not a
  journal at all, is never misread nor overwritten: ``load()`` and ``commit()`` raise
  ``JournalFormatError`` until someone deliberately calls ``format()``.

On-flash format (all integers little-endian; ``gateway.journal_record`` encodes and decodes it,
``gateway.journal_scan`` reads the device block by block, this module owns the device). Every
version keeps this envelope, so any version recognises records of any other one::

    0  2  magic b"EJ"
    2  1  format version
    3  1  record length L in bytes, CRC included (at most 255)
    4  4  sequence number (1, 2, ... one per commit; the highest valid one is the newest record)
    L-4 4 CRC-32 (IEEE 802.3, the same as zlib/binascii.crc32) of bytes 0 .. L-5

Version 2 body (written by this code)::

    8  4  backlog_seq: opaque to the store; the gateway's period-record backlog position
    12 1  reason the record was written (REASON_*)
    13 1  n counters (2 per channel, all modules together)
    14 1  m modules
    15 1  0 (reserved; ignored when read)
    16 12m  per module: address u8, channels u8, 10 bytes of resume data (opaque to the store)
    16+12m 6n  counters, 48 bits each, in the order above
    L = 20 + 12m + 6n, a multiple of 4: the slot size. m modules and c channels fit while
    m + c <= 19 (1 module of 2 channels: 56 bytes, 73 slots in a 4 KiB block).

Version 1 body (read, never written)::

    8  4  backlog_seq
    12 1  reason
    13 1  n counters
    14 6n counters, 48 bits each (no module information: ``layout`` is None)
    L = 18 + 6n; the slot is L rounded up to a multiple of 4 bytes.

Slots never straddle a block. A block's slot size is that of its first valid record, found by
looking at every 4th byte, so a torn slot 0 does not hide the records after it.

Programs are done in windows aligned to ``prog_size`` (rp2's flash only programs whole 256-byte
pages): the window is read, the record overlaid, the window written back. On NOR flash
re-programming a byte with its own value changes nothing, so neighbouring records are safe even
if the device replaced rather than ANDed bytes. The partition must not be flash-encrypted.
"""

from gateway.ledger import COUNTERS_PER_CHANNEL
from gateway.journal_record import (
    COUNTER_LIMIT,
    FORMAT_VERSION,
    MAGIC,
    MAX_ADDRESS,
    MAX_MODULE_CHANNELS,
    RECORD_LIMIT,
    RESUME_LEN,
    SEQ_LIMIT,
    JournalState,
    RecordCodec,
    crc32,
    decode,
    is_blank,
    layout_key,
    read_key,
    read_resume,
    read_u32,
    record_length,
)
from gateway.journal_scan import JournalScan, ScanReport

# The journal's public names, those of the record format included: other modules import them
# all from here.
__all__ = (
    "EnergyStore", "JournalState", "ScanReport", "JournalError", "JournalFormatError",
    "JournalWriteError", "crc32", "record_length", "FORMAT_VERSION", "MAGIC", "COUNTER_LIMIT",
    "SEQ_LIMIT", "RECORD_LIMIT", "RESUME_LEN", "MAX_ADDRESS", "MAX_MODULE_CHANNELS",
    "REASON_UNSPECIFIED", "REASON_GROWTH", "REASON_INTERVAL", "REASON_SHUTDOWN", "REASON_RESET",
    "REASON_MIGRATION", "REASON_POWER_LOSS", "REASON_LAYOUT", "REASON_PERIOD",
)

REASON_UNSPECIFIED = 0
REASON_GROWTH = 1
REASON_INTERVAL = 2
REASON_SHUTDOWN = 3
REASON_RESET = 4
REASON_MIGRATION = 5
REASON_POWER_LOSS = 6
REASON_LAYOUT = 7
REASON_PERIOD = 8  # the gateway commits after every period latch (see gateway.metering)

# The unit a scan counts slots in where a block holds no valid record to give its slot size
# (one module of 2 channels): it only shapes the report's figures.
_NOMINAL_SLOT = 56
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

    ``kind`` is ``"foreign"`` (not a journal) or ``"version"`` (a format version this code does
    not read, given in ``version``, newer than the newest readable record). ``format()`` wipes
    deliberately.
    """

    def __init__(self, message, kind, version=None):
        super().__init__(message)
        self.kind = kind
        self.version = version


class JournalWriteError(JournalError):
    """The flash did not take a program or an erase (worn out or failing)."""


def _format_error(scan):
    """The JournalFormatError a finished ``JournalScan`` calls for, or None (see ``load``)."""
    newest = scan.newest_seq
    if scan.other_seq >= 0 and (not newest or scan.other_seq > newest):
        return JournalFormatError(
            "the journal was written in format version %d; this code reads versions 1 and %d"
            % (scan.other_version, FORMAT_VERSION), "version", version=scan.other_version)
    report = scan.report
    if not newest and report.foreign_blocks > 1 and report.foreign > report.damaged:
        return JournalFormatError(
            "the device holds data that is not an energy journal (%d foreign slots in %d "
            "blocks); format() it only if it is really meant for the journal"
            % (report.foreign, report.foreign_blocks), "foreign")
    return None


def _program_windows(slots, length, prog_size):
    """The window and read-back buffer pairs a commit programs ``length``-byte slots through,
    keyed by window size: every slot's window is aligned to ``prog_size``."""
    windows = {}
    for slot in range(slots):
        offset = slot * length
        start = offset - offset % prog_size
        end = offset + length
        end += (-end) % prog_size
        if end - start not in windows:
            windows[end - start] = (bytearray(end - start), bytearray(end - start))
    return windows


class EnergyStore:
    """The journal on one block device. See the module docstring for the guarantees.

    ``prog_size``: the device's program granularity. The default 256 suits every supported
    device (rp2 flash needs it; smaller windows are only a little faster elsewhere).
    ``channels``: shorthand for ``set_layout([(0, channels)])`` (one anonymous module).
    """

    def __init__(self, bdev, prog_size=256, *, channels=None):
        self._bdev = bdev
        self.block_count = bdev.ioctl(_IOCTL_BLOCK_COUNT, 0)
        self.block_size = bdev.ioctl(_IOCTL_BLOCK_SIZE, 0)
        if not isinstance(self.block_count, int) or self.block_count < 2:
            raise ValueError("the journal needs a device of at least 2 blocks, got %r"
                             % (self.block_count,))
        smallest = record_length(1, 2)
        if not isinstance(self.block_size, int) or self.block_size < 2 * smallest:
            raise ValueError("block size %r holds fewer than 2 records of %d bytes"
                             % (self.block_size, smallest))
        if prog_size < 1 or prog_size > self.block_size or self.block_size % prog_size:
            raise ValueError("prog_size %r must divide the block size %d"
                             % (prog_size, self.block_size))
        self.prog_size = prog_size

        # The current layout: set_layout() fills these in (0 and None until then).
        self.layout = None
        self.modules = 0
        self.channels = 0
        self.counters = 0
        self.record_len = 0
        self.slot_size = 0
        self.slots_per_block = 0
        self.capacity = 0
        self._key = b""
        self._resume_len = 0
        self._zero_resume = b""
        self._next_totals = []
        self._next_resume = bytearray(0)
        self._windows = {}

        chunk = _VERIFY_CHUNK_MAX
        while self.block_size % chunk:
            chunk >>= 1
        self._chunk = bytearray(chunk)
        self._ff_chunk = b"\xff" * chunk
        self._record_buf = bytearray(RECORD_LIMIT)
        self._codec = RecordCodec()

        self._erased = [False] * self.block_count
        self._reset_position()
        self._scanned = False
        self._format_error = None
        self.report = None
        self.erases = 0         # erases done by this object (prepare, commit, format)
        self.inline_erases = 0  # erases a commit had to do itself (prepare() was not called)
        self.skipped_slots = 0  # slots given up because they were not blank or failed verify
        if channels is not None:
            self.set_layout([(0, channels)])

    # ----------------------------------------------------------------- layout

    def set_layout(self, layout):
        """Say which modules the next records hold: ``[(address, channels), ...]`` in counter order.

        Address 0 .. 0x77 (0: one anonymous module), 1 .. 8 channels each, addresses unique, and
        the record must fit in 255 bytes (modules + channels <= 19). ValueError otherwise, and
        nothing changes. If the layout differs from the newest durable record's (or that one is
        a version-1 record), the next commit is a layout change: it starts the block ahead and
        its counters may be anything >= 0. The same layout as the newest record changes nothing.
        """
        key, counters = layout_key(layout)
        modules = len(key) // 2
        length = record_length(modules, counters)
        if self.block_size < 2 * length:
            raise ValueError("block size %d holds fewer than 2 records of %d bytes"
                             % (self.block_size, length))
        if key == self._key:
            return
        self.layout = [(key[2 * k], key[2 * k + 1]) for k in range(modules)]
        self.modules = modules
        self.channels = counters // COUNTERS_PER_CHANNEL
        self.counters = counters
        self.record_len = length
        self.slot_size = length  # a multiple of 4: slot = record
        self.slots_per_block = self.block_size // length
        self.capacity = self.slots_per_block * self.block_count
        self._key = key

        # Every buffer a commit touches exists before the first commit.
        self._windows = _program_windows(self.slots_per_block, length, self.prog_size)
        self._resume_len = RESUME_LEN * modules
        self._zero_resume = bytes(self._resume_len)
        # Taken over by the first commit of a layout change, so that it does not allocate.
        self._next_totals = [0] * counters
        self._next_resume = bytearray(self._resume_len)
        self._update_opens_block()

    def _update_opens_block(self):
        # A block holds one record length: anything but a continuation of the newest record's
        # layout, in the newest block's own slot size, opens the block ahead of the newest
        # record's (block 0 on an empty journal) and starts from a floor of zero.
        self._change = (len(self._key) > 0
                        and (self._seq == 0 or self._durable_key != self._key
                             or self._write_stride != self.slot_size))

    def _reset_position(self):
        self._seq = 0
        self._backlog = 0
        self._last_reason = REASON_UNSPECIFIED
        self._totals = []
        self._durable_key = b""      # the newest record's (address, channels) pairs; empty: v1
        self._durable_resume = bytearray(0)
        self._newest_block = -1
        # Where the next record goes, and the slot size of the records already in that block.
        self._write_block = 0
        self._write_off = 0
        self._write_stride = 0
        self._change = False

    # ----------------------------------------------------------------- reading

    def load(self):
        """Scan the device; return the newest valid record as a ``JournalState``, or None.

        None means no valid record: a blank or freshly formatted device, or one whose records
        are all damaged (``report.damaged``/``report.foreign`` tell those apart; a power cut
        during the very first commit also leaves one damaged slot). The store can commit either
        way, counting again from the totals the gateway gives it. Records of both versions and
        of any layout are read; the state's ``layout`` says whose counters they are.

        Raises ``JournalFormatError`` when the device holds a valid record of a format version
        this code does not read that is newer than the newest readable one (or nothing is
        readable), or when it holds no journal record at all but non-journal data in more than
        one block. The last rule is a judgement: a power cut leaves junk in one slot (torn
        program) or one block (torn erase), so one block of junk on an otherwise empty journal
        reads as empty; foreign data (a filesystem, another program's image) spans blocks.

        The scan reads every block once into one block-sized buffer and keeps only the best
        record so far: about 10 KB, briefly, for 16 x 4 KiB on a 32-bit board (9.9 KB measured on
        mpy32; nothing grows with the slot count).
        """
        self._scan()
        if self._format_error is not None:
            raise self._format_error
        if self._seq == 0:
            return None
        return decode(self._record_buf, 0)

    def _scan(self):
        scan = JournalScan(self._bdev, self.block_count, self.block_size, self._codec)
        scan.run(self.slot_size or _NOMINAL_SLOT, self._record_buf, self._erased)
        self._reset_position()
        self._format_error = _format_error(scan)
        if scan.newest_seq:
            newest = self._record_buf
            self._seq = scan.newest_seq
            self._backlog = read_u32(newest, 8)
            self._last_reason = newest[12]
            self._totals = decode(newest, 0).totals
            if newest[2] == 2:
                self._durable_key = read_key(newest, 0)
                self._durable_resume = read_resume(newest, 0)
            self._newest_block = scan.newest_block
            self._set_pointer(scan.newest_block, scan.next_offset, scan.stride)
        self._update_opens_block()
        self.report = scan.report
        self._scanned = True

    def _set_pointer(self, block, offset, stride):
        if offset + stride > self.block_size:
            block += 1
            if block == self.block_count:
                block = 0
            offset = 0
        self._write_block = block
        self._write_off = offset
        self._write_stride = stride

    def records(self):
        """Yield ``(block, slot, JournalState)`` for every valid record of a readable version,
        block by block, with the slot sizes the scan uses. For diagnostics (``rbamp journal``);
        the gateway itself only needs ``load()``."""
        return JournalScan(self._bdev, self.block_count, self.block_size, self._codec).records()

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
        """A copy of the counters of the newest durable record (empty if none)."""
        return list(self._totals)

    @property
    def needs_prepare(self):
        """True while ``prepare()`` has an erase to do."""
        return self._prepare_target() >= 0

    # ----------------------------------------------------------------- writing

    def commit(self, totals, backlog_seq=None, reason=REASON_UNSPECIFIED, resume=None):
        """Append one record and return its sequence number once it is durable.

        ``totals``: ``2 * channels`` ints of the current layout, none lower than the last
        durable value of the same layout (ValueError otherwise; nothing is written).
        ``backlog_seq``: 0 .. 2**32-1, None keeps the last one. ``resume``: a bytes-like object
        of 10 bytes per module; None keeps the newest record's (zeros after a layout change).
        Allocates nothing when the block ahead was prepared and, on 32-bit boards, the totals
        are small ints (below 2**30).
        """
        if not self._scanned:
            self._scan()
        if self._format_error is not None:
            raise self._format_error
        if not self._key:
            raise JournalError("no layout: call set_layout() (or open with channels=) before "
                               "the first commit")
        counters = self.counters
        if len(totals) != counters:
            raise ValueError("expected %d counters, got %d" % (counters, len(totals)))
        change = self._change
        floor = self._totals
        for i in range(counters):
            value = totals[i]
            if not isinstance(value, int) or value < 0 or value >= COUNTER_LIMIT:
                raise ValueError("counter %d must be an int in 0 .. 2**48-1, got %r" % (i, value))
            if not change and value < floor[i]:
                raise ValueError("counter %d would go backwards: %d after %d"
                                 % (i, value, floor[i]))
        if backlog_seq is None:
            backlog_seq = self._backlog
        elif not isinstance(backlog_seq, int) or not 0 <= backlog_seq < SEQ_LIMIT:
            raise ValueError("backlog_seq must be an int in 0 .. 2**32-1, got %r" % (backlog_seq,))
        if not isinstance(reason, int) or not 0 <= reason <= 255:
            raise ValueError("reason must be an int in 0 .. 255, got %r" % (reason,))
        if resume is None:
            resume = self._zero_resume if change else self._durable_resume
        elif not (isinstance(resume, bytes) or isinstance(resume, bytearray)
                  or isinstance(resume, memoryview)):
            raise ValueError("resume must be bytes-like, got %r" % (resume,))
        elif len(resume) != self._resume_len:
            raise ValueError("resume must be %d bytes (%d per module), got %d"
                             % (self._resume_len, RESUME_LEN, len(resume)))
        seq = self._seq + 1
        if seq >= SEQ_LIMIT:
            raise JournalError("sequence numbers exhausted: format() the journal")

        if change:
            # The record of a new layout opens the block ahead of the newest record's.
            block = self._newest_block + 1
            if block == self.block_count:
                block = 0
            self._write_block = block
            self._write_off = 0
        for _ in range(_WRITE_ATTEMPTS):
            if self._program(totals, seq, backlog_seq, reason, resume):
                if change:
                    self._totals = floor = self._next_totals
                    self._durable_resume = self._next_resume
                    self._durable_key = self._key
                    self._change = False
                for i in range(counters):
                    floor[i] = totals[i]
                durable = self._durable_resume
                if resume is not durable:
                    for i in range(self._resume_len):
                        durable[i] = resume[i]
                self._seq = seq
                self._backlog = backlog_seq
                self._last_reason = reason
                return seq
        raise JournalWriteError("%d slots in a row did not take the record" % _WRITE_ATTEMPTS)

    def _program(self, totals, seq, backlog_seq, reason, resume):
        size = self.slot_size
        block = self._write_block
        offset = self._write_off
        if offset == 0 and not self._erased[block]:
            self.inline_erases += 1
            self._erase(block)
        # Same arithmetic as in _program_windows, inline: a returned tuple would allocate.
        start = offset - offset % self.prog_size
        end = offset + size
        end += (-end) % self.prog_size
        window, readback = self._windows[end - start]
        bdev = self._bdev
        bdev.readblocks(block, window, start)
        o = offset - start
        # The slot is spent whatever happens next: never program the same slot twice.
        self._erased[block] = False
        self._set_pointer(block, offset + size, size)
        if not is_blank(window, o, o + size):
            self.skipped_slots += 1
            return False

        self._codec.encode(window, o, seq, backlog_seq, reason, self._key, resume, totals)
        bdev.writeblocks(block, window, start)
        bdev.ioctl(_IOCTL_SYNC, 0)
        bdev.readblocks(block, readback, start)
        if readback != window:
            self.skipped_slots += 1
            return False
        self._newest_block = block
        return True

    def _prepare_target(self):
        if self._change:
            ahead = self._newest_block + 1
            if ahead == self.block_count:
                ahead = 0
            return -1 if self._erased[ahead] else ahead
        block = self._write_block
        if self._write_off == 0 and not self._erased[block]:
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
        self._update_opens_block()
        self._format_error = None
        self.report = ScanReport()
        self.report.blank = self.block_count * (self.block_size // (self.slot_size or _NOMINAL_SLOT))
        self._scanned = True
