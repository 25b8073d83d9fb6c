"""Durable backlog of period records: what could not be published yet survives reboots and power cuts.

    backlog = Backlog("/backlog.bin")            # capacity=2880 records
    backlog.append(seq, payload)                 # payload: bytes or str; seq strictly increasing
    entry = backlog.oldest()                     # (seq, payload bytes) or None
    backlog.ack(seq)                             # everything <= seq is done
    len(backlog), backlog.last_seq, backlog.acked_seq, backlog.dropped

Records are published in order, so an acknowledgement is cumulative: ``ack(seq)`` settles every
record up to ``seq``. ``pending()`` iterates the unsettled records oldest first without loading
them all (a full backlog is ~0.6 MB of JSON: far more than a board's heap).

File format: an append-only log of records, each

    off len
    0   1   kind: 0x44 'D' (data) or 0x4D 'M' (mark)
    1   1   0 (reserved)
    2   2   payload length, little-endian
    4   4   seq: the record's sequence number (data) or the acknowledged-through seq (mark)
    8   n   payload; a mark's is dropped_total u32, last_seq u32
    8+n 4   CRC-32 of bytes 0 .. 8+n-1

Appending writes one record at the known end of the valid log and flushes it; acknowledging or
dropping the oldest writes a mark. A power cut can only tear the record being written: on open
the scan stops at the first record that is short, fails its CRC or breaks the ordering, and the
file is rewritten without it (``recovered`` says what was cut). The log is compacted (pending
records copied into ``<path>.tmp``, which then replaces the file) once the settled prefix is at
least as large as the live part, so the copying stays linear in the records written and the
file stays below about twice the live records plus 4 KiB. ``os.rename`` over an existing file
fails on FAT, so the old file is removed first there; open() finishes such an interrupted swap.

When ``capacity`` records are pending, appending drops the oldest one and counts it in
``dropped`` (persisted in the marks). ``advance(seq)`` records, in one mark, that records up to
``seq`` were settled without ever being stored here (see ``StagedBacklog``), so the numbering
survives a restart. ``writes`` counts the records and marks written, ``compactions`` the rewrites.

``MemoryBacklog`` has the same interface in RAM, for a gateway without a writable filesystem.

``StagedBacklog`` puts a small RAM stage in front of either, to spare the flash:

    backlog = StagedBacklog(Backlog("/backlog.bin"), clock)   # hold_ms=5000, 16 records, 8 KiB
    backlog.hold(seq, payload)     # the broker is connected: RAM first
    backlog.append(seq, payload)   # the broker is away: straight to the durable backlog
    backlog.spill_due()            # now and then: write what waited hold_ms without an ack
    backlog.flush()                # the connection ended, or the gateway stops in order
    # oldest(), pending(), ack(), discard_oldest(), len(), last_seq, acked_seq, dropped as above

Why: on littlefs every small appended-and-flushed write rewrites a block of the file and its
metadata, so writing each period record and then its acknowledgement mark cost 2.6 block erases
per period on the Pico W (BENCHMARKS.md, flash life: its most-erased block would be worn out in
under five years), although the broker took the record within a tenth of a second. A record the
broker acknowledges while it is still staged never touches the flash, and neither does its
acknowledgement.

A staged record is written to the durable backlog (oldest first, so the order of the whole
backlog stays the order of seq) when

- it waited ``hold_ms`` (5 s) without being acknowledged (``spill_due``). A healthy broker answers
  a period record in about 0.1 s (BENCHMARKS.md, gateway section), so 5 s is fifty round trips
  and queueing behind totals or discovery; it is also the link's default ``timeout_s``, after
  which the link gives the session up anyway;
- the stage would hold more than ``max_records`` (16) or ``max_bytes`` (8 KiB): 16 records cover
  the hold time even at ``period_s: 1``, and 8 KiB is 4 % of a 200 KB heap;
- the link loses or closes its connection, or the gateway stops in order (``flush``).

The trade-off: a record that is staged when the gateway dies without an orderly stop (a crash,
a watchdog reset, a power cut) is lost, at most ``hold_ms`` of records (one at the default
``period_s``). That is a report, not the energy: the totals live in the energy journal, and the
next period record carries them. A crash can also lose the numbering of staged records that were
acknowledged since the last flush; the gateway numbers on from the journal's ``backlog_seq``.
"""

