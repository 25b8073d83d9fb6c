"""Energy journal format version 2: layouts in every record, version-1 journals, layout changes.

Version-1 records are built by ``v1_record``/``write_v1_journal`` below, byte for byte what the
version-1 store wrote (header of 14 bytes, slots of the record length rounded up to 4, placed
in ring order), straight into the NOR test device's memory. The power-cut sweeps cut every flash
operation of an upgrade from version 1 and of a run of v2 -> v2 layout changes, each before,
after and torn (two seeds), and check that the journal then loads the last returned record or
the one in flight, in its own layout, and keeps working.
"""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import struct

import xrt
from gateway.store import (
    REASON_LAYOUT,
    REASON_MIGRATION,
    REASON_POWER_LOSS,
    RECORD_LIMIT,
    EnergyStore,
    JournalError,
    crc32,
    record_length,
)
from norflash import CUT_MODES, NorFlash, PowerCut

A = [(0x50, 2)]                    # 56-byte records: 9 in a 512-byte block
B = [(0x50, 2), (0x51, 1)]         # a module added: 80 bytes, 6 a block
C = [(0x50, 3), (0x51, 1)]         # a module with another channel count: 92 bytes, 5 a block
D = [(0x51, 1)]                    # a module removed: 44 bytes, 11 a block


def v1_record(seq, totals, backlog_seq=0, reason=0):
    """One version-1 record as the version-1 store wrote it."""
    body = struct.pack("<IBB", backlog_seq, reason, len(totals))
    for value in totals:
        body += struct.pack("<HHH", value & 0xFFFF, (value >> 16) & 0xFFFF, value >> 32)
    head = bytes([0x45, 0x4A, 1, 18 + 6 * len(totals)]) + struct.pack("<I", seq) + body
    return head + struct.pack("<I", crc32(head))


def write_v1_journal(dev, last_seq, totals_for, reason=1):
    """Records 1 .. last_seq in the version-1 ring order (a block is wiped when the ring enters
    it again); backlog_seq is the sequence number. Returns the slot size."""
    record = v1_record(1, totals_for(1))
    slot = (len(record) + 3) & ~3
    per_block = dev.block_size // slot
    capacity = per_block * dev.block_count
    for seq in range(1, last_seq + 1):
        index = (seq - 1) % capacity
        block = index // per_block
        base = block * dev.block_size
        if index % per_block == 0:
            for i in range(dev.block_size):
                dev.data[base + i] = 0xFF
        record = v1_record(seq, totals_for(seq), seq, reason)
        o = base + (index % per_block) * slot
        dev.data[o:o + len(record)] = record
    return slot


def _counters(layout):
    return 4 if layout is None else 2 * sum(n for _, n in layout)


def _totals(layout, k):
    # Monotonic in k for any layout, distinct for every k, past 2**30 (big ints on mpy32).
    return [(1 << 31) + k * 1009 + i * 3 for i in range(_counters(layout))]


def _resume(k, layout):
    return bytes((k * 7 + j) & 0xFF for j in range(10 * len(layout)))


# ------------------------------------------------------------------------- version 1


def test_v1_journal_loads_with_its_own_counters_and_no_layout():
    dev = NorFlash(512, 4)
    slot = write_v1_journal(dev, 60, lambda k: _totals(None, k))
    assert slot == 44
    store = EnergyStore(dev)
    state = store.load()
    assert state.seq == 60 and state.version == 1
    assert state.layout is None and state.resume is None
    assert state.totals == _totals(None, 60) and state.backlog_seq == 60 and state.reason == 1
    assert store.report.damaged == 0 and store.report.foreign == 0
    # 60 records in a 44-slot ring: wiping block 0 for 45 .. 55 and block 1 for 56 .. 60
    # took 1 .. 22.
    seqs = sorted(s.seq for _, _, s in store.records())
    assert seqs == list(range(23, 61))
    # Any counter count of version 1 is readable, whatever channels= the store was opened with.
    dev = NorFlash(512, 4)
    write_v1_journal(dev, 7, lambda k: [k, 2 * k, 3 * k, 4 * k, 5 * k, 6 * k])
    state = EnergyStore(dev, channels=2).load()
    assert state.totals == [7, 14, 21, 28, 35, 42] and state.layout is None


