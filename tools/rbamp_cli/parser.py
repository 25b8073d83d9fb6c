"""The argument parser: every command, its options and the help text that explains the choices.

The bus options, ``--json`` and ``--debug`` are global: accepted before the command
(``rbamp --sim UI2 scan``) as well as after it. argparse copies a subcommand's defaults over what
was parsed before the command, so every global option defaults to "not given" (SUPPRESS) at both
places, the values before the command land in ``GLOBAL_PREFIX`` names, and ``finish()`` merges
them: the value after the command wins, ``--sim`` lists add up, the rest gets its default.
"""

import argparse

from rbamp_cli import cmd_config, cmd_journal, cmd_metering, cmd_module, cmd_reset, cmd_setup, values

DESCRIPTION = "rbamp: talk to rbAmp mains-measurement modules on a Linux I2C bus or on the simulator."

EPILOG = """\
bus:
  --bus N          /dev/i2c-N through smbus2 (pip install 'rbamp[smbus]'). The bus speed is set by
                   the kernel / device tree, not by this program: --freq (default 50000, the
                   speed to keep the bus at) only feeds the bus-time estimates.
  --sim SPEC       simulated modules instead of hardware. SPEC is VARIANT@VERSION[:ADDRESS],
                   VARIANT one of UI1 UI2 UI3 I1 I2 I3, VERSION 1.2 or 1.3 (default 1.3);
                   repeat --sim or separate modules with commas; modules without an address take
                   the free ones from 0x50 up: --sim UI2@1.3,UI1@1.2:0x52
  --load LOAD      what the simulated modules measure: constant:W[,W,W] (per channel, negative =
                   export), household[:SEED[:HOUR]] (the default: a house on ch1 and solar export
                   on ch2), noisy:SIGMA:W[,W,W]
  --sim-clock      real (default: the modules run in wall-clock time, for people watching) or
                   virtual (waiting moves simulated time instantly: period --every 60 --count 3
                   finishes at once; watch then needs --count or --duration)

The bus options, --json and --debug go before or after the command: rbamp --sim UI2 scan.
Channels are numbered ch1, ch2, ch3 as in Home Assistant.

exit codes: 0 ok, 1 runtime error (no module, bus error, bad file...), 2 usage error,
130 Ctrl-C stopped period before its --count (after printing its summary; Ctrl-C ends watch
with its summary and 0), 141 the reader of the output went away (rbamp journal X | head -1).
Errors are one line 'rbamp: error: ...'; --debug shows the traceback instead.

examples:
  rbamp scan --sim UI2@1.3,UI1@1.2
  rbamp read --sim UI2@1.3 --load constant:1000,-300 --json
  rbamp watch --sim UI2@1.3 --load household --count 50
  rbamp period --sim UI2 --sim-clock virtual --every 60 --count 3
  rbamp provision --bus 1 --addr 0x50 --class sct013 --ct 1=SCT-013-030 --ct 2=SCT-013-020 --label mains
  rbamp journal energy.img
  rbamp reset-totals --broker 192.168.1.10 --device-id house --journal .run/energy.d
  rbamp config create config.json --wifi-ssid home --broker 192.168.1.10 --module 0x50:mains
"""


GLOBAL_PREFIX = "before_"
# the global options and what each is when given nowhere
GLOBAL_DEFAULTS = {"bus": None, "sim": None, "load": None, "sim_clock": "real", "freq": 50000,
                   "json": False, "debug": False}
BUS_OPTIONS = ("bus", "sim", "load", "sim_clock", "freq")


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse's own print the whole usage first)."""

    def error(self, message):
        self.exit(2, "rbamp: error: %s (see %s --help)\n" % (message, self.prog))


def _add_bus_arguments(group, prefix="", visible=True):
    def shown(text):
        return text if visible else argparse.SUPPRESS

    group.add_argument("--bus", dest=prefix + "bus", type=values.bus_number, metavar="N", default=argparse.SUPPRESS,
                       help=shown("Linux I2C bus number (/dev/i2c-N)"))
    group.add_argument("--sim", dest=prefix + "sim", type=values.sim_specs, action="append", metavar="SPEC",
                       default=argparse.SUPPRESS, help=shown("simulated module(s): VARIANT@VERSION[:ADDRESS][,...]"))
    group.add_argument("--load", dest=prefix + "load", type=values.load_spec, metavar="LOAD", default=argparse.SUPPRESS,
                       help=shown("simulated load: constant:W[,W,W] | household[:SEED[:HOUR]] | noisy:SIGMA:W[,W,W]"))
    group.add_argument("--sim-clock", dest=prefix + "sim_clock", choices=("real", "virtual"), default=argparse.SUPPRESS,
                       help=shown("simulator time: real (default) or virtual (waits take no real time)"))
    group.add_argument("--freq", dest=prefix + "freq", type=values.frequency, metavar="HZ", default=argparse.SUPPRESS,
                       help=shown("bus clock for estimates (default 50000, the speed to keep the bus at); "
                                  "the kernel sets the real speed"))


