"""Power cuts at every flash operation of the energy journal, over three full ring wraps.

Main geometry: 4 blocks x 512 B on the NOR test device, one module of 2 channels (4 counters),
so 9 slots of 56 B per block and 36 per ring; 3 wraps are 108 commits plus the erases (118
operations).
The default 256-byte program window is kept, so every program re-writes neighbouring records
too. Each operation is cut before, after, and torn with three different seeds. A second sweep
runs the smallest ring (2 blocks x 256 B, byte-wide programs), where the block ahead is also
the block of the newest record until the first commit lands in the new block.

Layout changes and the upgrade of version-1 journals are swept in test_store_layout.py.
"""

RUNTIMES = ("cpython", "mpy64", "mpy32")

from gateway.store import EnergyStore, crc32
from norflash import CUT_MODES, NorFlash, PowerCut

BLOCK_SIZE = 512
BLOCKS = 4
CHANNELS = 2
WRAPS = 3


def _totals_for(k):
    # Distinct for every k, monotonic, and past 2**30 so mpy32 works with big ints too.
    return [k * 1234567, k * 7, k * k * 3, (1 << 31) + k * 100003]


class _Progress:
    def __init__(self):
        self.returned = 0   # k of the last commit that returned (0: none)
        self.in_flight = 0  # k of the commit started last
        # Bumped at every recovery and written into backlog_seq, so the commit that repeats
        # a lost one's k never has the same bytes (re-programming identical bytes over a torn
        # record would quietly complete it and hide a store that writes on a used slot).
        self.generation = 0