def test_v1_upgrade_writes_v2_in_the_block_ahead_and_keeps_the_v1_records():
    dev = NorFlash(512, 4)
    write_v1_journal(dev, 60, lambda k: _totals(None, k))  # newest: block 1, slot 4
    before = [bytes(dev.data[b * 512:(b + 1) * 512]) for b in range(4)]
    store = EnergyStore(dev)
    old = store.load()
    store.set_layout(B)
    # The upgrade needs block 2 (old v1 records 23 .. 33): prepare() erases it, never block 1.
    assert store.needs_prepare
    erased = []
    dev.on_erase = erased.append
    assert store.prepare() is True and erased == [2]
    assert not store.needs_prepare
    carried = old.totals[:2] + [0, 0] + old.totals[2:]
    assert store.commit(carried, backlog_seq=old.backlog_seq, reason=REASON_MIGRATION) == 61
    assert dev.data[2 * 512 + 2] == 2 and dev.data[2 * 512 + 3] == 80
    assert [bytes(dev.data[b * 512:(b + 1) * 512]) for b in (0, 1, 3)] == [
        before[0], before[1], before[3]]
    state = EnergyStore(dev).load()
    assert state.seq == 61 and state.layout == B and state.totals == carried
    assert state.reason == REASON_MIGRATION and state.resume == bytes(20)
    # The v1 records are still there until the ring wraps over them.
    versions = {}
    for block, _, s in EnergyStore(dev).records():
        versions[s.seq] = (s.version, block)
    assert versions[60] == (1, 1) and versions[61] == (2, 2)
    # The floor is the new layout's from now on.
    xrt.raises(ValueError, store.commit, [0] * 6)
    assert store.commit(carried, reason=REASON_POWER_LOSS) == 62
    assert dev.overwrites == 0


def test_v1_upgrade_without_prepare_erases_inline_and_a_fresh_floor_accepts_anything():
    dev = NorFlash(512, 4)
    write_v1_journal(dev, 60, lambda k: _totals(None, k))
    store = EnergyStore(dev, channels=2)  # same counter count as the v1 records, still a change
    store.load()
    assert store.commit([0, 0, 0, 0], reason=REASON_LAYOUT) == 61
    assert store.inline_erases == 1 and dev.erase_counts == [0, 0, 1, 0]
    state = EnergyStore(dev).load()
    assert state.layout == [(0, 2)] and state.totals == [0, 0, 0, 0]


# ------------------------------------------------------------------------- layouts


def test_set_layout_validates_and_says_what_fits():
    store = EnergyStore(NorFlash(512, 4))
    bad = (
        [], [(0x78, 1)], [(-1, 1)], [(0x50, 0)], [(0x50, 9)], [(0x50, 2), (0x50, 1)],
        [(0x50, "2")], [0x50], [(0x50, 2, 1)], "0x50:2", None, 5, [(0x50, 1.0)],
    )
    for layout in bad:
        err = xrt.raises(ValueError, store.set_layout, layout)
        assert str(err), layout
    assert "twice" in str(xrt.raises(ValueError, store.set_layout, [(0x50, 2), (0x50, 1)]))
    assert "1 .. 8" in str(xrt.raises(ValueError, store.set_layout, [(0x50, 9)]))
    # 3 modules of 8 channels: 20 + 36 + 288 = 344 bytes; with 3 modules 16 channels fit.
    message = str(xrt.raises(ValueError, store.set_layout, [(1, 8), (2, 8), (3, 8)]))
    assert "344" in message and "255" in message and "at most 16 channels" in message
    assert record_length(3, 48) == 344
    # The largest layouts that fit: modules + channels = 19.
    store = EnergyStore(NorFlash(4096, 4))
    store.set_layout([(1, 8), (2, 7), (3, 1)])
    assert store.record_len == record_length(3, 32) == 248 <= RECORD_LIMIT
    store.set_layout([(a, 1) for a in range(1, 10)])
    assert store.record_len == 236
    xrt.raises(ValueError, store.set_layout, [(a, 1) for a in range(1, 11)])
    # A block must hold two records of the layout.
    small = EnergyStore(NorFlash(256, 2))
    small.set_layout([(1, 3), (2, 2)])  # 20 + 24 + 60 = 104: two per block
    assert small.record_len == 104 and small.slots_per_block == 2
    message = str(xrt.raises(ValueError, small.set_layout, [(1, 8), (2, 7)]))  # 224 bytes
    assert "fewer than 2 records of 224 bytes" in message
    assert small.layout == [(1, 3), (2, 2)]  # a refused layout changes nothing


