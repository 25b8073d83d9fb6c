"""Energy journal: records, ring, wear, format detection, corruption, allocation, file device.

Layouts, version-1 records and power cuts around layout changes: test_store_layout.py."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import struct

import xrt
from gateway.flashdev import FileBlockDevice
from gateway.store import (
    COUNTER_LIMIT,
    REASON_GROWTH,
    REASON_SHUTDOWN,
    EnergyStore,
    JournalFormatError,
    crc32,
)
from norflash import NorFlash, PowerCut


def _fresh(block_size=1024, blocks=4, channels=2, **kwargs):
    dev = NorFlash(block_size, blocks, **kwargs)
    store = EnergyStore(dev, channels=channels)
    assert store.load() is None
    return dev, store


def _fill(store, first, last, prepare=True):
    for k in range(first, last + 1):
        store.commit(_totals(k), backlog_seq=k, reason=REASON_GROWTH)
        if prepare:
            store.prepare()


def _totals(k):
    return [k * 1000, k * 3, (1 << 30) - 5 + k, (1 << 40) + k * 77]


def _envelope(version, seq, payload):
    head = bytes([0x45, 0x4A, version, 8 + len(payload) + 4]) + struct.pack("<I", seq) + payload
    return head + struct.pack("<I", crc32(head))


class ReplacingRam:
    """A RAM block device that stores bytes as given (no NOR AND), like the MicroPython docs'."""

    def __init__(self, block_size, block_count):
        self.block_size = block_size
        self.block_count = block_count
        self.data = bytearray(b"\xff" * (block_size * block_count))

    def readblocks(self, n, buf, off=0):
        a = n * self.block_size + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=0):
        a = n * self.block_size + off
        self.data[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.block_count
        if op == 5:
            return self.block_size
        if op == 6:
            a = arg * self.block_size
            self.data[a:a + self.block_size] = b"\xff" * self.block_size
            return 0
        return 0


def test_crc32_is_the_standard_one():
    import binascii

    assert crc32(b"123456789") == 0xCBF43926
    assert crc32(b"") == 0
    data = bytes((i * 37 + 11) & 0xFF for i in range(300))
    assert crc32(data) == binascii.crc32(data) & 0xFFFFFFFF


def test_blank_device_loads_none_then_round_trips():
    dev, store = _fresh()
    assert store.report.blank == store.capacity
    assert store.seq == 0
    seq = store.commit([1, 2, 3, 4], backlog_seq=9, reason=REASON_SHUTDOWN)
    assert seq == 1
    state = EnergyStore(dev, channels=2).load()
    assert state.seq == 1
    assert state.totals == [1, 2, 3, 4]
    assert state.imported(1) == 3 and state.exported(1) == 4
    assert state.backlog_seq == 9
    assert state.reason == REASON_SHUTDOWN


def test_totals_up_to_48_bits_round_trip_on_every_runtime():
    dev, store = _fresh()
    big = [(1 << 30) - 1, (1 << 30) + 1, (1 << 32) + 3, COUNTER_LIMIT - 1]
    store.commit(big, backlog_seq=(1 << 32) - 1)
    state = EnergyStore(dev, channels=2).load()
    assert state.totals == big
    assert state.backlog_seq == (1 << 32) - 1


def test_invalid_commits_are_refused_and_write_nothing():
    dev, store = _fresh()
    store.commit([10, 10, 10, 10])
    before = (dev.ops, dev.snapshot())
    bad = (
        ([1, 2, 3], {}),
        ([10, 10, 10, -1], {}),
        ([10, 10, 10, COUNTER_LIMIT], {}),
        ([10, 10, 10.5, 10], {}),
        ([10, 9, 10, 10], {}),
        ([10, 10, 10, 10], {"backlog_seq": -1}),
        ([10, 10, 10, 10], {"backlog_seq": 1 << 32}),
        ([10, 10, 10, 10], {"reason": 256}),
        ([10, 10, 10, 10], {"resume": bytes(9)}),
        ([10, 10, 10, 10], {"resume": bytes(11)}),
        ([10, 10, 10, 10], {"resume": [0] * 10}),
    )
    for totals, kwargs in bad:
        err = xrt.raises(ValueError, store.commit, totals, **kwargs)
        assert str(err)
    assert (dev.ops, dev.snapshot()) == before
    message = str(xrt.raises(ValueError, store.commit, [10, 9, 10, 10]))
    assert "backwards" in message and "counter 1" in message
    message = str(xrt.raises(ValueError, store.commit, [10, 10, 10, 10], resume=bytes(3)))
    assert "10 bytes" in message and "got 3" in message


def test_totals_never_go_below_what_was_loaded():
    dev, store = _fresh()
    store.commit([5, 6, 7, 8])
    reopened = EnergyStore(dev, channels=2)
    reopened.load()
    xrt.raises(ValueError, reopened.commit, [5, 6, 7, 7])
    # Commit without an explicit load scans first, so the floor still holds.
    xrt.raises(ValueError, EnergyStore(dev, channels=2).commit, [0, 0, 0, 0])
    assert reopened.commit([5, 6, 7, 8]) == 2


def test_ring_wears_evenly_and_prepared_commits_never_erase():
    dev, store = _fresh(block_size=1024, blocks=4)
    erases_in_commit = [0]
    inside = [False]

    def count(block):
        if inside[0]:
            erases_in_commit[0] += 1

    dev.on_erase = count
    wraps = 10
    for k in range(1, wraps * store.capacity + 1):
        inside[0] = True
        store.commit(_totals(k), backlog_seq=k)
        inside[0] = False
        store.prepare()
    assert erases_in_commit[0] == 0
    assert store.inline_erases == 0
    assert dev.max_erases() - dev.min_erases() <= 1, dev.erase_counts
    assert dev.max_erases() in (wraps, wraps + 1)
    assert dev.programs == wraps * store.capacity
    assert dev.overwrites == 0
    assert EnergyStore(dev, channels=2).load().seq == wraps * store.capacity


def test_without_prepare_the_commit_erases_inline():
    dev, store = _fresh(block_size=1024, blocks=4)
    _fill(store, 1, 3 * store.capacity, prepare=False)
    # Wrap 1 and 2 enter every block once each; wrap 0 found them blank.
    assert store.inline_erases == 2 * store.block_count
    # The pointer sits at the start of block 0, full of wrap-2 records: prepare erases it, then
    # the block after it, one erase per call, then has nothing left to do.
    assert store.needs_prepare
    assert store.prepare() is True
    assert store.needs_prepare
    assert store.prepare() is True
    assert not store.needs_prepare
    assert store.prepare() is False
    erases = list(dev.erase_counts)
    _fill(store, 3 * store.capacity + 1, 3 * store.capacity + 2 * store.slots_per_block)
    assert store.inline_erases == 2 * store.block_count
    assert dev.erase_counts[0] == erases[0] and dev.erase_counts[1] == erases[1]


def test_two_block_ring_never_erases_the_newest_record():
    dev, store = _fresh(block_size=256, blocks=2)
    newest = [0, -1]  # seq, block of the last returned commit

    def guard(block):
        assert block != newest[1], "erasing the block of record %d" % newest[0]

    dev.on_erase = guard
    per_block = store.slots_per_block
    for k in range(1, 6 * store.capacity):
        store.commit(_totals(k), backlog_seq=k)
        newest[0] = k
        newest[1] = ((k - 1) // per_block) % 2
        store.prepare()
    assert store.inline_erases == 0
    assert EnergyStore(dev, channels=2).load().totals == _totals(6 * store.capacity - 1)


def test_program_windows_of_any_size_keep_neighbours():
    for prog_size in (1, 4, 16, 256, 1024):
        dev = NorFlash(1024, 3)
        store = EnergyStore(dev, channels=2, prog_size=prog_size)
        store.load()
        _fill(store, 1, 2 * store.capacity)
        assert dev.overwrites == 0
        state = EnergyStore(dev, channels=2).load()
        assert state.totals == _totals(2 * store.capacity)
    # A device that replaces bytes instead of ANDing them: windows re-write the neighbours'
    # own bytes, so earlier records stay intact.
    ram = ReplacingRam(1024, 3)
    store = EnergyStore(ram, channels=2, prog_size=256)
    store.load()
    _fill(store, 1, 15)
    for k in range(1, 16):
        o = (k - 1) * store.slot_size
        assert ram.data[o:o + 2] == b"EJ"
        assert struct.unpack_from("<I", ram.data, o + 4)[0] == k
    assert EnergyStore(ram, channels=2).load().seq == 15


def test_geometry_is_checked():
    xrt.raises(ValueError, EnergyStore, NorFlash(1024, 1))
    xrt.raises(ValueError, EnergyStore, NorFlash(64, 4))
    xrt.raises(ValueError, EnergyStore, NorFlash(1024, 4), prog_size=300)
    xrt.raises(ValueError, EnergyStore, NorFlash(1024, 4), channels=0)
    xrt.raises(ValueError, EnergyStore, NorFlash(4096, 4), channels=40)
    xrt.raises(ValueError, EnergyStore, NorFlash(4096, 4), channels=9)
    store = EnergyStore(NorFlash(4096, 16), channels=2)
    # 16 header + 12 for the module + 4 counters x 6 + 4 CRC.
    assert (store.record_len, store.slot_size, store.slots_per_block) == (56, 56, 73)
    assert store.capacity == 1168
    # Without a layout the store can read, but the geometry of its records is not known yet.
    bare = EnergyStore(NorFlash(4096, 16))
    assert bare.layout is None and bare.counters == 0
    assert bare.record_len == bare.slot_size == bare.capacity == 0
    assert bare.block_count == 16 and bare.block_size == 4096


def test_foreign_data_is_detected_and_left_alone():
    dev = NorFlash(1024, 4, seed=3)
    for b in range(4):
        dev.scramble_block(b)
    before = dev.snapshot()
    store = EnergyStore(dev, channels=2)
    err = xrt.raises(JournalFormatError, store.load)
    assert err.kind == "foreign"
    assert "format()" in str(err)
    assert xrt.raises(JournalFormatError, store.commit, [1, 1, 1, 1]).kind == "foreign"
    xrt.raises(JournalFormatError, store.prepare)
    assert dev.snapshot() == before and dev.ops == 0
    store.format()
    assert store.commit([1, 1, 1, 1]) == 1
    assert EnergyStore(dev, channels=2).load().totals == [1, 1, 1, 1]


def test_a_text_file_or_a_littlefs_image_is_foreign():
    dev = NorFlash(1024, 4)
    text = b'{"wifi": {"ssid": "home", "password": "secret"}, "modules": [80, 81]}\n'
    for i in range(len(dev.data)):
        dev.data[i] = text[i % len(text)]
    assert xrt.raises(JournalFormatError, EnergyStore(dev, channels=2).load).kind == "foreign"
    if not xrt.is_micropython():
        return
    import vfs

    dev = NorFlash(1024, 16, fast=False)
    vfs.VfsLfs2.mkfs(dev)
    fs = vfs.VfsLfs2(dev)
    with fs.open("config.json", "w") as f:
        for _ in range(40):
            f.write(text)
    err = xrt.raises(JournalFormatError, EnergyStore(dev, channels=2).load)
    assert err.kind == "foreign"


def test_other_format_version_is_never_misread():
    dev, store = _fresh()
    _fill(store, 1, 5)
    # A newer firmware wrote a version-3 record after ours: refuse, never return record 5.
    o = 5 * store.slot_size
    dev.data[o:o + 20] = _envelope(3, 6, b"\x00" * 8)
    reopened = EnergyStore(dev, channels=2)
    err = xrt.raises(JournalFormatError, reopened.load)
    assert err.kind == "version" and err.version == 3
    assert "version 3" in str(err)
    xrt.raises(JournalFormatError, reopened.commit, _totals(7))
    xrt.raises(JournalFormatError, reopened.prepare)
    # Records of another version older than our newest one (history from before a version
    # change): ignored, counted in the report.
    dev, store = _fresh(block_size=512)
    _fill(store, 1, 5)
    dev.data[1024:1044] = _envelope(3, 3, b"\x00" * 8)
    reopened = EnergyStore(dev, channels=2)
    assert reopened.load().seq == 5
    assert reopened.report.other == 1
    _fill(reopened, 6, 8)
    assert EnergyStore(dev, channels=2).load().totals == _totals(8)
    # A device holding only another version's records is not a blank journal either.
    dev = NorFlash(1024, 4)
    dev.data[0:20] = _envelope(3, 1, b"\x00" * 8)
    assert xrt.raises(JournalFormatError, EnergyStore(dev, channels=2).load).kind == "version"


def test_any_layout_is_readable_without_being_told():
    dev, store = _fresh(channels=2)
    _fill(store, 1, 30)
    # A store opened with another channel count (or none) reads the journal as it is.
    for opened in (EnergyStore(dev, channels=3), EnergyStore(dev)):
        state = opened.load()
        assert state.totals == _totals(30) and state.layout == [(0, 2)]
        assert state.version == 2 and state.resume == bytes(10)
    # Committing in the other layout is a layout change: a fresh floor, the block ahead.
    wider = EnergyStore(dev, channels=3)
    old = wider.load()
    wider.commit(old.totals + [0, 0], backlog_seq=old.backlog_seq)
    state = EnergyStore(dev).load()
    assert state.totals == _totals(30) + [0, 0] and state.layout == [(0, 3)]
    assert state.seq == 31


def test_torn_first_commit_is_an_empty_journal_not_foreign_data():
    for seed in range(1, 9):
        dev = NorFlash(1024, 4, seed=seed)
        store = EnergyStore(dev, channels=2)
        store.load()
        dev.arm_cut(0, "torn")
        xrt.raises(PowerCut, store.commit, [1, 2, 3, 4])
        dev.revive()
        store = EnergyStore(dev, channels=2)
        state = store.load()
        if state is not None:  # the torn program happened to complete every bit
            assert state.totals == [1, 2, 3, 4]
        assert store.commit([1, 2, 3, 5]) == (state.seq + 1 if state else 1)
        assert dev.overwrites == 0


def test_bit_flips_are_detected_never_misread_never_a_crash():
    dev, store = _fresh(block_size=512, blocks=4, seed=21)
    committed = {}
    for k in range(1, 100):
        store.commit(_totals(k), backlog_seq=k)
        store.prepare()
        committed[k] = _totals(k)
    image = dev.snapshot()
    outcomes = {"state": 0, "none": 0, "format": 0}
    for trial in range(60):
        dev.data[:] = image
        for _ in range(1 + dev.random(12)):
            dev.flip_bit(dev.random(dev.size), dev.random(8))
        store = EnergyStore(dev, channels=2)
        try:
            state = store.load()
        except JournalFormatError:
            outcomes["format"] += 1
            continue
        if state is None:
            outcomes["none"] += 1
            floor = 0
        else:
            outcomes["state"] += 1
            assert committed[state.seq] == state.totals, (trial, state)
            assert state.backlog_seq == state.seq
            floor = state.seq
        # The journal keeps working on the damaged flash.
        totals = _totals(floor + 1000)
        seq = store.commit(totals, backlog_seq=0)
        assert EnergyStore(dev, channels=2).load().totals == totals, trial
        assert seq == floor + 1
    assert outcomes["state"] >= 55, outcomes


def test_scrambled_blocks_and_wholly_damaged_journals():
    dev, store = _fresh(block_size=512, blocks=4, seed=8)
    _fill(store, 1, 40)
    image = dev.snapshot()
    for block in range(4):
        dev.data[:] = image
        dev.scramble_block(block)
        state = EnergyStore(dev, channels=2).load()
        assert state is not None and state.totals == _totals(state.seq)
    # Every record's CRC broken: nothing valid, said clearly, and not mistaken for foreign data.
    dev.data[:] = image
    records = 0
    for block in range(4):
        for slot in range(store.slots_per_block):
            o = block * 512 + slot * store.slot_size
            if dev.data[o] == 0x45:
                dev.flip_bit(o + store.record_len - 1, 0)
                records += 1
    # 40 commits in a 36-slot ring (9 a block): records 1-9 went when the ring wrapped into
    # block 0, and the block ahead (records 10-18) was erased by prepare().
    assert records == 22
    store = EnergyStore(dev, channels=2)
    assert store.load() is None
    assert store.report.valid == 0 and store.report.damaged == 22 and store.report.foreign == 0
    assert store.commit(_totals(1)) == 1
    assert EnergyStore(dev, channels=2).load().totals == _totals(1)


def test_format_wipes_and_restarts_the_sequence():
    dev, store = _fresh()
    _fill(store, 1, 50)
    erases = dev.ops
    store.format()
    assert dev.ops > erases
    assert store.load() is None
    assert store.commit([0, 0, 0, 0]) == 1
    assert EnergyStore(dev, channels=2).load().seq == 1


def test_prepared_commit_allocates_nothing():
    if not xrt.is_micropython():
        raise xrt.Skip("heap_lock exists only on MicroPython")
    import micropython

    dev, store = _fresh(block_size=1024, blocks=4, fast=False)
    totals = [0, 0, 0, 0]
    resume = bytearray(10)
    store.commit(totals)
    store.prepare()
    failures = 0
    kept = bytes(10)  # resume bytes of the newest record
    for k in range(2 * store.capacity):
        totals[0] += 1234
        totals[3] += 5
        resume[k % 10] = k & 0xFF
        explicit = k % 3 != 0
        micropython.heap_lock()
        try:
            if explicit:
                store.commit(totals, backlog_seq=k, reason=REASON_GROWTH, resume=resume)
            else:
                store.commit(totals, backlog_seq=k, reason=REASON_GROWTH)  # keeps the newest
        except MemoryError:
            failures += 1
        finally:
            micropython.heap_unlock()
        if explicit:
            kept = bytes(resume)
        store.prepare()
    assert failures == 0, "%d commits allocated" % failures
    state = EnergyStore(dev, channels=2).load()
    assert state.totals == totals and state.resume == kept and kept != bytes(10)


def test_file_block_device_behaves_like_nor_flash():
    path = xrt.tmp_path("nor.img")
    try:
        import os

        os.remove(path)
    except OSError:
        pass
    dev = FileBlockDevice(path, 512, 4)
    assert dev.ioctl(4, 0) == 4 and dev.ioctl(5, 0) == 512
    buf = bytearray(4)
    dev.readblocks(1, buf, 100)
    assert buf == b"\xff\xff\xff\xff"
    dev.writeblocks(1, b"\x0f\xf0\x00\xff", 100)
    dev.writeblocks(1, b"\xfc\xff\xff\x3f", 100)
    dev.readblocks(1, buf, 100)
    assert buf == b"\x0c\xf0\x00\x3f"  # programs only clear bits
    dev.ioctl(6, 1)
    dev.readblocks(1, buf, 100)
    assert buf == b"\xff\xff\xff\xff"
    # The simple protocol (no offset) erases whole blocks first, like a real flash driver.
    dev.writeblocks(2, b"\x00" * 512)
    dev.writeblocks(2, b"\xf0" * 512)
    dev.readblocks(2, buf, 0)
    assert buf == b"\xf0\xf0\xf0\xf0"
    assert dev.ioctl(3, 0) == 0
    xrt.raises(OSError, dev.readblocks, 4, buf, 0)
    xrt.raises(OSError, dev.writeblocks, 3, b"\x00" * 8, 510)
    dev.close()
    xrt.raises(OSError, dev.readblocks, 0, buf, 0)
    xrt.raises(ValueError, FileBlockDevice, path, 512, 8)
    dev = FileBlockDevice(path, 512, 4)
    dev.readblocks(1, buf, 100)
    assert buf == b"\xff\xff\xff\xff"  # the erase of block 1 was kept
    dev.close()


def test_journal_on_a_file_survives_reopening():
    path = xrt.tmp_path("journal.bin")
    try:
        import os

        os.remove(path)
    except OSError:
        pass
    dev = FileBlockDevice(path, 512, 4)
    store = EnergyStore(dev, channels=2)
    assert store.load() is None
    _fill(store, 1, 60)
    dev.close()
    dev = FileBlockDevice(path, 512, 4)
    store = EnergyStore(dev, channels=2)
    state = store.load()
    assert state.seq == 60 and state.totals == _totals(60) and state.backlog_seq == 60
    store.commit(_totals(61))
    dev.close()
    dev = FileBlockDevice(path, 512, 4)
    assert EnergyStore(dev, channels=2).load().seq == 61
    dev.close()
