"""Host tests of ``rbamp journal``: images written by the gateway's real EnergyStore on the NOR-flash
test device and on the gateway's file-backed device, and broken images (one line, exit 1)."""

from gateway.flashdev import FileBlockDevice
from gateway.store import REASON_GROWTH, REASON_INTERVAL, EnergyStore
from norflash import NorFlash
from support_cli import assert_one_line_error, cli


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
    assert lines[2].split() == ["0x50", "0", "%.3f" % (last[0] / 1000), "%.3f" % (last[1] / 1000)]
    assert lines[4].split()[:2] == ["0x51", "0"]
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