def test_set_layout_sets_the_geometry_and_commit_needs_one():
    dev = NorFlash(4096, 16)
    store = EnergyStore(dev)
    assert store.load() is None
    err = xrt.raises(JournalError, store.commit, [0, 0])
    assert "set_layout" in str(err)
    store.set_layout([(0x50, 2)])
    assert store.layout == [(0x50, 2)] and store.counters == 4 and store.channels == 2
    assert (store.record_len, store.slot_size, store.slots_per_block, store.capacity) == (
        56, 56, 73, 1168)
    store.set_layout([[0x50, 2], [0x51, 1]])  # lists are fine too
    assert store.layout == B and store.counters == 6 and store.modules == 2
    assert (store.record_len, store.slots_per_block) == (80, 51)
    xrt.raises(ValueError, store.commit, [0] * 4)
    assert store.commit([0] * 6) == 1
    assert EnergyStore(dev).load().layout == B


def test_same_layout_continues_the_block_and_keeps_floor_and_resume():
    dev = NorFlash(512, 4)
    store = EnergyStore(dev)
    store.load()
    store.set_layout(B)
    store.commit([5] * 6, resume=_resume(1, B))
    store.commit([6] * 6, resume=_resume(2, B))
    reopened = EnergyStore(dev)
    state = reopened.load()
    reopened.set_layout([(0x50, 2), (0x51, 1)])  # equal, not the same object
    xrt.raises(ValueError, reopened.commit, [6, 6, 6, 6, 6, 5])
    assert reopened.commit([6] * 6) == 3  # resume=None keeps the newest record's bytes
    state = EnergyStore(dev).load()
    assert state.resume == _resume(2, B)
    slots = [(block, slot) for block, slot, _ in EnergyStore(dev).records()]
    assert slots == [(0, 0), (0, 1), (0, 2)]
    # A memoryview is a bytes-like resume too.
    assert reopened.commit([7] * 6, resume=memoryview(_resume(9, B))) == 4
    assert EnergyStore(dev).load().resume == _resume(9, B)


def test_layout_changes_open_the_block_ahead_and_reset_the_floor():
    dev = NorFlash(512, 4)
    store = EnergyStore(dev)
    store.load()
    seq = 0
    for layout, block in ((A, 0), (B, 1), (C, 2), (D, 3), (A, 0)):
        store.set_layout(layout)
        for i in range(3):
            seq += 1
            assert store.commit(_totals(layout, seq), backlog_seq=seq,
                                resume=_resume(seq, layout)) == seq
            if i == 0:
                assert store.inline_erases == (1 if seq == 13 else 0), seq
            state = EnergyStore(dev).load()
            assert state.layout == layout and state.seq == seq
            assert state.totals == _totals(layout, seq) and state.resume == _resume(seq, layout)
            assert store.durable_totals() == _totals(layout, seq)
        # Each layout's records start a block of their own.
        assert dev.data[block * 512 + 3] == record_length(len(layout), _counters(layout))
    # Until the ring wraps, the last record of each earlier layout is still readable.
    last_of = {}
    for _, _, s in EnergyStore(dev).records():
        last_of[tuple(s.layout)] = s.seq
    assert last_of == {tuple(B): 6, tuple(C): 9, tuple(D): 12, tuple(A): 15}
    # A lower total is fine in a new layout (carrying totals is the gateway's business), not
    # in the same one.
    store.set_layout(D)
    assert store.commit([0, 0], resume=None) == 16
    assert EnergyStore(dev).load().resume == bytes(10)  # None after a change: zeros
    assert store.commit([3, 4]) == 17
    xrt.raises(ValueError, store.commit, [2, 4])
    xrt.raises(ValueError, store.commit, [3])
    assert dev.overwrites == 0


