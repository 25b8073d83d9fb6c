"""Host tests of ``rbamp journal``: images written by the gateway's real EnergyStore on the NOR-flash
test device and on the gateway's file-backed device, version-1 images (built byte for byte by
test_store_layout's writer) and images upgraded from them, and broken images (one line, exit 1)."""

from gateway.flashdev import FileBlockDevice
from gateway.store import REASON_GROWTH, REASON_INTERVAL, REASON_LAYOUT, REASON_MIGRATION, EnergyStore
from norflash import NorFlash
from support_cli import assert_one_line_error, cli
from test_store_layout import write_v1_journal


def fill(store, commits, start=None):
    totals = list(start or [0] * store.counters)
    history = []
    for i in range(commits):
        totals = [value + (i % 7 + 1) * (k + 1) * 37 for k, value in enumerate(totals)]
        store.commit(totals, backlog_seq=100 + i, reason=REASON_GROWTH if i % 3 else REASON_INTERVAL)
        store.prepare()
        history.append(list(totals))
    return history


def norflash_image(tmp_path, block_size=4096, blocks=4, channels=3, commits=300):
    flash = NorFlash(block_size, blocks)
    store = EnergyStore(flash, channels=channels)
    store.load()
    history = fill(store, commits)
    path = tmp_path / "energy.bin"
    path.write_bytes(bytes(flash.data))
    return path, store, history


def test_totals_and_records_of_a_wrapped_journal(capsys, tmp_path):
    path, store, history = norflash_image(tmp_path)
    result = cli(capsys, "journal", str(path), "--json", "--all")
    assert result.code == 0, result.err
    data = result.json()
    assert data["channels"] == 3 and data["blocks"] == 4 and data["block_size"] == 4096
    assert data["newest_seq"] == store.seq == 300 and data["backlog_seq"] == 399
    last = history[-1]
    assert [(t["import_wh"], t["export_wh"]) for t in data["totals"]] == [
        (last[2 * ch] / 1000, last[2 * ch + 1] / 1000) for ch in range(3)]
    records = data["records"]
    # the ring wrapped: the oldest blocks were erased for new records, the rest are all readable
    assert data["record_count"] == len(records) < 300
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(301 - len(records), 301))
    for record in records:
        assert record["counters_mwh"] == history[record["seq"] - 1]
        assert record["backlog_seq"] == 99 + record["seq"]
        assert record["reason"] == ("growth" if (record["seq"] - 1) % 3 else "interval")
    assert data["scan"]["damaged_slots"] == 0


def test_text_output_split_per_module(capsys, tmp_path):
    path, _, history = norflash_image(tmp_path, commits=40)
    result = cli(capsys, "journal", str(path), "--modules", "0x50:2,0x51:1", "--records", "2")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "3 channel(s), 40 valid record(s), newest #40" in lines[0]
    last = history[-1]
    assert lines[2].split() == ["0x50", "1", "%.3f" % (last[0] / 1000), "%.3f" % (last[1] / 1000)]
    assert lines[4].split()[:2] == ["0x51", "1"]
    assert "newest 2 of 40 record(s)" in result.out
    assert result.out.rstrip().splitlines()[-1].split()[0] == "40"
    assert_one_line_error(cli(capsys, "journal", str(path), "--modules", "0x50:2"), 1,
                          "describes 2 channel(s) but the journal holds 3")


