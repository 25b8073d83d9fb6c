"""Entry point: parse, open the bus, run one command, turn errors into one line and an exit code."""

import os
import re
import sys

from rbamp_cli.errors import CliError, UsageError
from rbamp_cli.output import Output

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a program that SIGPIPE ended
# where the driver names the module in an RbAmpError's text: " (module 0x60)" at its end
_MODULE_SUFFIX = re.compile(r" \((module 0x[0-9A-F]{2}(, register 0x[0-9A-F]{2})?)\)$")


def _message(exc):
    """One line for the user: an OSError's text without the ``[Errno n]`` prefix."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename:
            text = "%s: %s" % (exc.filename, text)
        found = _MODULE_SUFFIX.search(text)
        if found:  # the module first: the text itself may end in parentheses of its own
            text = "%s: %s" % (found.group(1), text[:found.start()])
        return text
    text = str(exc)
    return text if text else type(exc).__name__


def _quiet_stdout(out):
    """The reader went away (``rbamp journal X | head -1``): end quietly as other tools do.
    Python flushes stdout once more at exit, which would complain again, so it goes to devnull."""
    if out is not sys.stdout:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # no file descriptor behind stdout (embedded use): nothing will flush to a pipe


def _user_errors():
    """Exceptions that mean the user's input or setup is wrong, not that this program has a bug."""
    from gateway.store import JournalError

    return (CliError, OSError, ValueError, JournalError)


def main(argv=None, out=None, err=None, session=None):
    """Run one command; return its exit code. ``session`` (tests) replaces the bus the options name,
    so several commands can act on the same simulated modules."""
    from rbamp_cli.parser import parse

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        args = parse(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = args.debug
    output = Output(out, err, as_json=args.json, progress=getattr(args, "progress", None))
    opened = None
    try:
        if args.needs_bus and session is None:
            if args.bus is None and not args.sim:
                raise UsageError("choose the bus: --bus N (e.g. 1 on a Raspberry Pi) or --sim UI2@1.3")
            if args.bus is not None and args.sim:
                raise UsageError("--bus and --sim exclude each other: a real bus or the simulator")
            if args.bus is not None and (args.load is not None or args.sim_clock != "real"):
                raise UsageError("--load and --sim-clock only apply to --sim")
            from rbamp_cli import buses

            opened = session = buses.open_session(args)
        return args.run(args, output, session) or EXIT_OK
    except BrokenPipeError:
        _quiet_stdout(out)
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        output.end_progress()
        err.write("rbamp: interrupted\n")
        return EXIT_INTERRUPTED
    except _user_errors() as exc:
        if debug:
            raise
        output.end_progress()
        err.write("rbamp: error: %s\n" % _message(exc))
        err.flush()
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    finally:
        if opened is not None:
            opened.close()