def _prepares_after(k, capacity):
    # Wraps 0 and 2 erase ahead when idle; wrap 1 never does, so commits erase inline.
    return ((k - 1) // capacity) % 2 == 0


def _drive(store, first_k, last_k, progress):
    for k in range(first_k, last_k + 1):
        progress.in_flight = k
        seq = store.commit(_totals_for(k), backlog_seq=k + (progress.generation << 16), reason=1)
        assert seq == k, (seq, k)
        progress.returned = k
        if _prepares_after(k, store.capacity):
            store.prepare()


def _guard_newest(dev, store_ref, progress):
    """Fail if a block holding the newest returned record is erased."""
    def check(block):
        if progress.returned == 0:
            return
        slot = store_ref[0].slot_size
        length = store_ref[0].record_len
        base = block * dev.block_size
        for i in range(dev.block_size // slot):
            o = base + i * slot
            record = bytes(dev.data[o:o + length])
            if record[0:2] != b"EJ":
                continue
            seq = record[4] | (record[5] << 8) | (record[6] << 16) | (record[7] << 24)
            stored = record[-4] | (record[-3] << 8) | (record[-2] << 16) | (record[-1] << 24)
            if seq == progress.returned and crc32(record[:-4]) == stored:
                raise AssertionError("erasing block %d with the newest record %d" % (block, seq))
    return check


def _check_state(state, allowed):
    if state is None:
        assert 0 in allowed, "nothing loaded, but commit %r had returned" % (allowed,)
        return 0
    assert state.seq in allowed, "loaded %d, expected one of %r" % (state.seq, allowed)
    assert state.totals == _totals_for(state.seq), (state.totals, state.seq)
    assert state.backlog_seq & 0xFFFF == state.seq
    return state.seq


def _one_cut(index, mode, total_commits, seed=0, geometry=(BLOCK_SIZE, BLOCKS, 256)):
    """Run until the cut at operation index; return False if the run ended before it."""
    block_size, blocks, prog_size = geometry
    dev = NorFlash(block_size, blocks, seed=index * 7 + len(mode) + 1000 * seed)
    progress = _Progress()
    store_ref = [None]
    dev.on_erase = _guard_newest(dev, store_ref, progress)
    dev.arm_cut(index, mode)
    store = EnergyStore(dev, channels=CHANNELS, prog_size=prog_size)
    store_ref[0] = store
    try:
        assert store.load() is None
        _drive(store, 1, total_commits, progress)
        return False
    except PowerCut:
        pass
    dev.revive()
    store = EnergyStore(dev, channels=CHANNELS, prog_size=prog_size)
    store_ref[0] = store
    state = store.load()
    loaded = _check_state(state, (progress.returned, progress.in_flight))
    # Keep working: cross at least two block boundaries, then reopen once more.
    more = 2 * store.slots_per_block + 1
    progress.returned = loaded
    progress.generation += 1
    _drive(store, loaded + 1, loaded + more, progress)
    again = EnergyStore(dev, channels=CHANNELS, prog_size=prog_size).load()
    _check_state(again, (loaded + more,))
    assert dev.overwrites == 0, "a program tried to set bits on NOR flash"
    return True


def test_cut_at_every_operation_over_three_wraps():
    capacity = (BLOCK_SIZE // 56) * BLOCKS
    total = WRAPS * capacity
    # Learn how many flash operations the full run takes.
    dev = NorFlash(BLOCK_SIZE, BLOCKS)
    store = EnergyStore(dev, channels=CHANNELS)
    assert store.capacity == capacity
    store.load()
    _drive(store, 1, total, _Progress())
    ops = dev.ops
    assert min(dev.erase_counts) >= WRAPS - 1, dev.erase_counts
    assert ops >= total + BLOCKS * (WRAPS - 1)
    assert ops == 118
    scenarios = _sweep(ops, total, (BLOCK_SIZE, BLOCKS, 256))
    assert scenarios == 5 * ops
    # Beyond the last operation nothing is cut and the run completes.
    assert not _one_cut(ops, "before", total)


def _sweep(ops, total, geometry):
    scenarios = 0
    for index in range(ops):
        for mode, seed in (("before", 0), ("after", 0), ("torn", 0), ("torn", 1), ("torn", 2)):
            assert _one_cut(index, mode, total, seed, geometry), \
                "cut at %d (%s) never happened" % (index, mode)
            scenarios += 1
    return scenarios


def test_cut_at_every_operation_of_the_smallest_ring():
    geometry = (256, 2, 1)
    dev = NorFlash(256, 2)
    store = EnergyStore(dev, channels=CHANNELS, prog_size=1)
    store.load()
    total = WRAPS * store.capacity
    assert store.capacity == 8
    _drive(store, 1, total, _Progress())
    assert min(dev.erase_counts) >= WRAPS - 1, dev.erase_counts
    assert _sweep(dev.ops, total, geometry) == 5 * dev.ops


def test_repeated_cuts_while_recovering():
    # Several cuts in a row, some landing in the first commits after a recovery.
    dev = NorFlash(BLOCK_SIZE, BLOCKS, seed=99)
    progress = _Progress()
    store_ref = [None]
    dev.on_erase = _guard_newest(dev, store_ref, progress)
    cuts = 0
    k = 0
    for cycle in range(60):
        dev.arm_cut(dev.ops + dev.random(8), CUT_MODES[dev.random(3)])
        store = EnergyStore(dev, channels=CHANNELS)
        store_ref[0] = store
        try:
            k = _check_state(store.load(), (progress.returned, progress.in_flight))
            progress.returned = k
            progress.generation += 1
            _drive(store, k + 1, k + 20, progress)
        except PowerCut:
            cuts += 1
            dev.revive()
    assert cuts >= 50
    final = EnergyStore(dev, channels=CHANNELS)
    k = _check_state(final.load(), (progress.returned, progress.in_flight))
    assert k > 60, "the journal should have advanced through the cuts, reached %d" % k
    assert dev.overwrites == 0


def test_cut_during_format_leaves_old_or_nothing():
    dev = NorFlash(BLOCK_SIZE, BLOCKS, seed=5)
    store = EnergyStore(dev, channels=CHANNELS)
    store.load()
    _drive(store, 1, 30, _Progress())
    start = dev.ops
    for index in range(BLOCKS):
        for mode in CUT_MODES:
            image = NorFlash(BLOCK_SIZE, BLOCKS, seed=index + 11)
            image.data[:] = dev.data
            image.ops = start
            image.arm_cut(start + index, mode)
            try:
                EnergyStore(image, channels=CHANNELS).format()
                cut = False
            except PowerCut:
                cut = True
            image.revive()
            # Three of the four blocks hold records; the blank one is not erased again.
            assert cut == (index < 3), (index, mode, cut)
            reopened = EnergyStore(image, channels=CHANNELS)
            state = reopened.load()
            if state is not None:
                # Records left by a half-done wipe are genuine ones, never a mix.
                assert state.totals == _totals_for(state.seq)
            seq = reopened.commit(_totals_for(31), backlog_seq=31)
            assert EnergyStore(image, channels=CHANNELS).load().seq == seq