import os
import struct

from gateway.flashdev import path_exists

try:
    from binascii import crc32 as _crc32
except ImportError:  # ports built without binascii.crc32
    _crc32 = None

KIND_DATA = 0x44
KIND_MARK = 0x4D
HEADER_LEN = 8
CRC_LEN = 4
MARK_PAYLOAD_LEN = 8
MARK_LEN = HEADER_LEN + MARK_PAYLOAD_LEN + CRC_LEN
SEQ_LIMIT = 1 << 32
MAX_RECORD = 4096
COMPACT_MIN_BYTES = 4096
HOLD_MS = 5000
STAGE_RECORDS = 16
STAGE_BYTES = 8192


class BacklogError(Exception):
    """A backlog file operation failed (the message names the file and the cause)."""


def _crc(data):
    if _crc32 is not None:
        return _crc32(data) & 0xFFFFFFFF
    from gateway.store import crc32

    return crc32(data)


def _checked_record(seq, payload, last_seq, max_record):
    """The payload as bytes, once seq and size are acceptable for the next append."""
    _check_seq(seq)
    data = _encode_payload(payload)
    if seq <= last_seq:
        raise ValueError("seq %d is not above the last one (%d)" % (seq, last_seq))
    if len(data) > max_record:
        raise ValueError("record of %d bytes exceeds max_record %d" % (len(data), max_record))
    return data


def _encode_payload(payload):
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    raise TypeError("payload must be bytes or str, got %s" % type(payload).__name__)


def _check_seq(seq, name="seq"):
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < SEQ_LIMIT:
        raise ValueError("%s must be an int in 1 .. 2**32-1, got %r" % (name, seq))


def _settles_something(backlog, seq):
    """Validate an acknowledgement; False when everything up to seq is already settled."""
    _check_seq(seq)
    if seq > backlog.last_seq:
        raise ValueError("cannot ack seq %d: the last record is %d" % (seq, backlog.last_seq))
    return seq > backlog.acked_seq


def _build(kind, seq, payload):
    n = len(payload)
    rec = bytearray(HEADER_LEN + n + CRC_LEN)
    struct.pack_into("<BBHI", rec, 0, kind, 0, n, seq)
    rec[HEADER_LEN:HEADER_LEN + n] = payload
    struct.pack_into("<I", rec, HEADER_LEN + n, _crc(memoryview(rec)[:HEADER_LEN + n]))
    return rec


def _sync(fh):
    fh.flush()
    # CPython's flush only reaches the OS cache; MicroPython's flush already syncs the filesystem
    fsync = getattr(os, "fsync", None)
    if fsync is not None and hasattr(fh, "fileno"):
        fsync(fh.fileno())


def _replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        # FAT refuses to rename over an existing file; open() completes this swap after a cut
        os.remove(dst)
        os.rename(src, dst)


