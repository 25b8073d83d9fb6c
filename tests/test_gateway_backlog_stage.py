"""The RAM stage in front of the durable backlog (gateway.backlog.StagedBacklog): what reaches the
flash and when, counted by the backlog's own write counter and, under MicroPython, by a littlefs
block device that counts its programs and erases."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import test_gateway_backlog as backlog_tests
import xrt
from gateway.backlog import (HOLD_MS, MARK_LEN, STAGE_BYTES, STAGE_RECORDS, Backlog, MemoryBacklog,
                             StagedBacklog)


class StepClock:
    """ticks_ms that moves only when told, wrapping at 2**30 like the boards' ticks."""

    def __init__(self, start=(1 << 30) - 2000):
        self.now = start  # starts just before the wrap, so every hold crosses it

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        d = (a - b) & 0x3FFFFFFF
        return d - 0x40000000 if d >= 0x20000000 else d

    def advance(self, ms):
        self.now = (self.now + ms) & 0x3FFFFFFF


def fresh_path(name):
    return backlog_tests.fresh_path("stage-" + name)


def payload(seq, size=300):
    return backlog_tests.payload(seq, size)


def seqs(backlog):
    return [seq for seq, _ in backlog.pending()]


def publish_all(staged):
    """What the link does when the broker acknowledges at once: oldest first, ack each."""
    sent = []
    while len(staged):
        seq, data = staged.oldest()
        assert data == payload(seq)
        staged.ack(seq)
        sent.append(seq)
    return sent


def test_records_acknowledged_within_the_hold_time_are_never_written():
    path = fresh_path("online")
    durable = Backlog(path)
    clock = StepClock()
    staged = StagedBacklog(durable, clock)
    for seq in range(1, 501):
        staged.hold(seq, payload(seq))
        clock.advance(80)  # a period record's publish-to-PUBACK time on loopback
        assert staged.spill_due() == 0
        assert publish_all(staged) == [seq]
        clock.advance(60000 - 80)
        assert staged.spill_due() == 0
    assert durable.writes == 0 and durable.compactions == 0 and durable.file_size() == 0
    assert staged.held == 500 and staged.spilled == 0
    assert staged.last_seq == 500 and staged.acked_seq == 500
    # an orderly stop: one mark, so the numbering survives a restart
    staged.flush()
    assert durable.writes == 1 and durable.file_size() == MARK_LEN
    staged.flush()
    assert durable.writes == 1  # nothing new: nothing written
    durable.close()
    again = Backlog(path)
    assert again.last_seq == 500 and len(again) == 0 and again.recovered is None
    again.close()


def test_a_record_not_acknowledged_within_the_hold_time_is_written_then_its_ack_marked():
    durable = Backlog(fresh_path("late"))
    clock = StepClock()
    staged = StagedBacklog(durable, clock)
    staged.hold(1, payload(1))
    clock.advance(HOLD_MS - 1)
    staged.hold(2, payload(2))
    assert staged.spill_due() == 0 and durable.writes == 0
    clock.advance(1)
    assert staged.spill_due() == 1  # record 1 waited HOLD_MS; record 2 did not
    assert seqs(durable) == [1] and staged.staged == 1 and durable.writes == 1
    assert seqs(staged) == [1, 2] and staged.oldest() == (1, payload(1))
    assert staged.ack(1) == 1
    assert durable.writes == 2  # the acknowledgement of a written record is marked
    assert staged.ack(2) == 1
    assert durable.writes == 2  # record 2 was never written: no mark for it
    assert len(staged) == 0 and staged.acked_seq == 2
    clock.advance(HOLD_MS)
    staged.hold(3, payload(3))
    clock.advance(HOLD_MS)
    assert staged.spill_due() == 1
    # the durable backlog numbers on from the written record 3 (seq 2 is below it)
    assert seqs(durable) == [3] and durable.last_seq == 3
    durable.close()


def test_the_stage_is_bounded_by_records_and_bytes_and_spills_the_oldest():
    durable = Backlog(fresh_path("bounds"))
    clock = StepClock()
    staged = StagedBacklog(durable, clock)
    for seq in range(1, STAGE_RECORDS + 1):
        staged.hold(seq, payload(seq, 100))
    assert staged.staged == STAGE_RECORDS and durable.writes == 0
    staged.hold(STAGE_RECORDS + 1, payload(STAGE_RECORDS + 1, 100))
    assert seqs(durable) == [1] and staged.staged == STAGE_RECORDS
    assert seqs(staged) == list(range(1, STAGE_RECORDS + 2))
    durable.close()
    # bytes: records of 3000 bytes, so the byte bound bites before the count
    durable = Backlog(fresh_path("bytes"))
    staged = StagedBacklog(durable, clock)
    per = STAGE_BYTES // 3000
    for seq in range(1, per + 2):
        staged.hold(seq, payload(seq, 3000))
    assert seqs(durable) == [1] and staged.staged == per
    assert seqs(staged) == list(range(1, per + 2))
    durable.close()