def test_back_and_forth_between_layouts_before_committing():
    dev = NorFlash(512, 4)
    store = EnergyStore(dev, channels=2)
    store.load()
    store.commit([9, 9, 9, 9], resume=bytes(range(10)))
    store.set_layout(B)
    store.set_layout([(0, 2)])  # back to the newest record's layout: nothing changes
    xrt.raises(ValueError, store.commit, [8, 9, 9, 9])
    assert store.commit([9, 9, 9, 10]) == 2
    assert [(b, s) for b, s, _ in store.records()] == [(0, 0), (0, 1)]
    assert EnergyStore(dev).load().resume == bytes(range(10))


def test_mixed_slot_sizes_over_several_ring_wraps_wear_evenly():
    dev = NorFlash(512, 4)
    store = EnergyStore(dev)
    store.load()
    schedule = (A, B, C, D, B)
    wraps = 0
    seq = 0
    erases_in_commit = [0]
    inside = [False]

    def count(block):
        if inside[0]:
            erases_in_commit[0] += 1

    dev.on_erase = count
    for round_ in range(12):
        layout = schedule[round_ % len(schedule)]
        store.set_layout(layout)
        # Uneven runs: some layouts fill several blocks, some end mid-block.
        for _ in range(5 + (round_ * 7) % 13):
            seq += 1
            inside[0] = True
            store.commit(_totals(layout, seq), backlog_seq=seq, resume=_resume(seq, layout))
            inside[0] = False
            store.prepare()
            if seq % 5 == 0:
                state = EnergyStore(dev).load()
                assert (state.seq, state.layout) == (seq, layout)
                assert state.totals == _totals(layout, seq)
        wraps = min(dev.erase_counts)
    assert wraps >= 4, dev.erase_counts
    assert erases_in_commit[0] == 0 and store.inline_erases == 0
    assert dev.max_erases() - dev.min_erases() <= 1, dev.erase_counts
    assert dev.overwrites == 0
    state = EnergyStore(dev).load()
    assert state.seq == seq and state.resume == _resume(seq, state.layout)


def test_a_damaged_slot_0_does_not_hide_the_block_behind_it():
    for damage in ("crc", "magic", "length", "torn"):
        dev = NorFlash(512, 4, seed=len(damage))
        store = EnergyStore(dev)
        store.load()
        store.set_layout(B)
        for k in range(1, 5):
            store.commit(_totals(B, k), backlog_seq=k)
        if damage == "crc":
            dev.flip_bit(30, 3)
        elif damage == "magic":
            dev.data[0] = 0x00
        elif damage == "length":
            dev.data[3] = 56  # another layout's length: the stride must not come from it
        else:
            for i in range(80):
                dev.data[i] &= dev.random(256)
        reopened = EnergyStore(dev)
        state = reopened.load()
        assert state.seq == 4 and state.totals == _totals(B, 4), damage
        # Slot 0 (record 1) is lost; the records behind it are found.
        assert [r.seq for _, _, r in reopened.records()] == [2, 3, 4], damage
        # The next record goes after the newest one, not over a used slot.
        reopened.set_layout(B)
        assert reopened.commit(_totals(B, 5)) == 5
        assert dev.overwrites == 0 and reopened.skipped_slots == 0, damage
        assert [(slot, r.seq) for _, slot, r in EnergyStore(dev).records()] == [
            (1, 2), (2, 3), (3, 4), (4, 5)], damage


