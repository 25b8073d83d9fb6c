"""``reset-totals``: start a gateway's energy totals from zero, deliberately.

Two places keep the totals: the journal (the gateway resumes from it) and the broker's retained
``<base_topic>/<device_id>/totals``, which a booting gateway takes as a floor so that a wiped
journal never makes published totals go backwards. Starting from zero therefore clears both,
with the gateway stopped: the retained message first (an empty retained message deletes it),
then the journal is formatted (``EnergyStore.format``). Cut short in between, nothing is lost:
the journal still holds the totals and the next boot publishes them again.
"""

import json
import os
import sys

from rbamp_cli.errors import CliError, UsageError
from rbamp_cli.output import numbers

DESCRIPTION = """\
Start a gateway's energy totals from zero. A gateway whose journal is blank takes the broker's
retained totals as a floor (a wiped journal must not make published totals go backwards), so
bench-test energy would follow it into production: this command clears both places.

With the gateway stopped, it shows the totals it found, asks you to type the device id (--yes
skips the question, for scripts), then publishes an empty retained message on
<base_topic>/<device_id>/totals (the broker drops the retained totals) and formats the journal
(--journal: the data folder's energy.d of `make run`, an energy.img, or an energy.d copied off a
board; --broker-only when you format the board's journal on the board, see docs/cli.md;
--journal-only when no broker keeps retained totals, as make run's embedded one). A gateway that
the broker shows online is refused: it would publish its totals again.

  rbamp reset-totals --broker 192.168.1.10 --device-id house --journal .run/energy.d
  rbamp reset-totals --config config.json --broker-only --yes
  rbamp reset-totals --journal .run/energy.d --journal-only"""


def add_options(parser):
    from rbamp_cli.cmd_config import broker

    parser.add_argument("--broker", type=broker, metavar="HOST[:PORT]", help="the MQTT broker (port default 1883, 8883 with --tls)")
    parser.add_argument("--device-id", metavar="ID", help="the gateway's device id (the topic level after base_topic)")
    parser.add_argument("--config", metavar="PATH",
                        help="take the broker, credentials, base topic and device id from this config.json")
    parser.add_argument("--base-topic", metavar="TOPIC", help="default: the config's, else rbamp")
    parser.add_argument("--mqtt-user", metavar="USER")
    parser.add_argument("--mqtt-password", metavar="PASSWORD", help="or set RBAMP_MQTT_PASSWORD")
    parser.add_argument("--tls", action="store_true", help="connect to the broker with TLS")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--journal", metavar="IMAGE",
                       help="the journal to format: an energy.d folder of block files or an energy.img file")
    where.add_argument("--broker-only", action="store_true",
                       help="clear only the broker's retained totals (the board's journal is formatted on the board)")
    parser.add_argument("--journal-only", action="store_true",
                        help="format only the journal: no broker keeps retained totals (make run's embedded "
                             "broker forgets them when it stops)")
    parser.add_argument("--block-size", type=int, default=None, metavar="BYTES",
                        help="the journal's erase block size (default: the gateway's)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--even-if-online", action="store_true",
                        help="go on although the broker shows the gateway online (a stale retained 'online')")


class Target:
    """Where the totals are: broker address and credentials, topics, journal path. ``host`` is
    None when only the journal is formatted."""

    def __init__(self, args):
        if args.journal_only and args.journal is None:
            raise UsageError("--journal-only needs --journal IMAGE")
        if args.journal_only and (args.broker is not None or args.config is not None):
            raise UsageError("--journal-only leaves the broker alone: leave out --broker and --config")
        self.journal = args.journal
        self.device_id = args.device_id
        self.host = None
        if args.journal_only:
            return
        mqtt = {}
        device_id = None
        if args.config is not None:
            from gateway.config import load_config

            result = load_config(args.config)
            if not result.ok:
                raise CliError(result.error)
            mqtt = result.config["mqtt"]
            device_id = result.config["device_id"]
        if args.broker is not None:
            self.host, port = args.broker
            self.port = port or (8883 if args.tls else 1883)  # MQTT's registered ports
        elif mqtt.get("host"):
            self.host, self.port = mqtt["host"], mqtt["port"]
        else:
            raise UsageError("which broker? give --broker HOST[:PORT] or --config config.json")
        self.user = args.mqtt_user if args.mqtt_user is not None else mqtt.get("user")
        self.password = (args.mqtt_password or os.environ.get("RBAMP_MQTT_PASSWORD") or mqtt.get("password"))
        self.tls = args.tls or bool(mqtt.get("tls"))
        self.ca_file = mqtt.get("ca_file")
        self.device_id = args.device_id or device_id
        if not self.device_id:
            raise UsageError("which gateway? give --device-id ID (the level after the base topic in its topics)")
        base_topic = args.base_topic or mqtt.get("base_topic") or "rbamp"
        from gateway import payloads

        prefix = payloads.topic_prefix(base_topic, self.device_id)  # refuses +, # and /
        self.totals_topic = prefix + payloads.TOTALS
        self.availability_topic = prefix + payloads.AVAILABILITY
        if args.journal is None and not args.broker_only:
            raise UsageError("give --journal IMAGE (the journal to format) or --broker-only")

    @property
    def confirm_word(self):
        """What the user types to confirm: the device id, or the journal's path when only the
        journal is formatted and no device id was given."""
        return self.device_id or self.journal


