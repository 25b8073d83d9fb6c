RUNTIMES = ("cpython", "mpy64", "mpy32")

from gateway.config import parse_config

_ROOT = __file__.rsplit("/", 2)[0] if __file__.count("/") >= 2 else "."


def _read(name):
    with open(_ROOT + "/" + name) as f:
        return f.read()


def test_make_run_host_config_is_valid():
    config = parse_config(_read("tools/host_config.json"))
    assert config["period_s"] == 10 and config["modules"][0]["address"] == 0x50
    assert config["web"]["password"] == "rbamp-on-this-pc"  # README: the settings can be tried on a PC


def test_board_files_are_tiny_and_start_the_gateway():
    boot = _read("boot.py")
    main = _read("main.py")
    assert "gateway.app import main" in main and "main()" in main
    assert len(boot.splitlines()) < 10 and "asyncio" not in boot


def test_a_foreign_journal_is_reclaimed_in_place_on_flash_and_kept_aside_as_a_file():
    import os

    import xrt
    from gateway.boards import Board
    from gateway.flashdev import FileBlockDevice
    from gateway.store import EnergyStore, JournalFormatError
    from norflash import NorFlash

    class TmpBoard(Board):
        data_dir = xrt.tmp_dir()

    board = TmpBoard()
    flash = NorFlash(block_size=4096, block_count=4)
    assert board.reclaim_journal(flash) is flash  # a dedicated region: formatted where it is

    path = board.path("energy.img")
    for stale in (path, path + ".foreign"):
        try:
            os.remove(stale)
        except OSError:
            pass
    foreign = bytes((i * 7 + 3) & 0xFF for i in range(4096)) * 4
    with open(path, "wb") as f:
        f.write(foreign)
    device = FileBlockDevice(path, 4096, 4)
    try:
        EnergyStore(device, channels=2).load()
        raise AssertionError("foreign data was taken for a journal")
    except JournalFormatError as exc:
        assert exc.kind == "foreign"
    fresh = board.reclaim_journal(device)
    with open(path + ".foreign", "rb") as f:
        assert f.read() == foreign  # nothing destroyed
    store = EnergyStore(fresh, channels=2)
    store.format()
    assert store.load() is None  # a blank journal, no longer foreign
    fresh.close()
    with open(path, "rb") as f:
        assert f.read() != foreign