class Backlog:
    def __init__(self, path, capacity=2880, max_record=MAX_RECORD):
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty str, got %r" % (path,))
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError("capacity must be a positive int, got %r" % (capacity,))
        if not isinstance(max_record, int) or not 1 <= max_record <= 0xFFFF:
            raise ValueError("max_record must be an int in 1 .. 65535, got %r" % (max_record,))
        self.path = path
        self.capacity = capacity
        self.max_record = max_record
        self._tmp_path = path + ".tmp"
        self._file = None
        self.acked_seq = 0
        self.last_seq = 0
        self.dropped = 0
        self.recovered = None
        self.writes = 0  # records and marks written (compaction rewrites not included)
        self.compactions = 0
        self._count = 0
        self._head = 0  # offset of the oldest pending data record; == _end when none
        self._head_seq = 0
        self._end = 0  # offset just after the last valid record
        self._open()

    # ------------------------------------------------------------------ public
    def __len__(self):
        return self._count

    def append(self, seq, payload):
        """Store one record durably. Returns once it is flushed to the filesystem."""
        data = _checked_record(seq, payload, self.last_seq, self.max_record)
        self._ensure_open()
        if self._count >= self.capacity:
            self._drop_oldest()
            self._maybe_compact()
        offset = self._end
        self._write_at_end(_build(KIND_DATA, seq, data))
        if self._count == 0:
            self._head = offset
            self._head_seq = seq
        self._count += 1
        self.last_seq = seq

    def oldest(self):
        """(seq, payload) of the oldest pending record, or None."""
        if self._count == 0:
            return None
        self._ensure_open()
        kind, seq, payload, _ = self._read_at(self._head)
        if kind != KIND_DATA or seq != self._head_seq:
            raise BacklogError("backlog %s: head record changed under us at offset %d" % (self.path, self._head))
        return seq, payload

    def pending(self):
        """Yield (seq, payload) of every pending record, oldest first. Do not modify while iterating."""
        offset = self._head
        end = self._end
        while offset < end:
            kind, seq, payload, size = self._read_at(offset)
            if kind == KIND_DATA and seq > self.acked_seq:
                yield seq, payload
            offset += size

    def ack(self, seq):
        """Settle every record up to seq. Returns how many pending records this settled."""
        if not _settles_something(self, seq):
            return 0
        self._ensure_open()
        settled = self._advance_head(seq)
        self.acked_seq = seq
        self._write_mark()
        self._maybe_compact()
        return settled

    def advance(self, seq):
        """Records up to seq were settled without being stored here: number on above seq.
        Writes one mark; nothing may be pending. Returns False when seq is not above last_seq."""
        _check_seq(seq)
        if self._count:
            raise ValueError("cannot advance to %d: %d records are pending" % (seq, self._count))
        if seq <= self.last_seq:
            return False
        self._ensure_open()
        before = self.acked_seq, self.last_seq
        self.acked_seq = seq
        self.last_seq = seq
        try:
            self._write_mark()
        except BacklogError:
            self.acked_seq, self.last_seq = before
            raise
        self._head = self._end
        self._maybe_compact()
        return True

    def discard_oldest(self):
        """Give up on the oldest pending record (counted in ``dropped``); if even its header
        cannot be read, every pending record is given up, so the caller always makes progress."""
        if self._count == 0:
            return 0
        self._ensure_open()
        try:
            self._drop_oldest()
            lost = 1
        except BacklogError:
            lost = self._count
            self.dropped += lost
            self.acked_seq = self.last_seq
            self._count = 0
            self._head = self._end
            self._head_seq = 0
            self._write_mark()
        self._maybe_compact()
        return lost

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def file_size(self):
        return self._end

    # ------------------------------------------------------------------ internals
    def _ensure_open(self):
        if self._file is None:
            raise BacklogError("backlog %s is closed" % self.path)

    def _open(self):
        path = self.path
        tmp = self._tmp_path
        if path_exists(tmp):
            if path_exists(path):
                # a compaction was cut before its swap: the old file is still whole
                os.remove(tmp)
            else:
                # cut between FAT's remove and rename: the copy is complete
                os.rename(tmp, path)
        if not path_exists(path):
            with open(path, "wb"):
                pass
        self._file = open(path, "r+b")
        size = self._file.seek(0, 2)
        cut = self._scan(size)
        if cut:
            self.recovered = cut
            self._compact()

    def _scan(self, size):
        """Replay the log; returns None, or a note of what was cut off at the end."""
        offset = 0
        floor = 0  # a data record must be above every earlier data seq and acknowledgement
        acked = 0
        dropped = 0
        last_seq = 0
        problem = None
        while offset < size:
            try:
                kind, seq, payload, rec_len = self._read_at(offset)
            except BacklogError as exc:
                problem = str(exc)
                break
            if kind == KIND_DATA:
                if seq <= floor:
                    problem = "data seq %d after %d" % (seq, floor)
                    break
                floor = seq
                if seq > last_seq:
                    last_seq = seq
            else:
                # a compacted file starts with a mark whose last_seq is above the records after it
                mark_dropped, mark_last = struct.unpack_from("<II", payload, 0)
                if seq < acked or seq > mark_last or mark_last < floor or mark_last < last_seq \
                        or mark_dropped < dropped:
                    problem = "mark out of order"
                    break
                acked = seq
                if seq > floor:
                    floor = seq
                dropped = mark_dropped
                last_seq = mark_last
            offset += rec_len
        self.acked_seq = acked
        self.dropped = dropped
        self.last_seq = last_seq
        self._end = offset
        self._count = 0
        self._head = offset
        self._head_seq = 0
        scan = 0
        while scan < offset:
            kind, seq, _, rec_len = self._read_at(scan)
            if kind == KIND_DATA and seq > acked:
                if self._count == 0:
                    self._head = scan
                    self._head_seq = seq
                self._count += 1
            scan += rec_len
        if problem is None:
            return None
        return "cut %d bytes at offset %d (%s)" % (size - offset, offset, problem)

    def _read_at(self, offset):
        """(kind, seq, payload, record length) of the record at offset; BacklogError if invalid."""
        fh = self._file
        fh.seek(offset)
        header = fh.read(HEADER_LEN)
        if header is None or len(header) < HEADER_LEN:
            raise BacklogError("short header at offset %d" % offset)
        kind, reserved, length, seq = struct.unpack_from("<BBHI", header, 0)
        if kind not in (KIND_DATA, KIND_MARK) or reserved != 0:
            raise BacklogError("bad record kind at offset %d" % offset)
        if kind == KIND_MARK and length != MARK_PAYLOAD_LEN:
            raise BacklogError("bad mark length at offset %d" % offset)
        if length > self.max_record:
            raise BacklogError("record length %d over the limit at offset %d" % (length, offset))
        rest = fh.read(length + CRC_LEN)
        if rest is None or len(rest) < length + CRC_LEN:
            raise BacklogError("short record at offset %d" % offset)
        body = bytearray(header)
        body.extend(memoryview(rest)[:length])
        stored = struct.unpack_from("<I", rest, length)[0]
        if _crc(body) != stored:
            raise BacklogError("CRC mismatch at offset %d" % offset)
        if seq == 0 and kind == KIND_DATA:
            raise BacklogError("data record with seq 0 at offset %d" % offset)
        return kind, seq, bytes(rest[:length]), HEADER_LEN + length + CRC_LEN

    def _write_at_end(self, rec):
        fh = self._file
        try:
            fh.seek(self._end)
            written = fh.write(rec)
            if written is not None and written != len(rec):
                raise OSError("short write (%d of %d bytes)" % (written, len(rec)))
            _sync(fh)
        except OSError as exc:
            # _end is unchanged, so the next write overwrites whatever part of rec got through
            raise BacklogError("backlog %s: write failed: %s" % (self.path, exc))
        self._end += len(rec)
        self.writes += 1

    def _write_mark(self):
        payload = struct.pack("<II", self.dropped, self.last_seq)
        self._write_at_end(_build(KIND_MARK, self.acked_seq, payload))

    def _advance_head(self, through_seq):
        """Move the head past every data record with seq <= through_seq; returns how many."""
        settled = 0
        offset = self._head
        end = self._end
        while offset < end and self._count > 0:
            kind, seq, _, rec_len = self._read_at(offset)
            if kind == KIND_DATA:
                if seq > through_seq:
                    break
                settled += 1
                self._count -= 1
            offset += rec_len
        # skip marks so the head always sits on a data record (or at the end)
        while offset < end:
            kind, seq, _, rec_len = self._read_at(offset)
            if kind == KIND_DATA:
                self._head = offset
                self._head_seq = seq
                return settled
            offset += rec_len
        self._head = end
        self._head_seq = 0
        return settled

    def _drop_oldest(self):
        seq = self._head_seq
        self._advance_head(seq)
        self.acked_seq = seq
        self.dropped += 1
        self._write_mark()

    def _maybe_compact(self):
        dead = self._head if self._count else self._end
        live = self._end - dead
        if dead >= COMPACT_MIN_BYTES and dead >= live:
            self._compact()

    def _compact(self):
        self.compactions += 1
        tmp_path = self._tmp_path
        try:
            out = open(tmp_path, "wb")
            try:
                mark = struct.pack("<II", self.dropped, self.last_seq)
                out.write(_build(KIND_MARK, self.acked_seq, mark))
                for seq, payload in self.pending():
                    out.write(_build(KIND_DATA, seq, payload))
                _sync(out)
            finally:
                out.close()
            self._file.close()
            self._file = None
            _replace(tmp_path, self.path)
            self._file = open(self.path, "r+b")
        except OSError as exc:
            if self._file is None:
                self._file = open(self.path, "r+b")
            raise BacklogError("backlog %s: compaction failed: %s" % (self.path, exc))
        size = self._file.seek(0, 2)
        problem = self._scan(size)
        if problem:
            raise BacklogError("backlog %s: compacted file does not read back: %s" % (self.path, problem))