def _bus_options():
    parent = argparse.ArgumentParser(add_help=False)
    # one of --bus / --sim, checked in cli.main (argparse would list a nested exclusive group apart)
    _add_bus_arguments(parent.add_argument_group("bus (one of --bus / --sim; see rbamp --help)"))
    return parent


def _common_options():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors")
    return parent


def _addr_option():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--addr", type=values.address, default=0x50, metavar="ADDR",
                        help="module address (default 0x50)")
    return parent


def _json_option():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return parent


def _progress_options(parser):
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--progress", action="store_true", default=None,
                        help="show the waiting progress on stderr even when it is not a terminal")
    choice.add_argument("--no-progress", dest="progress", action="store_false",
                        help="never show the waiting progress")


def build_parser():
    parser = Parser(prog="rbamp", description=DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", dest=GLOBAL_PREFIX + "debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors")
    parser.add_argument("--json", dest=GLOBAL_PREFIX + "json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")
    _add_bus_arguments(parser, GLOBAL_PREFIX, visible=False)  # explained in the epilog
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    common = _common_options()
    bus = _bus_options()
    addr = _addr_option()
    as_json = _json_option()
    raw = argparse.RawDescriptionHelpFormatter

    def command(name, run, help_text, parents, description=None):
        sub = commands.add_parser(name, help=help_text, description=description or help_text,
                                  parents=parents, formatter_class=raw)
        sub.set_defaults(run=run, needs_bus=bus in parents)
        return sub

    command("scan", cmd_module.run_scan, "find the rbAmp modules on the bus and show who they are",
            [common, bus, as_json])
    command("info", cmd_module.run_info, "identity, provisioning and diagnostics of one module",
            [common, bus, addr, as_json])
    command("read", cmd_module.run_read, "one real-time snapshot (voltage, current, power, PF)",
            [common, bus, addr, as_json])

    watch = command("watch", cmd_metering.run_watch, "live view at the module's 5 Hz with import/export totals",
                    [common, bus, addr, as_json],
                    "Live view refreshed at the module's 5 Hz (200 ms windows). Signed power is integrated\n"
                    "into import and export running totals on the host, as the gateway does. Ctrl-C stops.")
    stop = watch.add_mutually_exclusive_group()
    stop.add_argument("--count", type=values.positive_int, metavar="N", help="stop after N refreshes")
    stop.add_argument("--duration", type=values.positive_seconds, metavar="S", help="stop after S seconds")

    period = command("period", cmd_metering.run_period, "latched periods: average power and energy",
                     [common, bus, addr, as_json],
                     "Latch the module's period every --every seconds, --count times, and print each\n"
                     "period's average power and energy and the running totals (with --sim also the\n"
                     "simulator's exact energy). --json prints one JSON object per line.")
    period.add_argument("--every", type=values.positive_seconds, default=60.0, metavar="S",
                        help="period length in seconds (default 60)")
    period.add_argument("--count", type=values.positive_int, default=1, metavar="N",
                        help="number of periods (default 1)")
    _progress_options(period)

    fleet = command("fleet", cmd_metering.run_fleet, "every module on the bus latched together, with totals",
                    [common, bus, as_json],
                    "Scan the bus, then latch every module together (one after another with a shared\n"
                    "settle, or with --general-call one General-Call frame; modules that do not listen\n"
                    "are latched one by one) every --every seconds and print each module's period and\n"
                    "the fleet's totals.")
    fleet.add_argument("--general-call", action="store_true", help="latch with one General-Call frame")
    fleet.add_argument("--group", type=values.group_id, default=0, metavar="G",
                       help="General-Call group (0: all modules)")
    fleet.add_argument("--every", type=values.positive_seconds, default=10.0, metavar="S",
                       help="seconds between latches (default 10)")
    fleet.add_argument("--count", type=values.positive_int, default=1, metavar="N",
                       help="number of latches (default 1)")
    _progress_options(fleet)

    provision = command("provision", cmd_setup.run_provision, "set sensor class, CT models and label; save; verify",
                        [common, bus, addr, as_json],
                        "Read-compare-write: only what differs is written, then saved to the module's\n"
                        "flash (skipped when nothing changed) and verified by reading it back.\n"
                        "CT models: code 1..7 or name; 1 SCT-013-005, 2 -010, 3 -030, 4 -050, 5 -100,\n"
                        "6 -020, 7 -060 (they need sensor class 1, sct013).")
    provision.add_argument("--class", dest="sensor_class", type=values.sensor_class, metavar="CLASS",
                           help="sensor class: 0/unset, 1/sct013, 2/wired, 3/builtin")
    provision.add_argument("--ct", dest="ct", type=values.ct_binding, action="append", default=[],
                           metavar="CH=MODEL",
                           help="CT model for a channel, ch1.. as in Home Assistant: 1=SCT-013-030 (repeatable); "
                                "MODEL alone: every channel")
    provision.add_argument("--label", type=values.label, metavar="TEXT", help="label, up to 8 ASCII characters")

    set_address = command("set-address", cmd_setup.run_set_address, "move a module to another I2C address",
                          [common, bus, as_json],
                          "Two-phase address change (stage, arm, commit, reset), refused when the new\n"
                          "address is taken; afterwards the bus is scanned to show the result.")
    set_address.add_argument("old", type=values.address, metavar="OLD", help="current address")
    set_address.add_argument("new", type=values.address, metavar="NEW", help="new address")

    journal = command("journal", cmd_journal.run_journal, "decode an energy journal image pulled from a board",
                      [common, as_json], cmd_journal.DESCRIPTION)
    journal.add_argument("image", metavar="IMAGE", help="the journal's raw bytes (energy partition, energy.img) or its energy.d folder of block files")
    journal.add_argument("--block-size", type=values.positive_int, default=cmd_journal.default_block_size(),
                         metavar="BYTES", help="erase block size (default %(default)s, the gateway's)")
    journal.add_argument("--modules", type=cmd_journal.module_layout, metavar="ADDR:CH[,...]",
                         help="split the channels per module, in config order: 0x50:2,0x51:1")
    journal.add_argument("--records", type=values.positive_int, default=20, metavar="N",
                         help="show the newest N records (default 20)")
    journal.add_argument("--all", action="store_true", help="show every valid record")

    reset = command("reset-totals", cmd_reset.run_reset_totals, "start a gateway's energy totals from zero",
                    [common, as_json], cmd_reset.DESCRIPTION)
    cmd_reset.add_options(reset)

    config = commands.add_parser("config", help="create or validate a gateway config.json",
                                 description="create or validate a gateway config.json (the gateway's own rules)")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION")
    config_commands.required = True
    validate = config_commands.add_parser("validate", parents=[common, as_json],
                                          help="check a config.json exactly as the gateway does")
    validate.add_argument("path", metavar="PATH")
    validate.set_defaults(run=cmd_config.run_validate, needs_bus=False)
    create = config_commands.add_parser("create", parents=[common, as_json], formatter_class=raw,
                                        help="write a valid config.json from options",
                                        description=cmd_config.CREATE_DESCRIPTION)
    cmd_config.add_create_options(create)
    create.set_defaults(run=cmd_config.run_create, needs_bus=False)
    return parser


def parse(argv=None):
    """The parsed command line with every global option merged (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given_before = []
    for name, default in GLOBAL_DEFAULTS.items():
        before = getattr(args, GLOBAL_PREFIX + name, None)
        if hasattr(args, GLOBAL_PREFIX + name):
            delattr(args, GLOBAL_PREFIX + name)
            given_before.append(name)
        after = getattr(args, name, None)
        if name == "sim":
            value = (before or []) + (after or []) or None
        elif hasattr(args, name):
            value = after
        elif before is not None:
            value = before
        else:
            value = default
        setattr(args, name, value)
    if not args.needs_bus:
        unused = [name for name in given_before if name in BUS_OPTIONS]
        if unused:
            parser.error("%s takes no bus options (%s)" % (
                args.command, ", ".join("--" + name.replace("_", "-") for name in unused)))
    return args
