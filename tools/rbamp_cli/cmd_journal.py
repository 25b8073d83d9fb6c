"""``journal IMAGE``: the energy totals and records in a journal image pulled from a board.

The totals come from the gateway's own ``EnergyStore.load()`` (the record a rebooting gateway
would resume from); the record list decodes every slot of the on-flash format documented in
``gateway/store.py`` and checks each CRC, so damaged slots are counted, never shown as data.
"""

import argparse
import struct

DESCRIPTION = """\
Decode an energy journal image: the raw bytes of the ESP32 'energy' partition (e.g.
esptool.py read_flash) or the energy.img file the gateway keeps on stock firmware. Prints the
totals the gateway would resume from (mWh counters shown as Wh: import and export per channel)
and the newest records (sequence, reason, values). The journal holds every module's channels
in config order; --modules 0x50:2,0x51:1 splits them per module. Nothing is written."""

REASONS = {0: "unspecified", 1: "growth", 2: "interval", 3: "shutdown", 4: "reset", 5: "migration"}
_HEADER_LEN = 14  # store.py: magic, version, length, seq, backlog_seq, reason, counter count
_COUNTER_BYTES = 6


def default_block_size():
    from gateway.boards import JOURNAL_BLOCK_SIZE

    return JOURNAL_BLOCK_SIZE


def module_layout(text):
    """``0x50:2,0x51:1`` -> [(0x50, 2), (0x51, 1)]."""
    from rbamp_cli.values import address

    layout = []
    for part in text.split(","):
        addr_text, sep, count_text = part.partition(":")
        if not sep or not count_text.isdigit() or not 1 <= int(count_text) <= 3:
            raise argparse.ArgumentTypeError("%r: write ADDRESS:CHANNELS per module, e.g. 0x50:2,0x51:1" % part)
        layout.append((address(addr_text), int(count_text)))
    return layout


class ImageDevice:
    """A journal image in memory behind the block-device protocol; read-only."""

    def __init__(self, data, block_size):
        self.data = data
        self.block_size = block_size
        self.block_count = len(data) // block_size

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        raise OSError(30, "the journal image is opened read-only")

    def ioctl(self, op, arg):
        if op == 4:
            return self.block_count
        if op == 5:
            return self.block_size
        if op == 6:
            raise OSError(30, "the journal image is opened read-only")
        return 0


