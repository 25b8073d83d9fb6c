"""Energy journal scan: one pass over the device finds the newest record and where the next goes.

What counts as the newest record (the highest sequence number of a readable version), how a
block's slot size is found and what a power cut can leave behind are described in
``gateway.store``, which owns the journal and judges what the scan found. This module only reads.

Usage::

    from gateway.journal_record import RECORD_LIMIT, RecordCodec
    from gateway.journal_scan import JournalScan

    scan = JournalScan(bdev, bdev.ioctl(4, 0), bdev.ioctl(5, 0), RecordCodec())
    newest = bytearray(RECORD_LIMIT)
    erased = [False] * scan.block_count
    scan.run(56, newest, erased)           # 56: the slot size blank slots are counted in
    if scan.newest_seq:
        print(scan.report, "newest in block", scan.newest_block, "next at", scan.next_offset)
    for block, slot, state in scan.records():
        print(block, slot, state)
"""

from gateway.journal_record import (
    CRC_LEN,
    ENVELOPE_MIN,
    MAGIC0,
    MAGIC1,
    decode,
    declared_length,
    is_blank,
    read_u32,
)


class ScanReport:
    """What the last scan found, slot by slot (diagnostics for the gateway's log)."""

    def __init__(self):
        self.blank = 0           # erased slots
        self.valid = 0           # records checked and found valid (the newest one at least)
        self.damaged = 0         # records with our header whose CRC failed (torn or corrupted)
        self.foreign = 0         # non-blank slots that are not journal records at all
        self.foreign_blocks = 0  # blocks holding at least one foreign slot
        self.other = 0           # valid records of a format version this code does not read

    def __repr__(self):
        return "ScanReport(blank=%d, valid=%d, damaged=%d, foreign=%d in %d blocks, other=%d)" % (
            self.blank, self.valid, self.damaged, self.foreign, self.foreign_blocks, self.other)


class JournalScan:
    """Reads a journal device block by block with a ``RecordCodec``; ``run()`` leaves its
    findings in the attributes below (all zero or -1 until then)."""

    def __init__(self, bdev, block_count, block_size, codec):
        self._bdev = bdev
        self.block_count = block_count
        self.block_size = block_size
        self._codec = codec
        self.report = None
        self.newest_seq = 0      # sequence number of the newest readable record (0: none)
        self.newest_block = -1   # the block holding it
        self.next_offset = 0     # in that block: the offset after its last non-blank slot
        self.stride = 0          # that block's slot size
        self.other_seq = -1      # the highest sequence number of an unreadable version (-1: none)
        self.other_version = 0   # that record's format version

    def run(self, unit, newest, erased):
        """Read every block once; copy the newest readable record into ``newest`` (a bytearray
        of ``RECORD_LIMIT`` bytes) and set ``erased[b]`` to whether block ``b`` is blank.

        ``unit`` is the slot size a block without a valid record is counted in. Allocates one
        block-sized buffer and its blank image for the duration of the scan.
        """
        bdev = self._bdev
        codec = self._codec
        size = self.block_size
        block = bytearray(size)
        ff_block = b"\xff" * size
        report = ScanReport()
        best_seq = 0
        best_block = -1
        best_next = 0
        best_stride = 0
        other_seq = -1
        other_version = 0
        for b in range(self.block_count):
            bdev.readblocks(b, block, 0)
            if block == ff_block:
                erased[b] = True
                report.blank += size // unit
                continue
            erased[b] = False
            stride = codec.block_stride(block, size)
            if not stride:
                # No valid record here, so nothing to resume from: the stride only shapes how
                # the junk is counted (a torn slot 0 still declares its own length).
                stride = unit
                if block[0] == MAGIC0 and block[1] == MAGIC1 and block[3] >= ENVELOPE_MIN:
                    stride = (block[3] + 3) & ~3
            last_used = -1
            foreign_here = False
            # Newest slot first: records of a block go in with rising sequence numbers, so
            # normally one CRC per block settles which record there is the newest.
            i = size // stride
            while i > 0:
                i -= 1
                o = i * stride
                if block[o] == 0xFF and is_blank(block, o, o + stride):
                    report.blank += 1
                    continue
                if last_used < 0:
                    last_used = i
                if block[o] != MAGIC0 or block[o + 1] != MAGIC1:
                    report.foreign += 1
                    foreign_here = True
                    continue
                version = block[o + 2]
                seq = read_u32(block, o + 4)
                if version == 1 or version == 2:
                    if seq == 0 or block[o + 3] != declared_length(block, o):
                        report.damaged += 1
                    elif seq > best_seq:
                        if codec.readable(block, o, size):
                            report.valid += 1
                            best_seq = seq
                            best_block = b
                            for j in range(block[o + 3]):
                                newest[j] = block[o + j]
                        else:
                            report.damaged += 1
                    continue
                length = block[o + 3]
                if (ENVELOPE_MIN <= length <= size - o
                        and codec.crc_matches(block, o, o + length - CRC_LEN)):
                    report.other += 1
                    if seq > other_seq:
                        other_seq = seq
                        other_version = version
                else:
                    report.damaged += 1
            if best_block == b:
                best_stride = stride
                best_next = (last_used + 1) * stride
            if foreign_here:
                report.foreign_blocks += 1
        self.report = report
        self.newest_seq = best_seq
        self.newest_block = best_block
        self.next_offset = best_next
        self.stride = best_stride
        self.other_seq = other_seq
        self.other_version = other_version

    def records(self):
        """Yield ``(block, slot, JournalState)`` for every valid record of a readable version,
        block by block, with the slot sizes ``run()`` uses."""
        size = self.block_size
        block = bytearray(size)
        codec = self._codec
        for b in range(self.block_count):
            self._bdev.readblocks(b, block, 0)
            stride = codec.block_stride(block, size)
            if not stride:
                continue
            for i in range(size // stride):
                o = i * stride
                if (block[o] == MAGIC0 and block[o + 1] == MAGIC1
                        and codec.readable(block, o, size)):
                    yield b, i, decode(block, o)