def test_the_gateway_file_device_image_and_another_block_size(capsys, tmp_path):
    path = tmp_path / "energy.img"
    device = FileBlockDevice(str(path), 512, 8)
    store = EnergyStore(device, channels=2)
    store.load()
    history = fill(store, 25)
    device.close()
    result = cli(capsys, "journal", str(path), "--block-size", "512", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["channels"] == 2 and data["newest_seq"] == 25 and data["record_count"] == 25
    assert data["records"][-1]["counters_mwh"] == history[-1] and len(data["records"]) == 20
    assert_one_line_error(cli(capsys, "journal", str(path)), 1, "1 block(s) of 4096 bytes", "--block-size")
    assert_one_line_error(cli(capsys, "journal", str(path), "--block-size", "1000"), 1, "1000-byte blocks")


def test_a_torn_newest_record_falls_back_to_the_one_before(capsys, tmp_path):
    path, store, history = norflash_image(tmp_path, commits=10)
    image = bytearray(path.read_bytes())
    newest = 9 * store.slot_size  # ten records in block 0; the tenth is torn by a power cut
    image[newest + 20] ^= 0xFF
    path.write_bytes(bytes(image))
    data = cli(capsys, "journal", str(path), "--json").json()
    assert data["newest_seq"] == 9 and data["scan"]["damaged_slots"] == 1
    assert data["totals"][0]["import_wh"] == history[8][0] / 1000
    assert [r["seq"] for r in data["records"]] == list(range(1, 10))


def test_broken_images_are_one_line_errors(capsys, tmp_path):
    path = norflash_image(tmp_path, commits=5)[0]
    good = path.read_bytes()
    cases = {
        "truncated.img": (good[:5000], "not a whole number of 4096-byte blocks"),
        "erased.img": (b"\xff" * 16384, "no valid journal record: it is erased"),
        "zeros.img": (bytes(16384), "is not an energy journal"),
        "noise.img": (bytes((i * 7919 + 13) & 0xFF for i in range(16384)), "is not an energy journal"),
        "empty.img": (b"", "is empty"),
        "tiny.img": (good[:4096], "a journal has at least 2"),
    }
    for name, (content, fragment) in cases.items():
        target = tmp_path / name
        target.write_bytes(content)
        assert_one_line_error(cli(capsys, "journal", str(target)), 1, fragment)
    assert_one_line_error(cli(capsys, "journal", str(tmp_path / "missing.img")), 1, "No such file")


def layout_image(tmp_path, name="energy.img", commits=30):
    """A journal that went v1 -> v2 (two modules) -> v2 (a third module added)."""
    flash = NorFlash(4096, 4)
    write_v1_journal(flash, 40, lambda k: [k * 1000, k, k * 2000, 2 * k])
    store = EnergyStore(flash)
    old = store.load()
    store.set_layout([(0x50, 1), (0x51, 1)])
    totals = list(old.totals)
    resume = bytes(range(20))
    store.commit(totals, reason=REASON_MIGRATION, resume=resume)
    for _ in range(commits):
        totals = [value + 11 for value in totals]
        store.commit(totals, reason=REASON_GROWTH)
        store.prepare()
    store.set_layout([(0x50, 1), (0x51, 1), (0x52, 2)])
    totals = totals + [0, 0, 5000, 0]
    store.commit(totals, reason=REASON_LAYOUT, resume=bytes(range(30)))
    path = tmp_path / name
    path.write_bytes(bytes(flash.data))
    return path, totals


def test_version_2_names_its_modules_and_lists_records_of_both_versions(capsys, tmp_path):
    path, totals = layout_image(tmp_path)
    data = cli(capsys, "journal", str(path), "--json", "--all").json()
    assert data["version"] == 2 and data["channels"] == 4 and data["newest_seq"] == 72
    assert data["layout"] == [{"address": "0x50", "channels": 1}, {"address": "0x51", "channels": 1},
                              {"address": "0x52", "channels": 2}]
    assert data["resume"] == bytes(range(30)).hex() and data["reason"] == "layout"
    assert [(t["module"], t["channel"]) for t in data["totals"]] == [
        ("0x50", 1), ("0x51", 1), ("0x52", 1), ("0x52", 2)]  # ch1.., as Home Assistant numbers them
    assert [t["import_wh"] for t in data["totals"]] == [totals[0] / 1000, totals[2] / 1000, 0.0, 5.0]
    records = data["records"]
    assert [r["seq"] for r in records] == list(range(1, 73))
    v1 = [r for r in records if r["version"] == 1]
    assert [r["seq"] for r in v1] == list(range(1, 41)) and all(r["layout"] is None for r in v1)
    assert v1[-1]["counters_mwh"] == [40000, 40, 80000, 80] and v1[-1]["resume"] is None
    upgrade = records[40]
    assert upgrade["version"] == 2 and upgrade["reason"] == "migration" and upgrade["block"] == 1
    assert upgrade["counters_mwh"] == [40000, 40, 80000, 80] and upgrade["resume"] == bytes(range(20)).hex()
    assert records[-1]["layout"] == data["layout"] and records[-1]["slot"] == 0
    assert data["scan"]["damaged_slots"] == 0 and data["record_count"] == 72

    result = cli(capsys, "journal", str(path), "--records", "3")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "format version 2, 4 channel(s), 72 valid record(s), newest #72 (layout)" in lines[0]
    assert lines[2].split() == ["0x50", "1", "%.3f" % (totals[0] / 1000), "%.3f" % (totals[1] / 1000)]
    assert lines[5].split() == ["0x52", "2", "5.000", "0.000"]
    assert result.out.rstrip().splitlines()[-1].split()[:5] == ["72", "2/0", "layout", "40", "0x50:1,0x51:1,0x52:2"]
    # --modules is for records that do not name their modules; a different split is refused.
    assert cli(capsys, "journal", str(path), "--modules", "0x50:1,0x51:1,0x52:2").code == 0
    assert_one_line_error(cli(capsys, "journal", str(path), "--modules", "0x50:2,0x51:2"), 1,
                          "does not match the layout the journal records (0x50:1,0x51:1,0x52:2)")


def test_a_version_1_journal_is_split_with_modules(capsys, tmp_path):
    flash = NorFlash(4096, 4)
    write_v1_journal(flash, 150, lambda k: [k * 10, 0, k * 20, 1])
    path = tmp_path / "old.img"
    path.write_bytes(bytes(flash.data))
    data = cli(capsys, "journal", str(path), "--json", "--modules", "0x50:1,0x51:1", "--all").json()
    assert data["version"] == 1 and data["layout"] is None and data["resume"] is None
    assert [(t["module"], t["import_wh"]) for t in data["totals"]] == [("0x50", 1.5), ("0x51", 3.0)]
    # 44-byte v1 slots, 93 a block: 150 records fill block 0 and part of block 1, none lost.
    assert data["record_count"] == 150 and data["records"][-1]["slot"] == 56
    text = cli(capsys, "journal", str(path), "--records", "1").out
    assert "format version 1, 2 channel(s), 150 valid record(s)" in text
    assert text.rstrip().splitlines()[-1].split()[4] == "v1"
    assert_one_line_error(cli(capsys, "journal", str(path), "--modules", "0x50:1"), 1,
                          "describes 1 channel(s) but the journal holds 2")


def test_an_archived_copy_of_the_region_reads_the_same(capsys, tmp_path):
    path, _ = layout_image(tmp_path)
    copy = tmp_path / "energy.72.img"
    copy.write_bytes(path.read_bytes())
    original = cli(capsys, "journal", str(path), "--json", "--all").json()
    archived = cli(capsys, "journal", str(copy), "--json", "--all").json()
    assert archived["image"] == str(copy)
    original.pop("image")
    archived.pop("image")
    assert archived == original


def test_the_block_files_folder_of_a_stock_board_reads_like_the_image(capsys, tmp_path):
    path, totals = layout_image(tmp_path)
    folder = tmp_path / "energy.d"
    folder.mkdir()
    data = path.read_bytes()
    for block in range(len(data) // 4096):
        (folder / str(block)).mkdir()
        (folder / str(block) / "b").write_bytes(data[block * 4096:(block + 1) * 4096])
    from_folder = cli(capsys, "journal", str(folder), "--json", "--all").json()
    from_image = cli(capsys, "journal", str(path), "--json", "--all").json()
    from_folder.pop("image")
    from_image.pop("image")
    assert from_folder == from_image and from_folder["newest_seq"] == 72
    empty = tmp_path / "empty.d"
    empty.mkdir()
    assert_one_line_error(cli(capsys, "journal", str(empty)), 1, "without journal block files")


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path):
    # rbamp journal IMAGE | head -1: the pipe's reader is gone before the first line is written
    import os
    import subprocess
    import sys

    from support_cli import ROOT

    path, _, _ = norflash_image(tmp_path, commits=40)
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "lib"), os.path.join(ROOT, "tools")]))
    try:
        child = subprocess.run([sys.executable, "-m", "rbamp_cli", "journal", str(path), "--all"], stdout=write_end,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert child.returncode == 141 and child.stderr == b"", (child.returncode, child.stderr)  # 128 + SIGPIPE
