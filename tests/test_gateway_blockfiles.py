"""The journal's block files on a board's filesystem (gateway.flashdev.BlockFilesDevice): NOR
semantics, all-or-nothing creation, an earlier version's single energy.img moved in byte for
byte, foreign data kept aside, and the journal running on top."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import os

import xrt
from gateway.boards import Board
from gateway.flashdev import BlockFilesDevice, adopt_image, remove_tree
from gateway.store import EnergyStore


def _clean(*paths):
    for path in paths:
        try:
            os.stat(path)
        except OSError:
            continue
        try:
            os.remove(path)
        except OSError:
            remove_tree(path)


def _board(name):
    class TmpBoard(Board):
        data_dir = xrt.tmp_path(name)

    try:
        os.mkdir(TmpBoard.data_dir)
    except OSError:
        pass
    board = TmpBoard()
    _clean(board.path("energy.d"), board.path("energy.d.new"), board.path("energy.img"),
           board.path("energy.d.foreign"))
    return board


def test_programs_and_the_nor_and_semantics():
    path = xrt.tmp_path("bf-nor")
    _clean(path, path + ".new")
    dev = BlockFilesDevice(path, 512, 4)
    assert sorted(os.listdir(path)) == ["0", "1", "2", "3"]
    buf = bytearray(512)
    dev.readblocks(2, buf)
    assert buf == b"\xff" * 512
    dev.writeblocks(2, b"\x0f\xf0", 100)
    dev.writeblocks(2, b"\xf3\x3f", 100)  # a program only clears bits
    dev.readblocks(2, buf)
    assert buf[100:102] == b"\x03\x30" and buf[99] == 0xFF and buf[102] == 0xFF
    dev.ioctl(6, 2)
    dev.readblocks(2, buf)
    assert buf == b"\xff" * 512
    dev.writeblocks(1, b"\x00" * 600, 256)  # across a block edge: 256 bytes here, 344 in block 2
    dev.readblocks(2, buf)
    assert buf[:344] == b"\x00" * 344 and buf[344] == 0xFF


def test_the_journal_runs_on_block_files_and_survives_reopening():
    path = xrt.tmp_path("bf-journal")
    _clean(path, path + ".new")
    store = EnergyStore(BlockFilesDevice(path, 4096, 4))
    assert store.load() is None
    store.set_layout([(0x50, 2)])
    for k in range(1, 200):  # wraps the 4-block ring
        store.commit([k * 10, k, k * 3, 0], k)
        store.prepare()
    state = EnergyStore(BlockFilesDevice(path, 4096, 4)).load()
    assert state.totals == [1990, 199, 597, 0] and state.layout == [(0x50, 2)]


def test_a_creation_cut_short_is_started_again_and_a_damaged_block_file_refused():
    path = xrt.tmp_path("bf-create")
    _clean(path, path + ".new")
    os.mkdir(path + ".new")
    os.mkdir(path + ".new/0")
    with open(path + ".new/0/b", "wb") as f:
        f.write(b"\xff" * 100)  # a power cut while the files were made
    BlockFilesDevice(path, 512, 2)
    assert sorted(os.listdir(path)) == ["0", "1"]
    with open(path + "/1/b", "wb") as f:
        f.write(b"\xff" * 10)
    error = xrt.raises(ValueError, BlockFilesDevice, path, 512, 2)
    assert "holds 10 bytes, not 512" in str(error)


def test_an_earlier_single_journal_file_is_moved_in_byte_for_byte():
    board = _board("bf-adopt")
    image = bytes((i * 13 + 5) & 0xFF for i in range(4096)) * 16
    with open(board.path("energy.img"), "wb") as f:
        f.write(image)
    device = board.journal_device()
    assert isinstance(device, BlockFilesDevice)
    buf = bytearray(4096)
    for block in range(16):
        device.readblocks(block, buf)
        assert bytes(buf) == image[block * 4096:(block + 1) * 4096], block
    assert "energy.img" not in os.listdir(board.data_dir)
    # both present (a power cut after the rename): the block files win, the old file goes
    with open(board.path("energy.img"), "wb") as f:
        f.write(b"\x00" * 4096 * 16)
    assert adopt_image(board.path("energy.img"), board.path("energy.d"), 4096, 16) is False
    assert "energy.img" not in os.listdir(board.data_dir)
    device.readblocks(3, buf)
    assert bytes(buf) == image[3 * 4096:4 * 4096]


def test_foreign_block_files_are_kept_aside_and_blank_ones_made():
    board = _board("bf-foreign")
    device = board.journal_device()
    device.writeblocks(0, b"\x12" * 4096, 0)
    fresh = board.reclaim_journal(device)
    with open(board.path("energy.d.foreign/0/b"), "rb") as f:
        assert f.read() == b"\x12" * 4096
    buf = bytearray(4096)
    fresh.readblocks(0, buf)
    assert buf == b"\xff" * 4096