def _block_count(path, block_size):
    if os.path.isdir(path):
        count = 0
        while os.path.isfile(os.path.join(path, str(count), "b")):
            count += 1
        if not count:
            raise CliError("%s is a folder without journal block files (0/b, 1/b, ...)" % path)
        return count
    size = os.path.getsize(path)
    if not size or size % block_size:
        raise CliError("%s is %d bytes, not a whole number of %d-byte blocks: not a journal image, or "
                       "give the right --block-size" % (path, size, block_size))
    return size // block_size


RUN_LOCK = "run.lock"  # make run's lock on its data folder (tools/run_host.py)


def lock_data_folder(journal_path):
    """Hold ``make run``'s lock on the journal's data folder while formatting, so no gateway of
    ``make run`` writes it meanwhile; the file descriptor, or None where there is no such lock."""
    import fcntl

    path = os.path.join(os.path.dirname(os.path.abspath(journal_path)), RUN_LOCK)
    if not os.path.exists(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        with open(path) as handle:
            owner = handle.read().strip() or "unknown"
        raise CliError("%s is in use by make run (process %s) or the gateway it started: stop it first" % (
            os.path.dirname(path), owner))
    return fd


def open_journal(path, block_size):
    """The journal's block device and what it holds (None: blank). Refuses what is not a journal:
    formatting it would destroy someone else's data."""
    from gateway.flashdev import BlockFilesDevice, FileBlockDevice
    from gateway.store import EnergyStore, JournalFormatError

    if not os.path.exists(path):
        raise CliError("%s does not exist: give the journal's path (make run: .run/energy.d)" % path)
    count = _block_count(path, block_size)
    if os.path.isdir(path):
        device = BlockFilesDevice(path, block_size, count)
    else:
        device = FileBlockDevice(path, block_size, count)
    store = EnergyStore(device)
    try:
        state = store.load()
    except JournalFormatError as exc:
        close = getattr(device, "close", None)
        if close is not None:
            close()
        raise CliError("%s: %s; nothing was changed (not a journal this tool may format)" % (path, exc))
    return device, store, state


def _journal_totals(state):
    """[(module name, channel, import Wh, export Wh)] of a loaded journal state."""
    from rbamp_cli.output import hex_addr

    layout = state.layout or [(0, len(state.totals) // 2)]
    rows = []
    index = 0
    for addr, count in layout:
        for ch in range(count):
            rows.append(("-" if addr == 0 else hex_addr(addr), ch + 1, state.totals[2 * index] / 1000,
                         state.totals[2 * index + 1] / 1000))
            index += 1
    return rows


def _broker_totals(payload):
    """The retained totals as a dict, or the raw text when it is not JSON (it is cleared all the same)."""
    try:
        return json.loads(payload.decode())
    except ValueError:
        return payload.decode("utf-8", "replace")


def _describe_broker(totals):
    if totals is None:
        return "no retained totals"
    if not isinstance(totals, dict):
        return "retained totals %r" % totals
    parts = []
    for key, entry in totals.items():
        if isinstance(entry, dict):
            parts.append("%s import %s Wh, export %s Wh" % (key, numbers(entry.get("import_wh") or [], "%.3f"),
                                                            numbers(entry.get("export_wh") or [], "%.3f")))
    return "retained totals " + "; ".join(parts) if parts else "retained totals %s" % json.dumps(totals)


def _confirm(target, out):
    """The typed device id; anything else (or no terminal and no --yes) changes nothing."""
    out.err.write("Type the %s (%s) to clear these totals, or anything else to stop: " % (
        "device id" if target.device_id else "journal's path", target.confirm_word))
    out.err.flush()
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        out.err.write("\n")  # the error below starts a line of its own
    if not answer:
        raise CliError("not confirmed (no input): nothing was changed; pass --yes in scripts")
    if answer.strip() != target.confirm_word:
        raise CliError("not confirmed (%r is not %r): nothing was changed" % (answer.strip(), target.confirm_word))


def _show_journal(out, target, state, rows):
    if state is None:
        out.line("journal %s: blank" % target.journal)
    else:
        out.line("journal %s: %s" % (target.journal, "; ".join(
            "%s ch%d import %.3f Wh, export %.3f Wh" % row for row in rows)))


def _format(store, path):
    store.format()
    if store.load() is not None:
        raise CliError("%s still holds a record after formatting" % path)


def _clear_broker(args, out, target, journal_rows, state, store):
    """Show, confirm, clear the retained totals, format the journal (if any); the retained totals
    found, or None."""
    from rbamp_cli.retained import RetainedClient

    with RetainedClient(target.host, target.port, target.user, target.password, target.tls,
                        target.ca_file) as broker:
        found = broker.read([target.totals_topic, target.availability_topic])
        if found.get(target.availability_topic) == b"online" and not args.even_if_online:
            raise CliError("the broker shows gateway %s online (%s): stop it first, it would publish its "
                           "totals again (a stale 'online' of a gateway that is gone: --even-if-online)" % (
                               target.device_id, target.availability_topic))
        retained = found.get(target.totals_topic)
        broker_before = None if retained is None else _broker_totals(retained)
        if not out.as_json:
            out.line("broker %s, %s: %s" % (broker.address, target.totals_topic, _describe_broker(broker_before)))
            if target.journal is not None:
                _show_journal(out, target, state, journal_rows)
        if not args.yes:
            _confirm(target, out)
        if retained is not None:
            broker.clear(target.totals_topic)
        if store is not None:
            _format(store, target.journal)
        if broker.read([target.totals_topic]).get(target.totals_topic) is not None:
            raise CliError("the broker still holds retained totals on %s" % target.totals_topic)
    return broker_before


def run_reset_totals(args, out, session):
    from gateway.board_profile import JOURNAL_BLOCK_SIZE

    target = Target(args)
    block_size = args.block_size or JOURNAL_BLOCK_SIZE
    device = store = state = lock = None
    if target.journal is not None and os.path.exists(target.journal):
        lock = lock_data_folder(target.journal)
    try:
        if target.journal is not None:
            device, store, state = open_journal(target.journal, block_size)
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    journal_rows = [] if state is None else _journal_totals(state)
    broker_before = None
    try:
        if target.host is not None:
            broker_before = _clear_broker(args, out, target, journal_rows, state, store)
        else:
            if not out.as_json:
                _show_journal(out, target, state, journal_rows)
            if not args.yes:
                _confirm(target, out)
            _format(store, target.journal)
    finally:
        close = getattr(device, "close", None)
        if close is not None:
            close()
        if lock is not None:
            os.close(lock)  # closing the file ends the flock
    cleared = []
    if target.host is not None:
        cleared.append("the broker's retained totals" if broker_before is not None else
                       "no retained totals on the broker")
    if target.journal is not None:
        cleared.append("journal %s formatted" % target.journal)
    if out.as_json:
        out.document({"device_id": target.device_id,
                      "broker": None if target.host is None else "%s:%d" % (target.host, target.port),
                      "topic": None if target.host is None else target.totals_topic,
                      "broker_totals_before": broker_before, "journal": target.journal,
                      "journal_totals_before": [{"module": m, "channel": ch, "import_wh": i, "export_wh": e}
                                                for m, ch, i, e in journal_rows],
                      "cleared": True})
        return 0
    out.line("cleared: %s; the gateway starts from zero at its next boot" % ", ".join(cleared))
    if target.host is None:
        out.line("the broker was left alone: a broker that keeps retained totals for this gateway raises them "
                 "again (give --broker to clear them too)")
    return 0