def test_a_torn_slot_0_of_a_fresh_layout_block_is_erased_not_written_over():
    dev = NorFlash(512, 4, seed=4)
    store = EnergyStore(dev)
    store.load()
    store.set_layout(A)
    for k in range(1, 4):
        store.commit(_totals(A, k))
    store.set_layout(C)
    dev.arm_cut(dev.ops, "torn")
    xrt.raises(PowerCut, store.commit, _totals(C, 4))
    dev.revive()
    reopened = EnergyStore(dev)
    state = reopened.load()
    assert state.seq in (3, 4)
    if state.seq == 3:
        assert state.layout == A
        reopened.set_layout(C)
        assert reopened.needs_prepare  # the torn block is erased before the new layout's record
        assert reopened.commit(_totals(C, 4)) == 4
        assert reopened.inline_erases == 1
    assert EnergyStore(dev).load().layout == C and dev.overwrites == 0


# ------------------------------------------------------------------------- power cuts


class _Run:
    """One scripted run: records 1 .. first-1 exist before it, then commits first .. last."""

    def __init__(self, layout_at, first, last, prebuilt, prepares):
        self.layout_at = layout_at
        self.prepares = prepares   # prepares(k): call prepare() after commit k
        self.first = first
        self.last = last
        self.prebuilt = prebuilt   # image the run starts from
        self.returned = first - 1  # seq of the last commit that returned (first-1: the image)
        self.in_flight = first - 1
        self.generation = 0        # bumped at every recovery, written into backlog_seq


def _drive(store, run, first, last):
    for k in range(first, last + 1):
        layout = run.layout_at(k)
        store.set_layout(layout)
        run.in_flight = k
        seq = store.commit(_totals(layout, k), backlog_seq=k + (run.generation << 16),
                           reason=REASON_LAYOUT, resume=_resume(k, layout))
        assert seq == k, (seq, k)
        run.returned = k
        if run.prepares(k):
            store.prepare()


def _check(state, run, allowed):
    if state is None:
        assert 0 in allowed, "nothing loaded, expected one of %r" % (allowed,)
        return 0
    seq = state.seq
    assert seq in allowed, "loaded %d, expected one of %r" % (seq, allowed)
    layout = run.layout_at(seq)
    assert state.layout == layout, (seq, state.layout, layout)
    assert state.totals == _totals(layout, seq), (seq, state.totals)
    assert state.backlog_seq & 0xFFFF == seq
    if layout is not None:
        assert state.resume == _resume(seq, layout)
    return seq


def _guard(dev, run):
    """Fail if the block holding the newest returned record is erased (found independently)."""
    def check(block):
        if run.returned <= 0:
            return
        base = block * dev.block_size
        for o in range(base, base + dev.block_size - 12, 4):
            if dev.data[o] != 0x45 or dev.data[o + 1] != 0x4A:
                continue
            length = dev.data[o + 3]
            if length < 12 or o + length > base + dev.block_size:
                continue
            record = bytes(dev.data[o:o + length])
            seq = struct.unpack_from("<I", record, 4)[0]
            if seq == run.returned and crc32(record[:-4]) == struct.unpack_from(
                    "<I", record, length - 4)[0]:
                raise AssertionError("erasing block %d with the newest record %d" % (block, seq))
    return check


def _one_cut(run_factory, index, mode, seed):
    run = run_factory()
    dev = NorFlash(512, 4, seed=index * 7 + len(mode) + 1000 * seed)
    dev.data[:] = run.prebuilt
    dev.on_erase = _guard(dev, run)
    dev.arm_cut(index, mode)
    store = EnergyStore(dev)
    try:
        _check(store.load(), run, (run.returned,))
        _drive(store, run, run.first, run.last)
        return False
    except PowerCut:
        pass
    dev.revive()
    store = EnergyStore(dev)
    loaded = _check(store.load(), run, (run.returned, run.in_flight))
    # Keep working past the end of the script, across at least one more block boundary.
    run.returned = loaded
    run.generation += 1
    end = max(run.last, loaded) + 12
    _drive(store, run, loaded + 1, end)
    _check(EnergyStore(dev).load(), run, (end,))
    assert dev.overwrites == 0, "a program tried to set bits on NOR flash"
    return True


