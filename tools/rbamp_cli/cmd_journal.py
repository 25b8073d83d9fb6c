"""``journal IMAGE``: the energy totals and records in a journal image pulled from a board.

Everything is decoded by the gateway's own ``EnergyStore``: the totals are what ``load()``
returns (the record a rebooting gateway would resume from) and the record list is
``EnergyStore.records()``, which checks every CRC with the same per-block slot sizes as the
gateway's scan, so damaged slots are counted, never shown as data. Version-2 records name their
modules; version-1 records (and the anonymous module of ``channels=``) can be split with
``--modules``.
"""

import argparse
import os

DESCRIPTION = """\
Decode an energy journal image: the raw bytes of the ESP32 'energy' partition (e.g.
esptool.py read_flash), the energy.d folder of block files the gateway keeps on stock firmware
(copied off the board with mpremote cp -r), an energy.img file of earlier versions, or an
archived copy (energy.<seq>.img). Prints the totals the gateway would resume from (mWh
counters shown as Wh: import and export per channel of each module the newest record names)
and the newest records of every format version (sequence, reason, layout, values). Version-1
records hold every module's channels in config order without saying whose they are;
--modules 0x50:2,0x51:1 splits them per module. Nothing is written."""

REASONS = {0: "unspecified", 1: "growth", 2: "interval", 3: "shutdown", 4: "reset", 5: "migration",
           6: "power-loss", 7: "layout", 8: "period"}


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


def _read_folder(path):
    """The journal's block files (``energy.d`` on a board: ``0/b``, ``1/b``, ...) as one image."""
    from rbamp_cli.errors import CliError

    blocks = []
    while os.path.isfile(os.path.join(path, str(len(blocks)), "b")):
        with open(os.path.join(path, str(len(blocks)), "b"), "rb") as handle:
            blocks.append(handle.read())
    if not blocks:
        raise CliError("%s is a folder without journal block files (0/b, 1/b, ...)" % path)
    return b"".join(blocks)


def _read_image(path, block_size):
    from rbamp_cli.errors import CliError

    if os.path.isdir(path):
        data = _read_folder(path)
    else:
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
    """The gateway's store over the image; it reads any layout and both format versions."""
    from gateway.store import EnergyStore, JournalFormatError

    from rbamp_cli.errors import CliError

    store = EnergyStore(device)
    try:
        return store, store.load()
    except JournalFormatError as exc:
        if exc.kind == "foreign":
            report = store.report
            raise CliError("%s is not an energy journal (%d slots of other data in %d blocks): the wrong "
                           "file or partition, or the wrong --block-size" % (path, report.foreign,
                                                                            report.foreign_blocks))
        raise CliError("%s: %s" % (path, exc))


def _layout_text(layout):
    if layout is None:
        return "v1"
    return ",".join("%s:%d" % (_module_name(addr), count) for addr, count in layout)


def _module_name(addr):
    from rbamp_cli.output import hex_addr

    return "-" if addr == 0 else hex_addr(addr)  # address 0: one anonymous module


def _records(store):
    """Every valid record on the device (both versions), oldest sequence first."""
    found = []
    for block, slot, state in store.records():
        found.append({"seq": state.seq, "block": block, "slot": slot, "version": state.version,
                      "backlog_seq": state.backlog_seq, "reason": REASONS.get(state.reason, str(state.reason)),
                      "layout": _layout_json(state.layout),
                      "resume": None if state.resume is None else state.resume.hex(),
                      "counters_mwh": state.totals})
    found.sort(key=lambda r: r["seq"])
    return found


def _layout_json(layout):
    if layout is None:
        return None
    return [{"address": None if addr == 0 else "0x%02X" % addr, "channels": count} for addr, count in layout]


