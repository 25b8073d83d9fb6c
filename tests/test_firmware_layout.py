"""The board definitions in firmware/boards against the gateway's board profiles (lib/gateway/boards.py):
the ESP32 partition table and its sdkconfig, the Pico W flash split, board_layout.py and the _boot.py
that mounts the filesystem, evaluated with the real cmake and MicroPython 1.25's port files."""

import os
import re
import subprocess
import sys
import types
from typing import ClassVar

import pytest
from support_firmware import (
    ESP32_BOARD,
    PICO_W_BOARD,
    gateway_boards,
    load_module,
    micropython_source,
)

ESP32_FLASH_BYTES = 4 * 1024 * 1024  # the ESP32_GENERIC modules (WROOM/WROVER) this image targets
PICO_W_FLASH_BYTES = 2 * 1024 * 1024  # the Pico W's W25Q16 (pico-sdk boards/pico_w.h)
ESP32_TABLE_END = 0x9000  # the partition table sits at 0x8000 (ESP-IDF default), 4 KiB long
ESP32_APP_ALIGN = 0x10000  # ESP-IDF maps app partitions in 64 KiB MMU pages
RP2_SECTOR = 4096

boards = gateway_boards()
JOURNAL_BYTES = boards.JOURNAL_BLOCKS * boards.JOURNAL_BLOCK_SIZE


# ---------------------------------------------------------------------- ESP32 partition table

def _size(text):
    text = text.strip()
    if text[-1:] in ("K", "k"):
        return int(text[:-1], 0) * 1024
    if text[-1:] in ("M", "m"):
        return int(text[:-1], 0) * 1024 * 1024
    return int(text, 0)