def _sweep(run_factory):
    # Learn how many flash operations the whole run takes, then cut each one.
    run = run_factory()
    dev = NorFlash(512, 4)
    dev.data[:] = run.prebuilt
    store = EnergyStore(dev)
    store.load()
    _drive(store, run, run.first, run.last)
    ops = dev.ops
    inline = store.inline_erases
    scenarios = 0
    for index in range(ops):
        for mode, seed in (("before", 0), ("after", 0), ("torn", 0), ("torn", 1), ("torn", 2)):
            assert _one_cut(run_factory, index, mode, seed), (index, mode)
            scenarios += 1
    assert not _one_cut(run_factory, ops, "before", 0)
    return ops, scenarios, inline


def _v1_image():
    dev = NorFlash(512, 4)
    write_v1_journal(dev, 60, lambda k: _totals(None, k))
    return bytes(dev.data)


def test_cut_at_every_operation_of_an_upgrade_from_version_1():
    image = _v1_image()

    def layout_at(k):
        return None if k <= 60 else B

    def factory():
        # v1 records 1 .. 60 (newest mid-block 1, old records ahead in block 2), then 20 v2
        # commits: the upgrade erases block 2 inline, then the ring wraps over the v1 blocks.
        # Odd commits prepare, so even ones may meet unprepared blocks and erase inline.
        return _Run(layout_at, 61, 80, image, lambda k: k % 2)

    ops, scenarios, inline = _sweep(factory)
    # 20 programs, the upgrade's own erase of block 2 (nothing prepared it), 4 by prepare().
    assert (ops, inline) == (25, 1), (ops, inline)
    assert scenarios == 5 * ops


def test_cut_at_every_operation_of_v2_layout_changes():
    def layout_at(k):
        # A module added, a module's channel count changed, a module removed, and back, with
        # the ring wrapping into blocks of other slot sizes.
        if k <= 5:
            return A
        if k <= 10:
            return B
        if k <= 15:
            return C
        if k <= 24:
            return D
        return A

    blank = bytes(b"\xff" * 2048)

    def factory():
        # prepare() until the 14th commit only: the return to A at 25 then erases block 0
        # itself, inside the layout change, and commit 34 erases block 1.
        return _Run(layout_at, 1, 34, blank, lambda k: k < 15)

    ops, scenarios, inline = _sweep(factory)
    assert (ops, inline) == (36, 2), (ops, inline)
    assert scenarios == 5 * ops


def test_repeated_cuts_while_the_layout_keeps_changing():
    # Random cuts, often inside the first commits after a recovery, and a layout drawn anew
    # at every boot: sometimes the newest record's own, sometimes another one.
    dev = NorFlash(512, 4, seed=77)
    layouts = (A, B, C, D)
    written = {}  # seq -> (layout, totals, resume) of the last attempt at that seq
    returned = 0
    in_flight = 0
    cuts = 0
    changes = 0
    for boot in range(120):
        dev.arm_cut(dev.ops + dev.random(10), CUT_MODES[dev.random(3)])
        store = EnergyStore(dev)
        try:
            state = store.load()
            k = 0 if state is None else state.seq
            assert k in (returned, in_flight), (boot, k, returned, in_flight)
            if state is not None:
                assert (state.layout, state.totals, state.resume) == written[k], (boot, k)
            returned = in_flight = k
            layout = layouts[dev.random(4)]
            if state is not None and layout != state.layout:
                changes += 1
            store.set_layout(layout)
            for _ in range(1 + dev.random(8)):
                k += 1
                resume = _resume(k + boot, layout)
                written[k] = (layout, _totals(layout, k), resume)
                in_flight = k
                store.commit(_totals(layout, k), backlog_seq=k, resume=resume)
                returned = k
                if dev.random(2):
                    store.prepare()
        except PowerCut:
            cuts += 1
            dev.revive()
    assert cuts >= 50 and changes >= 40, (cuts, changes)
    state = EnergyStore(dev).load()
    assert state.seq in (returned, in_flight) and state.seq > 100
    assert dev.overwrites == 0
