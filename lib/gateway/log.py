"""Gateway log: levels, lazy %-formatting, secret masking and a small ring of recent lines.

::

    from gateway.log import Logger

    log = Logger(level="info")          # sink=print; clock: any object with ticks_ms()/ticks_diff()
    log.add_secret(cfg["mqtt"]["password"])
    log.info("connected to %s:%d", host, port)
    log.exception("publish failed", exc)
    log.recent(5)                       # the last lines, oldest first (for the status topic)

A line is ``"<seconds since start> <LEVEL> <message>"``, e.g. ``"12.345 INFO network up"``.
Masking happens after formatting, so a secret never leaves the logger whichever argument or
exception text carried it; every sink and the ring only ever see masked lines.
"""

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}
MASK = "***"
RING_LINE_CHARS = 240     # a ring entry is for a glance on the status topic, not a full dump
TRACEBACK_RING_LINES = 6  # one crash must not push every earlier line out of the ring


def level_number(name):
    if type(name) is not str or name.lower() not in LEVELS:
        raise ValueError("log level must be one of debug, info, warning, error (got %r)" % (name,))
    return LEVELS[name.lower()]


class _DefaultClock:
    """time.ticks_ms on MicroPython; a monotonic millisecond count on CPython."""

    def __init__(self):
        import time

        self._time = time
        self._wraps = hasattr(time, "ticks_ms")

    def ticks_ms(self):
        if self._wraps:
            return self._time.ticks_ms()
        return int(self._time.monotonic() * 1000)  # pyright: ignore[reportAttributeAccessIssue]  # CPython only

    def ticks_diff(self, new, old):
        if self._wraps:
            return self._time.ticks_diff(new, old)
        return new - old


class Logger:
    def __init__(self, level="info", sink=print, clock=None, keep=16):
        self.level = level_number(level)
        self.sink = sink
        self.clock = clock if clock is not None else _DefaultClock()
        self.dropped = 0  # lines the sink refused (console gone); the ring still has them
        self._secrets = []
        self._ring = [None] * keep  # type: list[str | None]
        self._ring_next = 0
        self._ring_count = 0
        self._last_ms = self.clock.ticks_ms()
        self._elapsed_ms = 0

    def set_level(self, level):
        self.level = level_number(level)

    def enabled_for(self, level):
        """For callers whose arguments are costly to compute at all."""
        return level_number(level) >= self.level

    def add_secret(self, value):
        """Mask ``value`` in every later line, also as it appears inside repr() or JSON text."""
        if value is None:
            return
        text = value if type(value) is str else str(value)
        if not text:
            return  # masking "" would put *** between every character
        import json

        for variant in (text, repr(text)[1:-1], json.dumps(text)[1:-1]):
            if variant and variant not in self._secrets:
                self._secrets.append(variant)
        # a secret that contains another must be masked first, or its remainder would show
        self._secrets.sort(key=len, reverse=True)

    def debug(self, fmt, *args):
        if self.level <= DEBUG:
            self._emit(DEBUG, fmt, args)

    def info(self, fmt, *args):
        if self.level <= INFO:
            self._emit(INFO, fmt, args)

    def warning(self, fmt, *args):
        if self.level <= WARNING:
            self._emit(WARNING, fmt, args)

    def error(self, fmt, *args):
        if self.level <= ERROR:
            self._emit(ERROR, fmt, args)

    def exception(self, msg, exc):
        """An ERROR line with the exception's type and text, followed by its traceback."""
        head = "%s: %s: %s" % (msg, type(exc).__name__, exc)
        lines = _traceback_lines(exc)
        self._emit(ERROR, head, ())
        first_in_ring = len(lines) - TRACEBACK_RING_LINES
        for index in range(len(lines)):
            self._emit(ERROR, "  " + lines[index], (), index >= first_in_ring)

    def recent(self, n):
        """The last ``n`` lines kept (at most the ring's size), oldest first."""
        count = min(n, self._ring_count)
        size = len(self._ring)
        out = []
        for back in range(count, 0, -1):
            out.append(self._ring[(self._ring_next - back) % size])
        return out

    def mask(self, text):
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def _emit(self, level, fmt, args, keep=True):
        if args:
            try:
                message = fmt % args
            except Exception:  # a wrong format string must not turn a log call into a crash
                message = "%s %% %r" % (fmt, args)
        else:
            message = fmt if type(fmt) is str else str(fmt)
        line = self.mask("%s %s %s" % (self._stamp(), _NAMES[level], message))
        if keep and len(self._ring):
            self._ring[self._ring_next] = line[:RING_LINE_CHARS]
            self._ring_next = (self._ring_next + 1) % len(self._ring)
            if self._ring_count < len(self._ring):
                self._ring_count += 1
        try:
            self.sink(line)
        except Exception:
            self.dropped += 1

    def _stamp(self):
        # accumulate differences so the stamp keeps counting past the ticks wrap (2^30 ms on boards)
        now = self.clock.ticks_ms()
        step = self.clock.ticks_diff(now, self._last_ms)
        if step > 0:
            self._elapsed_ms += step
        self._last_ms = now
        return "%d.%03d" % (self._elapsed_ms // 1000, self._elapsed_ms % 1000)


def _traceback_lines(exc):
    import sys

    if hasattr(sys, "print_exception"):
        import io

        buffer = io.StringIO()
        # the stubs type the file as their IOBase_mp and leave out StringIO.getvalue, both wrongly
        sys.print_exception(exc, buffer)  # pyright: ignore[reportArgumentType]
        text = buffer.getvalue()  # pyright: ignore[reportAttributeAccessIssue]
    else:
        import traceback

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return [line for line in text.split("\n") if line]
