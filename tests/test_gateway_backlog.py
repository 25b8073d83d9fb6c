"""Durable period-record backlog: order, acknowledgement, reopen, power cuts, capacity, compaction,
and the board filesystems (littlefs, FAT) under MicroPython."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import os

import xrt
from gateway.backlog import (COMPACT_MIN_BYTES, CRC_LEN, HEADER_LEN, MARK_LEN, Backlog, BacklogError,
                             MemoryBacklog)

_n = [0]


def fresh_path(name):
    _n[0] += 1
    path = xrt.tmp_path("%s-%d.bin" % (name, _n[0]))
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    return path


def payload(seq, size=40):
    text = '{"seq":%d,"pad":"' % seq
    return (text + "x" * max(0, size - len(text) - 2) + '"}').encode()


def read_bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


def write_bytes(path, data):
    with open(path, "wb") as fh:
        fh.write(data)


def seqs(backlog):
    return [seq for seq, _ in backlog.pending()]


def test_records_come_back_in_order_and_ack_is_cumulative():
    backlog = Backlog(fresh_path("order"))
    for seq in (3, 4, 7, 9):
        backlog.append(seq, payload(seq))
    assert len(backlog) == 4
    assert backlog.oldest() == (3, payload(3))
    assert seqs(backlog) == [3, 4, 7, 9]
    assert [p for _, p in backlog.pending()] == [payload(s) for s in (3, 4, 7, 9)]
    assert backlog.ack(3) == 1
    assert backlog.oldest() == (4, payload(4))
    assert backlog.ack(8) == 2  # settles 4 and 7; 8 itself never existed
    assert seqs(backlog) == [9]
    assert backlog.ack(5) == 0  # already settled
    assert backlog.acked_seq == 8
    assert backlog.ack(9) == 1
    assert len(backlog) == 0 and backlog.oldest() is None and seqs(backlog) == []
    backlog.append(10, "a str payload")
    assert backlog.oldest() == (10, b"a str payload")
    backlog.close()


def test_reopen_restores_pending_records_counters_and_numbering():
    path = fresh_path("reopen")
    backlog = Backlog(path, capacity=4)
    for seq in range(1, 7):
        backlog.append(seq, payload(seq))  # 1 and 2 are dropped: capacity 4
    backlog.ack(4)
    backlog.close()
    again = Backlog(path, capacity=4)
    assert again.recovered is None
    assert seqs(again) == [5, 6]
    assert again.acked_seq == 4 and again.last_seq == 6 and again.dropped == 2
    assert xrt.raises(ValueError, again.append, 6, b"x")
    again.append(7, payload(7))
    assert seqs(again) == [5, 6, 7]
    again.close()


def test_every_torn_last_record_is_cut_and_nothing_before_it_is_lost():
    path = fresh_path("torn")
    backlog = Backlog(path)
    for seq in (1, 2, 3):
        backlog.append(seq, payload(seq))
    backlog.ack(1)
    backlog.close()
    whole = read_bytes(path)
    # the last record written: a data record appended after the mark
    backlog = Backlog(path)
    backlog.append(4, payload(4))
    backlog.close()
    with_data = read_bytes(path)
    backlog = Backlog(path)
    backlog.ack(2)
    backlog.close()
    with_mark = read_bytes(path)
    cases = 0
    for before, after, expect in ((whole, with_data, [2, 3]), (with_data, with_mark, [2, 3, 4])):
        for cut in range(len(before) + 1, len(after)):
            write_bytes(path, after[:cut])
            torn = Backlog(path)
            assert seqs(torn) == expect, (cut, seqs(torn))
            assert torn.recovered is not None and ("offset %d" % len(before)) in torn.recovered
            torn.append(10, payload(10))
            torn.close()
            clean = Backlog(path)
            assert clean.recovered is None
            assert seqs(clean) == expect + [10]
            clean.close()
            cases += 1
    assert cases == (len(with_data) - len(whole) - 1) + (len(with_mark) - len(with_data) - 1)


def test_garbage_after_the_log_and_a_flipped_bit_inside_it_never_crash():
    path = fresh_path("garbage")
    backlog = Backlog(path)
    for seq in range(1, 6):
        backlog.append(seq, payload(seq))
    backlog.close()
    good = read_bytes(path)
    write_bytes(path, good + b"\x44\x00\xff\x0f garbage that is not a record")
    again = Backlog(path)
    assert seqs(again) == [1, 2, 3, 4, 5]
    assert again.recovered is not None
    again.close()
    assert read_bytes(path)[MARK_LEN:] == good  # rewritten: a mark, then the same records
    # a flipped bit in the third record: the scan stops there (records 3.. are given up)
    data = bytearray(read_bytes(path))
    record_len = HEADER_LEN + len(payload(1)) + CRC_LEN
    data[MARK_LEN + 2 * record_len + HEADER_LEN + 5] ^= 0x10
    write_bytes(path, data)
    flipped = Backlog(path)
    assert seqs(flipped) == [1, 2]
    assert "CRC" in flipped.recovered
    flipped.append(6, payload(6))
    assert seqs(flipped) == [1, 2, 6]
    flipped.close()


def test_an_old_record_left_behind_a_shorter_rewrite_is_not_taken_for_a_new_one():
    # after a failed write, the next record is written at the last good end; if it is shorter
    # than what was there, an older whole record can follow it in the file
    path = fresh_path("stale")
    backlog = Backlog(path)
    for seq in range(1, 4):
        backlog.append(seq, payload(seq, 80))
    backlog.close()
    old = read_bytes(path)
    record_len = HEADER_LEN + 80 + CRC_LEN
    other = fresh_path("stale-new")
    short = Backlog(other)
    short.append(5, b"short")
    short.close()
    new_record = read_bytes(other)
    write_bytes(path, old[:record_len] + new_record + old[2 * record_len:])
    again = Backlog(path)
    assert seqs(again) == [1, 5]
    assert "data seq 3 after 5" in again.recovered
    again.close()


def test_full_backlog_drops_the_oldest_and_counts_it():
    path = fresh_path("full")
    backlog = Backlog(path, capacity=5)
    for seq in range(1, 9):
        backlog.append(seq, payload(seq))
    assert len(backlog) == 5 and backlog.dropped == 3
    assert seqs(backlog) == [4, 5, 6, 7, 8]
    backlog.close()
    again = Backlog(path, capacity=5)
    assert again.dropped == 3 and seqs(again) == [4, 5, 6, 7, 8]
    again.close()


def test_bad_calls_raise_clear_errors():
    backlog = Backlog(fresh_path("bad"), max_record=64)
    backlog.append(5, b"x")
    assert "not above" in str(xrt.raises(ValueError, backlog.append, 5, b"y"))
    assert "not above" in str(xrt.raises(ValueError, backlog.append, 4, b"y"))
    assert "max_record" in str(xrt.raises(ValueError, backlog.append, 6, b"z" * 65))
    assert "seq" in str(xrt.raises(ValueError, backlog.append, 0, b"y"))
    assert "seq" in str(xrt.raises(ValueError, backlog.append, 1 << 32, b"y"))
    assert "seq" in str(xrt.raises(ValueError, backlog.append, "7", b"y"))
    assert "bytes or str" in str(xrt.raises(TypeError, backlog.append, 7, 7))
    assert "last record" in str(xrt.raises(ValueError, backlog.ack, 6))
    backlog.close()
    assert "closed" in str(xrt.raises(BacklogError, backlog.append, 8, b"y"))
    assert "capacity" in str(xrt.raises(ValueError, Backlog, fresh_path("cap"), 0))
    assert "path" in str(xrt.raises(ValueError, Backlog, ""))


def test_file_stays_bounded_when_online_and_during_a_long_catch_up():
    path = fresh_path("bounded")
    backlog = Backlog(path)
    record_len = HEADER_LEN + 100 + CRC_LEN
    largest = 0
    # online: every record is published and acknowledged right away
    for seq in range(1, 400):
        backlog.append(seq, payload(seq, 100))
        backlog.ack(seq)
        largest = max(largest, backlog.file_size())
    assert largest < COMPACT_MIN_BYTES + record_len + MARK_LEN, largest
    # an outage of 300 periods, then the catch-up one record at a time
    for seq in range(400, 700):
        backlog.append(seq, payload(seq, 100))
    largest = 0
    for seq in range(400, 700):
        assert backlog.oldest()[0] == seq
        backlog.ack(seq)
        live = len(backlog) * record_len
        assert backlog.file_size() <= 2 * live + COMPACT_MIN_BYTES + 2 * record_len + (700 - seq) * MARK_LEN
        largest = max(largest, backlog.file_size())
    assert len(backlog) == 0
    assert backlog.file_size() < COMPACT_MIN_BYTES + MARK_LEN
    backlog.close()
    again = Backlog(path)
    assert len(again) == 0 and again.last_seq == 699 and again.recovered is None
    again.close()


def test_an_interrupted_compaction_is_finished_or_discarded_on_open():
    path = fresh_path("swap")
    backlog = Backlog(path)
    for seq in range(1, 4):
        backlog.append(seq, payload(seq))
    backlog.close()
    original = read_bytes(path)
    # cut while the copy was being written: the old file is whole, the partial copy goes
    write_bytes(path + ".tmp", b"\x4d\x00\x08")
    again = Backlog(path)
    assert seqs(again) == [1, 2, 3]
    again.close()
    assert read_bytes(path) == original
    assert xrt.raises(OSError, os.stat, path + ".tmp")
    # cut between FAT's remove and rename: only the complete copy exists
    os.rename(path, path + ".tmp")
    again = Backlog(path)
    assert seqs(again) == [1, 2, 3]
    again.close()
    assert xrt.raises(OSError, os.stat, path + ".tmp")


def test_discard_oldest_gives_up_one_record_or_everything_unreadable():
    path = fresh_path("discard")
    backlog = Backlog(path)
    for seq in range(1, 5):
        backlog.append(seq, payload(seq))
    assert backlog.discard_oldest() == 1
    assert seqs(backlog) == [2, 3, 4] and backlog.dropped == 1
    backlog.close()
    data = bytearray(read_bytes(path))
    # corrupt the header of record 2 behind the backlog's back, with the file open
    again = Backlog(path)
    head = again._head
    data[head] = 0x00
    write_bytes(path, data)
    assert xrt.raises(BacklogError, again.oldest)
    assert again.discard_oldest() == 3
    assert len(again) == 0 and again.dropped == 4 and again.acked_seq == 4
    again.close()


def test_memory_backlog_behaves_like_the_file_one():
    path = fresh_path("parity")
    on_file = Backlog(path, capacity=6)
    in_ram = MemoryBacklog(capacity=6)
    ops = [("a", s) for s in range(1, 10)] + [("k", 5), ("a", 12), ("k", 4), ("d", 0), ("a", 13), ("k", 12)]
    for op, seq in ops:
        for b in (on_file, in_ram):
            if op == "a":
                b.append(seq, payload(seq))
            elif op == "k":
                b.ack(seq)
            else:
                b.discard_oldest()
        assert seqs(on_file) == seqs(in_ram), (op, seq)
        assert (on_file.dropped, on_file.acked_seq, on_file.last_seq) == (in_ram.dropped, in_ram.acked_seq,
                                                                          in_ram.last_seq)
    assert seqs(in_ram) == [13]
    on_file.close()


class RamBlockDevice:
    """A RAM disk with the extended block protocol (littlefs) and the simple one (FAT)."""

    def __init__(self, block_size, blocks):
        self.block_size = block_size
        self.blocks = blocks
        self.data = bytearray(block_size * blocks)

    # byte loops, because littlefs may call these from a finalizer while the heap is locked,
    # and slicing allocates
    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        data = self.data
        for i in range(len(buf)):
            buf[i] = data[start + i]

    def writeblocks(self, block, buf, offset=None):
        start = block * self.block_size + (offset or 0)
        data = self.data
        for i in range(len(buf)):
            data[start + i] = buf[i]

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return self.block_size
        return 0


def _on_board_filesystem(kind):
    if not xrt.is_micropython():
        raise xrt.Skip("board filesystems exist only under MicroPython")
    import vfs

    if kind == "lfs":
        device, cls = RamBlockDevice(4096, 64), vfs.VfsLfs2
    else:
        device, cls = RamBlockDevice(512, 512), vfs.VfsFat
    cls.mkfs(device)
    mount = "/bl_" + kind
    vfs.mount(cls(device), mount)
    try:
        path = mount + "/backlog.bin"
        backlog = Backlog(path, capacity=50)
        for seq in range(1, 121):
            backlog.append(seq, payload(seq, 120))
            if seq <= 60:
                backlog.ack(seq)  # online: compactions rename over the live file
        assert len(backlog) == 50 and backlog.dropped == 10
        backlog.close()
        again = Backlog(path, capacity=50)
        assert seqs(again) == list(range(71, 121))
        for seq in range(71, 121):
            again.ack(seq)
        assert len(again) == 0 and again.file_size() < COMPACT_MIN_BYTES + MARK_LEN
        again.close()
        names = [entry[0] for entry in vfs.ilistdir(mount)] if hasattr(vfs, "ilistdir") else os.listdir(mount)
        assert "backlog.bin.tmp" not in names
    finally:
        vfs.umount(mount)


def test_works_on_littlefs():
    _on_board_filesystem("lfs")


def test_works_on_fat():
    _on_board_filesystem("fat")