def read_partitions(path):
    """ESP-IDF partition CSV rows as dicts (every row of ours gives an explicit offset)."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cells = [cell.strip() for cell in line.split(",")]
            name, kind, subtype, offset, size = cells[:5]
            rows.append({"name": name, "type": kind, "subtype": subtype, "offset": _size(offset), "size": _size(size)})
    return rows


def esp32_layout_problems(rows, label, journal_bytes, flash_bytes):
    problems = []
    names = [row["name"] for row in rows]
    if len(set(names)) != len(names):
        problems.append("duplicate partition names")
    journal = [row for row in rows if row["name"] == label]
    if len(journal) != 1:
        problems.append("no single %r partition" % label)
    else:
        row = journal[0]
        if row["type"] != "data":
            problems.append("%r is not a data partition" % label)
        if row["size"] != journal_bytes:
            problems.append("%r is %d bytes, the journal needs %d" % (label, row["size"], journal_bytes))
        if row["offset"] % boards.JOURNAL_BLOCK_SIZE:
            problems.append("%r is not aligned to the %d-byte erase block" % (label, boards.JOURNAL_BLOCK_SIZE))
    if "vfs" not in names:
        problems.append("no vfs partition (MicroPython's flashbdev mounts the one labelled vfs)")
    for row in rows:
        if row["offset"] < ESP32_TABLE_END:
            problems.append("%s overlaps the partition table" % row["name"])
        if row["offset"] + row["size"] > flash_bytes:
            problems.append("%s ends past the %d-byte flash" % (row["name"], flash_bytes))
        if row["type"] == "app" and row["offset"] % ESP32_APP_ALIGN:
            problems.append("app partition %s is not 64 KiB aligned" % row["name"])
    ordered = sorted(rows, key=lambda row: row["offset"])
    for before, after in zip(ordered, ordered[1:]):
        if before["offset"] + before["size"] > after["offset"]:
            problems.append("%s overlaps %s" % (before["name"], after["name"]))
    return problems


def esp32_csv():
    return os.path.join(ESP32_BOARD, "partitions-rbamp-4MiB.csv")


def test_esp32_partition_table_has_the_energy_partition_the_profile_finds():
    rows = read_partitions(esp32_csv())
    assert esp32_layout_problems(rows, boards.ESP32_PARTITION_LABEL, JOURNAL_BYTES, ESP32_FLASH_BYTES) == []


def test_esp32_layout_check_catches_a_wrong_size_an_overlap_and_a_missing_label():
    rows = read_partitions(esp32_csv())
    energy = next(row for row in rows if row["name"] == "energy")
    energy["size"] += boards.JOURNAL_BLOCK_SIZE  # one block too many: runs into vfs
    problems = esp32_layout_problems(rows, "energy", JOURNAL_BYTES, ESP32_FLASH_BYTES)
    assert any("the journal needs" in p for p in problems) and any("overlaps vfs" in p for p in problems)
    assert any("no single" in p for p in esp32_layout_problems(rows, "journal", JOURNAL_BYTES, ESP32_FLASH_BYTES))


def test_esp32_table_is_micropythons_4mib_table_with_vfs_giving_up_the_journal():
    stock = {row["name"]: row for row in read_partitions(
        os.path.join(micropython_source(), "ports", "esp32", "partitions-4MiB.csv"))}
    ours = {row["name"]: row for row in read_partitions(esp32_csv())}
    for name, row in stock.items():
        if name != "vfs":
            assert ours[name] == row, name  # the app keeps its full size: the image fits as stock does
    stock_vfs, vfs, energy = stock["vfs"], ours["vfs"], ours["energy"]
    assert energy["offset"] == stock_vfs["offset"]
    assert vfs["offset"] == energy["offset"] + energy["size"]
    assert vfs["offset"] + vfs["size"] == stock_vfs["offset"] + stock_vfs["size"]


def _cmake_board(board_dir, port_dir, tmp_path, report):
    """Include the board's mpconfigboard.cmake as the port's CMakeLists does; return the variables."""
    script = tmp_path / "board.cmake"
    out = tmp_path / "vars.txt"
    script.write_text(
        'set(CMAKE_BINARY_DIR "%s")\nset(MICROPY_BOARD_DIR "%s")\nset(MICROPY_PORT_DIR "%s")\n'
        'include("%s/mpconfigboard.cmake")\nfile(WRITE "%s" "")\n' % (tmp_path, board_dir, port_dir, board_dir, out)
        + "".join('file(APPEND "%s" "%s=${%s}\\n")\n' % (out, name, name) for name in report))
    cmake = os.path.join(os.path.dirname(sys.executable), "cmake")
    result = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, cwd=port_dir, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(line.split("=", 1) for line in out.read_text().splitlines())


def test_esp32_cmake_makes_the_idf_use_our_table_and_manifest(tmp_path):
    port = os.path.join(micropython_source(), "ports", "esp32")
    found = _cmake_board(ESP32_BOARD, port, tmp_path, ["SDKCONFIG_DEFAULTS", "MICROPY_FROZEN_MANIFEST"])
    assert found["MICROPY_FROZEN_MANIFEST"] == os.path.join(ESP32_BOARD, "manifest.py")
    # The port concatenates the fragments in order into one defaults file; a later line wins.
    settings = {}
    fragments = found["SDKCONFIG_DEFAULTS"].split(";")
    assert fragments[:2] == ["boards/sdkconfig.base", "boards/sdkconfig.ble"]  # ESP32_GENERIC's
    for fragment in fragments:
        with open(os.path.join(port, fragment)) as f:
            for line in f:
                match = re.match(r"(CONFIG_\w+)=(.*)", line.strip())
                if match:
                    settings[match.group(1)] = match.group(2).strip('"')
    assert settings["CONFIG_PARTITION_TABLE_CUSTOM"] == "y"
    assert settings["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"] == esp32_csv()  # absolute: board is out of tree
    assert settings["CONFIG_ESPTOOLPY_FLASHSIZE_4MB"] == "y"


# ---------------------------------------------------------------------- Pico W

def header_storage_bytes(path):
    with open(path) as f:
        text = f.read()
    values = re.findall(r"#define\s+MICROPY_HW_FLASH_STORAGE_BYTES\s+(.+)", text)
    expression = values[-1].split("//")[0].strip()
    if not re.fullmatch(r"[\d\s()*+]+", expression):
        raise AssertionError("not a plain size expression: %r" % expression)
    return eval(expression)  # digits, spaces, parentheses, * and + only (checked above)


def layout():
    return load_module(os.path.join(PICO_W_BOARD, "board_layout.py"), "board_layout")


def test_pico_w_layout_agrees_with_the_header_and_the_journal_size():
    lay = layout()
    storage = header_storage_bytes(os.path.join(PICO_W_BOARD, "mpconfigboard.h"))
    assert lay.STORAGE_LEN == storage <= PICO_W_FLASH_BYTES
    assert lay.JOURNAL_LEN == JOURNAL_BYTES
    assert lay.ERASE_BLOCK == RP2_SECTOR
    for value in (lay.JOURNAL_START, lay.JOURNAL_LEN, lay.FS_START, lay.FS_LEN, storage):
        assert value % RP2_SECTOR == 0, value
    assert 0 <= lay.JOURNAL_START and lay.JOURNAL_START + lay.JOURNAL_LEN <= lay.FS_START
    assert lay.FS_START + lay.FS_LEN == storage
    # "the 64 KiB right before the filesystem" (boards.py docstring)
    assert lay.JOURNAL_START + lay.JOURNAL_LEN == lay.FS_START


def test_pico_w_keeps_rpi_pico_w_code_space(tmp_path):
    port = os.path.join(micropython_source(), "ports", "rp2")
    stock = header_storage_bytes(os.path.join(port, "boards", "RPI_PICO_W", "mpconfigboard.h"))
    assert header_storage_bytes(os.path.join(PICO_W_BOARD, "mpconfigboard.h")) == stock
    found = _cmake_board(PICO_W_BOARD, port, tmp_path, ["PICO_BOARD", "MICROPY_FROZEN_MANIFEST", "GEN_PINS_CSV_ARG"])
    assert found["PICO_BOARD"] == "pico_w"
    assert found["MICROPY_FROZEN_MANIFEST"] == os.path.join(PICO_W_BOARD, "manifest.py")
    flag, csv = found["GEN_PINS_CSV_ARG"].split(";")
    assert flag == "--board-csv" and os.path.isfile(csv)


def _with_modules(modules, action):
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        return action()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = module


class FakeRp2Flash:
    """rp2.Flash's argument rules (ports/rp2/rp2_flash.c): offsets within the storage region,
    multiples of the sector size. Records the regions it hands out."""

    opened: ClassVar[list] = []

    def __init__(self, start=-1, len=-1):
        storage = layout().STORAGE_LEN
        if start == -1 and len == -1:
            start, len = 0, storage
        if not (0 <= start < storage and start % RP2_SECTOR == 0):
            raise ValueError("start")
        if len == -1:
            len = storage - start
        if not (0 < len and start + len <= storage and len % RP2_SECTOR == 0):
            raise ValueError("len")
        self.region = (start, start + len)
        FakeRp2Flash.opened.append(self.region)


def _run_boot(mount_fails):
    calls = []

    class VfsLfs2:
        def __init__(self, bdev, progsize=None):
            if mount_fails and not any(c[0] == "mkfs" for c in calls):
                raise OSError(19, "no filesystem")  # what a blank or foreign region gives
            calls.append(("open", bdev.region, progsize))

        @staticmethod
        def mkfs(bdev, progsize=None):
            calls.append(("mkfs", bdev.region, progsize))

    fake_vfs = types.SimpleNamespace(VfsLfs2=VfsLfs2, mount=lambda fs, path: calls.append(("mount", path)))
    modules = {"vfs": fake_vfs, "rp2": types.SimpleNamespace(Flash=FakeRp2Flash), "board_layout": layout()}
    with open(os.path.join(PICO_W_BOARD, "_boot.py")) as f:
        code = compile(f.read(), "_boot.py", "exec")
    _with_modules(modules, lambda: exec(code, {"__name__": "_boot"}))  # noqa: S102 - the board file under test
    return calls


@pytest.mark.parametrize("mount_fails", [False, True], ids=["existing-fs", "first-boot"])
def test_pico_w_boot_mounts_the_filesystem_after_the_journal_only(mount_fails):
    lay = layout()
    FakeRp2Flash.opened = []
    calls = _run_boot(mount_fails)
    fs_region = (lay.FS_START, lay.FS_START + lay.FS_LEN)
    assert FakeRp2Flash.opened == [fs_region]
    expected = [("mkfs", fs_region, 256)] if mount_fails else []
    assert calls == expected + [("open", fs_region, 256), ("mount", "/")]
    journal = (lay.JOURNAL_START, lay.JOURNAL_START + lay.JOURNAL_LEN)
    assert journal[1] <= fs_region[0] or fs_region[1] <= journal[0]


# ---------------------------------------------------------------------- the profiles use them

def test_rp2_profile_opens_exactly_the_journal_region():
    lay = layout()
    FakeRp2Flash.opened = []
    device = _with_modules({"rp2": types.SimpleNamespace(Flash=FakeRp2Flash), "board_layout": lay},
                           lambda: boards.Rp2Board.journal_device(object.__new__(boards.Rp2Board)))
    assert device.region == (lay.JOURNAL_START, lay.JOURNAL_START + lay.JOURNAL_LEN)


def test_esp32_profile_finds_the_partition_by_the_table_label():
    rows = read_partitions(esp32_csv())
    asked = []

    class Partition:
        TYPE_DATA = 1

        @staticmethod
        def find(kind, label=None):
            asked.append(label)
            return [row for row in rows if row["type"] == "data" and row["name"] == label]

    device = _with_modules({"esp32": types.SimpleNamespace(Partition=Partition)},
                           lambda: boards.Esp32Board.journal_device(object.__new__(boards.Esp32Board)))
    assert asked == [boards.ESP32_PARTITION_LABEL] and device["size"] == JOURNAL_BYTES