def _owners(state, modules):
    """(module name or None, channel) for every channel of the state, from the record's own layout,
    or from --modules where the record does not name its modules (version 1, anonymous module)."""
    from rbamp_cli.errors import CliError
    from rbamp_cli.output import hex_addr

    channels = len(state.totals) // 2
    named = state.layout is not None and any(addr for addr, _ in state.layout)
    if named:
        if modules is not None and [tuple(m) for m in modules] != [tuple(m) for m in state.layout]:
            raise CliError("--modules %s does not match the layout the journal records (%s); leave "
                           "--modules out for version-2 journals" % (
                               ",".join("%s:%d" % (hex_addr(a), n) for a, n in modules),
                               _layout_text(state.layout)))
        modules = state.layout
    elif modules is not None and sum(n for _, n in modules) != channels:
        raise CliError("--modules describes %d channel(s) but the journal holds %d" % (
            sum(n for _, n in modules), channels))
    if modules is None:
        return [(None, ch + 1) for ch in range(channels)]  # ch1.. as Home Assistant names them
    owners = []
    for addr, count in modules:
        owners.extend((hex_addr(addr), ch + 1) for ch in range(count))
    return owners


def _per_channel(state, modules):
    """[{"module": "0x50" or None, "channel": n, "import_wh": .., "export_wh": ..}, ...]"""
    counters = state.totals
    rows = []
    for index, (module, channel) in enumerate(_owners(state, modules)):
        rows.append({"module": module, "channel": channel, "import_wh": counters[2 * index] / 1000,
                     "export_wh": counters[2 * index + 1] / 1000})
    return rows


def run_journal(args, out, session):
    from rbamp_cli.errors import CliError

    data = _read_image(args.image, args.block_size)
    device = ImageDevice(data, args.block_size)
    store, state = _open_store(device, args.image)
    report = store.report
    scan = {"blank_slots": report.blank, "damaged_slots": report.damaged, "foreign_slots": report.foreign,
            "other_version_records": report.other}
    if state is None:
        if report.damaged or report.foreign:
            raise CliError("%s holds no valid journal record (%d damaged, %d unreadable slots)" % (
                args.image, report.damaged, report.foreign))
        raise CliError("%s holds no valid journal record: it is erased (blank)" % args.image)
    records = _records(store)
    totals = _per_channel(state, args.modules)
    channels = len(state.totals) // 2
    shown = records if args.all else records[-args.records:]
    if out.as_json:
        out.document({"image": args.image, "block_size": args.block_size, "blocks": store.block_count,
                      "version": state.version, "layout": _layout_json(state.layout), "channels": channels,
                      "newest_seq": state.seq, "backlog_seq": state.backlog_seq,
                      "reason": REASONS.get(state.reason, str(state.reason)),
                      "resume": None if state.resume is None else state.resume.hex(), "totals": totals,
                      "scan": scan, "records": shown, "record_count": len(records)})
        return 0
    out.line("%s: %d blocks of %d bytes, format version %d, %d channel(s), %d valid record(s), newest #%d (%s), "
             "backlog seq %d" % (args.image, store.block_count, args.block_size, state.version, channels,
                                 len(records), state.seq, REASONS.get(state.reason, state.reason), state.backlog_seq))
    if report.damaged or report.foreign:
        out.line("damaged slots %d, foreign slots %d (a torn write leaves one; more means trouble)" % (
            report.damaged, report.foreign))
    out.table(["module", "ch", "import Wh", "export Wh"],
              [[row["module"] or "-", str(row["channel"]), "%.3f" % row["import_wh"], "%.3f" % row["export_wh"]]
               for row in totals])
    out.line("")
    out.line("newest %d of %d record(s), values in Wh as [import, export] per channel; layout as "
             "module:channels (v1: not recorded):" % (len(shown), len(records)))
    rows = []
    for record in shown:
        counters = record["counters_mwh"]
        pairs = ["[%.3f, %.3f]" % (counters[i] / 1000, counters[i + 1] / 1000) for i in range(0, len(counters), 2)]
        layout = record["layout"]
        layout_text = "v1" if layout is None else ",".join(
            "%s:%d" % (m["address"] or "-", m["channels"]) for m in layout)
        rows.append([str(record["seq"]), "%d/%d" % (record["block"], record["slot"]), record["reason"],
                     str(record["backlog_seq"]), layout_text, " ".join(pairs)])
    out.table(["seq", "block/slot", "reason", "backlog", "layout", "values"], rows)
    return 0