def test_offline_records_go_to_flash_behind_the_stage_and_come_back_in_order():
    path = fresh_path("offline")
    durable = Backlog(path)
    clock = StepClock()
    staged = StagedBacklog(durable, clock)
    for seq in (1, 2, 3):
        staged.hold(seq, payload(seq))
    staged.ack(1)  # acknowledged from RAM
    # the link went down: the stage first, then the new record, in order
    staged.append(4, payload(4))
    assert seqs(durable) == [2, 3, 4] and staged.staged == 0
    for seq in (5, 6):
        staged.append(seq, payload(seq))
    staged.hold(7, payload(7))  # back online: staged behind the durable records
    assert seqs(staged) == [2, 3, 4, 5, 6, 7]
    written = durable.writes
    assert publish_all(staged) == [2, 3, 4, 5, 6, 7]
    # one mark per durable record acknowledged, none for record 7
    assert durable.writes == written + 5
    durable.close()
    again = Backlog(path)
    assert len(again) == 0 and again.last_seq == 6
    again.close()


def test_flush_writes_every_staged_record_and_a_reopened_backlog_has_them():
    path = fresh_path("flush")
    durable = Backlog(path)
    staged = StagedBacklog(durable, StepClock())
    for seq in range(1, 6):
        staged.hold(seq, payload(seq))
    staged.ack(2)
    staged.flush()
    assert staged.staged == 0 and seqs(durable) == [3, 4, 5]
    durable.close()
    again = Backlog(path)
    assert seqs(again) == [3, 4, 5] and again.last_seq == 5
    again.close()


def test_a_failing_flash_leaves_the_records_staged_and_raises():
    durable = Backlog(fresh_path("fail"))
    staged = StagedBacklog(durable, StepClock())
    staged.hold(1, payload(1))
    staged.hold(2, payload(2))
    durable.close()  # every write now fails with BacklogError
    from gateway.backlog import BacklogError

    assert "closed" in str(xrt.raises(BacklogError, staged.flush))
    assert staged.staged == 2 and seqs(staged) == [1, 2]
    assert staged.ack(2) == 2  # still delivered from RAM


def test_memory_backlog_behind_a_stage_and_bad_arguments():
    staged = StagedBacklog(MemoryBacklog(capacity=4), StepClock())
    for seq in range(1, 4):
        staged.hold(seq, payload(seq))
    staged.append(4, payload(4))
    assert seqs(staged) == [1, 2, 3, 4] and staged.staged == 0
    assert xrt.raises(ValueError, staged.hold, 4, b"x")
    assert xrt.raises(ValueError, staged.ack, 5)
    assert "hold_ms" in str(xrt.raises(ValueError, StagedBacklog, MemoryBacklog(), StepClock(), -1))
    assert "max_records" in str(xrt.raises(ValueError, StagedBacklog, MemoryBacklog(), StepClock(), 10, 0))
    memory = MemoryBacklog()
    memory.append(1, b"x")
    assert "pending" in str(xrt.raises(ValueError, memory.advance, 9))


class CountingRamDevice:
    """A RAM block device that counts programs and erases per block (littlefs's extended protocol).
    Byte loops: littlefs may call it from a finalizer while the heap is locked."""

    def __init__(self, block_size=4096, blocks=32):
        self.block_size = block_size
        self.blocks = blocks
        self.data = bytearray(block_size * blocks)
        self.erases = [0] * blocks
        self.programs = 0

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
        self.programs += 1

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return self.block_size
        if op == 6:
            self.erases[arg] += 1
        return 0


def test_on_littlefs_online_periods_cost_no_program_and_no_erase():
    if not xrt.is_micropython():
        raise xrt.Skip("VfsLfs2 exists only on MicroPython")
    import vfs

    device = CountingRamDevice()
    vfs.VfsLfs2.mkfs(device)
    mount = "/stage_lfs"
    vfs.mount(vfs.VfsLfs2(device), mount)
    try:
        durable = Backlog(mount + "/backlog.bin")
        clock = StepClock()
        staged = StagedBacklog(durable, clock)
        # the backlog as it was: every record appended, then its mark
        erases, programs = sum(device.erases), device.programs
        for seq in range(1, 41):
            durable.append(seq, payload(seq))
            durable.ack(seq)
        before_erases = sum(device.erases) - erases
        assert before_erases >= 40, before_erases  # about two erases a period (BENCHMARKS.md)
        # staged: 200 periods acknowledged within the hold time
        erases, programs = sum(device.erases), device.programs
        for seq in range(41, 241):
            staged.hold(seq, payload(seq))
            clock.advance(100)
            staged.spill_due()
            assert publish_all(staged) == [seq]
            clock.advance(59900)
            staged.spill_due()
        assert sum(device.erases) == erases and device.programs == programs
        # an outage: the records reach littlefs, and come back in order
        for seq in range(241, 251):
            staged.append(seq, payload(seq))
        assert device.programs > programs
        durable.close()
        again = Backlog(mount + "/backlog.bin")
        assert seqs(again) == list(range(241, 251))
        again.close()
    finally:
        vfs.umount(mount)