class MemoryBacklog:
    """The Backlog interface in RAM: lost on reset, for boards without a writable filesystem."""

    def __init__(self, capacity=64, max_record=MAX_RECORD):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError("capacity must be a positive int, got %r" % (capacity,))
        self.capacity = capacity
        self.max_record = max_record
        self.path = None
        self.recovered = None
        self.acked_seq = 0
        self.last_seq = 0
        self.dropped = 0
        self.writes = 0  # always 0: the interface of Backlog
        self.compactions = 0
        self._records = []

    def __len__(self):
        return len(self._records)

    def append(self, seq, payload):
        data = _checked_record(seq, payload, self.last_seq, self.max_record)
        if len(self._records) >= self.capacity:
            self.acked_seq = self._records.pop(0)[0]
            self.dropped += 1
        self._records.append((seq, data))
        self.last_seq = seq

    def oldest(self):
        return self._records[0] if self._records else None

    def pending(self):
        for entry in list(self._records):
            yield entry

    def ack(self, seq):
        if not _settles_something(self, seq):
            return 0
        settled = 0
        while self._records and self._records[0][0] <= seq:
            self._records.pop(0)
            settled += 1
        self.acked_seq = seq
        return settled

    def advance(self, seq):
        _check_seq(seq)
        if self._records:
            raise ValueError("cannot advance to %d: %d records are pending" % (seq, len(self._records)))
        if seq <= self.last_seq:
            return False
        self.acked_seq = seq
        self.last_seq = seq
        return True

    def discard_oldest(self):
        if not self._records:
            return 0
        self.acked_seq = self._records.pop(0)[0]
        self.dropped += 1
        return 1

    def close(self):
        pass

    def file_size(self):
        return 0