def _read_image(path, block_size):
    from rbamp_cli.errors import CliError

    with open(path, "rb") as handle:
        data = handle.read()
    if not data:
        raise CliError("%s is empty" % path)
    if len(data) % block_size:
        raise CliError("%s is %d bytes, not a whole number of %d-byte blocks: a truncated copy, or "
                       "give the right --block-size" % (path, len(data), block_size))
    if len(data) // block_size < 2:
        raise CliError("%s holds %d block(s) of %d bytes; a journal has at least 2 (is --block-size right?)" % (
            path, len(data) // block_size, block_size))
    return data


def _open_store(device, path):
    """The gateway's store over the image, with the channel count the records declare."""
    from gateway.store import EnergyStore, JournalFormatError

    from rbamp_cli.errors import CliError

    store = EnergyStore(device, channels=1)
    try:
        return store, store.load()
    except JournalFormatError as exc:
        if exc.kind == "foreign":
            report = store.report
            raise CliError("%s is not an energy journal (%d slots of other data in %d blocks): the wrong "
                           "file or partition, or the wrong --block-size" % (path, report.foreign,
                                                                            report.foreign_blocks))
        if exc.kind != "channels":
            raise CliError("%s: %s" % (path, exc))
        store = EnergyStore(device, channels=exc.counters // 2)
        return store, store.load()


def _records(data, store):
    """Every slot holding a valid record of the store's layout, oldest sequence first."""
    from gateway.store import FORMAT_VERSION, MAGIC, crc32

    found = []
    length = store.record_len
    for block in range(store.block_count):
        for slot in range(store.slots_per_block):
            o = block * store.block_size + slot * store.slot_size
            record = data[o:o + length]
            if record[:2] != MAGIC or record[2] != FORMAT_VERSION or record[3] != length:
                continue
            if record[13] != store.counters:
                continue
            if struct.unpack_from("<I", record, length - 4)[0] != crc32(record[:length - 4]):
                continue
            seq, backlog_seq, reason = struct.unpack_from("<IIB", record, 4)
            counters = []
            for i in range(store.counters):
                lo, mid, hi = struct.unpack_from("<HHH", record, _HEADER_LEN + _COUNTER_BYTES * i)
                counters.append(lo | (mid << 16) | (hi << 32))
            found.append({"seq": seq, "block": block, "slot": slot, "backlog_seq": backlog_seq,
                          "reason": REASONS.get(reason, str(reason)), "counters_mwh": counters})
    found.sort(key=lambda r: r["seq"])
    return found


def _per_channel(counters, layout):
    """[{"module": "0x50" or None, "channel": n, "import_wh": .., "export_wh": ..}, ...]"""
    from rbamp_cli.errors import CliError
    from rbamp_cli.output import hex_addr

    channels = len(counters) // 2
    if layout is not None and sum(n for _, n in layout) != channels:
        raise CliError("--modules describes %d channel(s) but the journal holds %d" % (
            sum(n for _, n in layout), channels))
    owners = []
    for addr, count in layout or ():
        owners.extend((hex_addr(addr), ch) for ch in range(count))
    rows = []
    for index in range(channels):
        module, channel = owners[index] if owners else (None, index)
        rows.append({"module": module, "channel": channel, "import_wh": counters[2 * index] / 1000,
                     "export_wh": counters[2 * index + 1] / 1000})
    return rows


def run_journal(args, out, session):
    from rbamp_cli.errors import CliError

    data = _read_image(args.image, args.block_size)
    device = ImageDevice(data, args.block_size)
    store, state = _open_store(device, args.image)
    report = store.report
    scan = {"blank_slots": report.blank, "damaged_slots": report.damaged, "foreign_slots": report.foreign}
    if state is None:
        if report.damaged or report.foreign:
            raise CliError("%s holds no valid journal record (%d damaged, %d unreadable slots)" % (
                args.image, report.damaged, report.foreign))
        raise CliError("%s holds no valid journal record: it is erased (blank)" % args.image)
    records = _records(data, store)
    totals = _per_channel(state.totals, args.modules)
    shown = records if args.all else records[-args.records:]
    if out.as_json:
        out.document({"image": args.image, "block_size": args.block_size, "blocks": store.block_count,
                      "channels": store.channels, "newest_seq": state.seq, "backlog_seq": state.backlog_seq,
                      "reason": REASONS.get(state.reason, str(state.reason)), "totals": totals,
                      "scan": scan, "records": shown, "record_count": len(records)})
        return 0
    out.line("%s: %d blocks of %d bytes, %d channel(s), %d valid record(s), newest #%d (%s), backlog seq %d" % (
        args.image, store.block_count, args.block_size, store.channels, len(records), state.seq,
        REASONS.get(state.reason, state.reason), state.backlog_seq))
    if report.damaged or report.foreign:
        out.line("damaged slots %d, foreign slots %d (a torn write leaves one; more means trouble)" % (
            report.damaged, report.foreign))
    out.table(["module", "ch", "import Wh", "export Wh"],
              [[row["module"] or "-", str(row["channel"]), "%.3f" % row["import_wh"], "%.3f" % row["export_wh"]]
               for row in totals])
    out.line("")
    out.line("newest %d of %d record(s), values in Wh as [import, export] per channel:" % (len(shown), len(records)))
    rows = []
    for record in shown:
        counters = record["counters_mwh"]
        pairs = ["[%.3f, %.3f]" % (counters[i] / 1000, counters[i + 1] / 1000) for i in range(0, len(counters), 2)]
        rows.append([str(record["seq"]), "%d/%d" % (record["block"], record["slot"]), record["reason"],
                     str(record["backlog_seq"]), " ".join(pairs)])
    out.table(["seq", "block/slot", "reason", "backlog", "values"], rows)
    return 0
