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
``dropped`` (persisted in the marks).

``MemoryBacklog`` has the same interface in RAM, for a gateway without a writable filesystem.
"""

import os
import struct

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


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


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
        if _exists(tmp):
            if _exists(path):
                # a compaction was cut before its swap: the old file is still whole
                os.remove(tmp)
            else:
                # cut between FAT's remove and rename: the copy is complete
                os.rename(tmp, path)
        if not _exists(path):
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