class StagedBacklog:
    """A RAM stage in front of a durable backlog (see the module docstring for when it writes)."""

    def __init__(self, durable, clock, hold_ms=HOLD_MS, max_records=STAGE_RECORDS, max_bytes=STAGE_BYTES):
        if not isinstance(hold_ms, int) or not 0 <= hold_ms < (1 << 29):
            raise ValueError("hold_ms must be an int in 0 .. 2**29-1 (ticks_diff's range), got %r" % (hold_ms,))
        if not isinstance(max_records, int) or max_records < 1:
            raise ValueError("max_records must be a positive int, got %r" % (max_records,))
        if not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError("max_bytes must be a positive int, got %r" % (max_bytes,))
        self.durable = durable
        self.hold_ms = hold_ms
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._clock = clock
        self._stage = []  # [seq, payload bytes, ticks_ms when staged], oldest first
        self._stage_bytes = 0
        self._settled_seq = 0  # the highest staged seq acknowledged without being written
        self._stage_dropped = 0
        self.held = 0  # records acknowledged while staged: never written
        self.spilled = 0  # staged records written to the durable backlog

    # ------------------------------------------------------------------ the backlog interface
    def __len__(self):
        return len(self.durable) + len(self._stage)

    @property
    def last_seq(self):
        stage = self._stage
        if stage:
            return stage[-1][0]
        durable_last = self.durable.last_seq
        return durable_last if durable_last > self._settled_seq else self._settled_seq

    @property
    def acked_seq(self):
        durable = self.durable
        if len(durable):
            return durable.acked_seq
        settled = durable.last_seq if durable.last_seq > durable.acked_seq else durable.acked_seq
        return settled if settled > self._settled_seq else self._settled_seq

    @property
    def dropped(self):
        return self.durable.dropped + self._stage_dropped

    @property
    def staged(self):
        return len(self._stage)

    @property
    def path(self):
        return self.durable.path

    @property
    def recovered(self):
        return self.durable.recovered

    @property
    def capacity(self):
        return self.durable.capacity

    def append(self, seq, payload):
        """Store a record durably now (the broker is away): the stage goes first, to keep the order."""
        data = _checked_record(seq, payload, self.last_seq, self.durable.max_record)
        self.flush()
        self.durable.append(seq, data)

    def hold(self, seq, payload):
        """Keep a record in RAM; older staged records are written first if the stage is full."""
        data = _checked_record(seq, payload, self.last_seq, self.durable.max_record)
        stage = self._stage
        while stage and (len(stage) >= self.max_records or self._stage_bytes + len(data) > self.max_bytes):
            self._spill_oldest()
        stage.append([seq, data, self._clock.ticks_ms()])
        self._stage_bytes += len(data)

    def oldest(self):
        if len(self.durable):
            return self.durable.oldest()
        if self._stage:
            entry = self._stage[0]
            return entry[0], entry[1]
        return None

    def pending(self):
        for entry in self.durable.pending():
            yield entry
        for entry in list(self._stage):
            yield entry[0], entry[1]

    def ack(self, seq):
        """Settle every record up to seq; staged ones leave RAM without a write."""
        if not _settles_something(self, seq):
            return 0
        settled = 0
        durable = self.durable
        if len(durable):
            through = seq if seq < durable.last_seq else durable.last_seq
            if through > durable.acked_seq:
                settled = durable.ack(through)
        stage = self._stage
        while stage and stage[0][0] <= seq:
            self._stage_bytes -= len(stage.pop(0)[1])
            self.held += 1
            settled += 1
        if not len(durable) and seq > self._settled_seq:
            self._settled_seq = seq  # everything up to seq is settled, staged or not
        return settled

    def discard_oldest(self):
        if len(self.durable):
            return self.durable.discard_oldest()
        if not self._stage:
            return 0
        entry = self._stage.pop(0)
        self._stage_bytes -= len(entry[1])
        self._settled_seq = entry[0]
        self._stage_dropped += 1
        return 1

    def close(self):
        """Flush the stage, then close the durable backlog."""
        try:
            self.flush()
        finally:
            self.durable.close()

    def file_size(self):
        return self.durable.file_size()

    # ------------------------------------------------------------------ staging
    def spill_due(self):
        """Write the staged records that waited hold_ms or longer; returns how many."""
        stage = self._stage
        if not stage:
            return 0
        clock = self._clock
        now = clock.ticks_ms()
        written = 0
        while stage and clock.ticks_diff(now, stage[0][2]) >= self.hold_ms:
            self._spill_oldest()
            written += 1
        return written

    def flush(self):
        """Write every staged record, oldest first; then, if records were acknowledged from RAM
        since, one mark so the durable backlog numbers on above them after a restart. A failure
        raises BacklogError and leaves the unwritten records staged."""
        while self._stage:
            self._spill_oldest()
        durable = self.durable
        if self._settled_seq > durable.last_seq and not len(durable):
            durable.advance(self._settled_seq)

    def _spill_oldest(self):
        entry = self._stage[0]
        self.durable.append(entry[0], entry[1])  # raises first: the record stays staged
        self._stage.pop(0)
        self._stage_bytes -= len(entry[1])
        self.spilled += 1
