"""Gateway log: levels, lazy formatting, secret masking, ring of recent lines, exceptions."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from gateway.log import RING_LINE_CHARS, Logger
from rbampsim.clock import VirtualClock

SECRET = "hunter2-secret"


def _logger(level="debug", keep=16):
    lines = []
    clock = VirtualClock()
    log = Logger(level=level, sink=lines.append, clock=clock, keep=keep)
    return log, lines, clock


class _Counted:
    """An argument that records whether the logger turned it into text."""

    def __init__(self):
        self.formatted = 0

    def __str__(self):
        self.formatted += 1
        return "counted"

    def __repr__(self):
        self.formatted += 1
        return "counted"


def test_line_format_and_elapsed_stamp():
    log, lines, clock = _logger()
    log.info("network up")
    clock.advance_ms(12345)
    log.warning("broker %s:%d refused (%s)", "10.0.0.2", 1883, "auth")
    clock.advance_ms(3 * 3600 * 1000 + 7)
    log.error("plain %d%% text", 5)
    assert lines == [
        "0.000 INFO network up",
        "12.345 WARNING broker 10.0.0.2:1883 refused (auth)",
        "10812.352 ERROR plain 5% text",
    ], lines


def test_stamp_keeps_counting_across_the_ticks_wrap():
    # ticks_ms wraps at 2^30 ms (about 12.4 days) on the boards; the stamp must not jump back
    clock = VirtualClock(start_us=((1 << 30) - 1500) * 1000)
    lines = []
    log = Logger(sink=lines.append, clock=clock)
    for _ in range(10):
        clock.advance_ms(400)
        log.info("tick")
    stamps = [int(line.split(" ")[0].replace(".", "")) for line in lines]
    assert stamps == [400 * (k + 1) for k in range(10)], stamps
    # many days: past the point where a plain ticks difference would be ambiguous
    for _ in range(30):
        clock.advance_ms(24 * 3600 * 1000)
        log.info("day")
    assert lines[-1].startswith("%d.000 INFO" % (4 + 30 * 24 * 3600)), lines[-1]


def test_levels_filter_and_skip_formatting_below_the_level():
    log, lines, _clock = _logger(level="warning")
    arg = _Counted()
    log.debug("value %s", arg)
    log.info("value %r", arg)
    assert lines == [] and arg.formatted == 0, "below the level nothing is formatted"
    log.warning("value %s", arg)
    log.error("value %s", arg)
    assert arg.formatted == 2 and [line.split(" ")[1] for line in lines] == ["WARNING", "ERROR"]
    log.set_level("DEBUG")
    log.debug("now %s", "visible")
    assert lines[-1].endswith("DEBUG now visible")
    assert log.enabled_for("debug") and log.enabled_for("error")
    log.set_level("error")
    assert not log.enabled_for("warning")
    log.warning("hidden")
    assert len(lines) == 3


def test_bad_level_names_are_refused():
    exc = xrt.raises(ValueError, Logger, "verbose")
    assert "debug, info, warning, error" in str(exc) and "verbose" in str(exc)
    log, _lines, _clock = _logger()
    exc = xrt.raises(ValueError, log.set_level, 3)
    assert "log level must be one of" in str(exc)
    assert log.enabled_for("debug"), "a refused level leaves the old one"


def test_a_broken_format_or_sink_never_raises():
    log, lines, _clock = _logger()
    log.info("%d items", "many")
    log.info("%s and %s", "one")
    assert "%d items" in lines[0] and "many" in lines[0]
    assert "%s and %s" in lines[1] and "one" in lines[1]

    def refusing(line):
        raise OSError(5)

    log.sink = refusing
    log.error("console gone")
    assert log.dropped == 1
    assert log.recent(1)[0].endswith("ERROR console gone"), "the ring keeps what the sink lost"


def test_secrets_are_masked_in_messages_arguments_and_ring():
    log, lines, _clock = _logger()
    log.add_secret(SECRET)
    log.add_secret(None)
    log.add_secret("")
    log.info("connecting with password %s", SECRET)
    log.info("config %r", {"mqtt": {"password": SECRET}})
    log.info("payload %s", '{"password": "%s"}' % SECRET)
    log.info(SECRET + " at the start, " + SECRET + " twice")
    assert lines[0].endswith("INFO connecting with password ***"), lines[0]
    assert lines[3].endswith("INFO *** at the start, *** twice"), lines[3]
    for line in lines + log.recent(16):
        assert SECRET not in line, line
    assert "'***'" in lines[1] and '"***"' in lines[2]
    # an empty secret must not mask anything
    assert "connecting with password" in lines[0]


def test_secrets_are_masked_in_their_escaped_forms_too():
    log, lines, _clock = _logger()
    tricky = 'pa"ss\\wo\'rd'
    log.add_secret(tricky)
    log.info("raw %s", tricky)
    log.info("repr %r", tricky)
    log.info("in a dict %r", {"password": tricky})
    import json

    log.info("json %s", json.dumps({"password": tricky}))
    for line in lines:
        assert tricky not in line, line
        assert "wo\\'rd" not in line and 'pa\\"ss' not in line, line
        assert "***" in line, line


def test_overlapping_secrets_mask_the_longer_first():
    log, lines, _clock = _logger()
    log.add_secret("abc")
    log.add_secret("abcdef-long")
    log.info("x abcdef-long y abc z")
    assert lines[0].endswith("INFO x *** y *** z"), lines[0]
    log.add_secret(12345678)   # numbers are secrets too (a numeric password typed without quotes)
    log.info("pin %d", 12345678)
    assert lines[1].endswith("INFO pin ***"), lines[1]


def test_recent_lines_ring():
    log, _lines, _clock = _logger(keep=4)
    assert log.recent(3) == []
    for k in range(3):
        log.info("line %d", k)
    assert [line.split(" ", 2)[2] for line in log.recent(10)] == ["line 0", "line 1", "line 2"]
    for k in range(3, 10):
        log.info("line %d", k)
    assert [line.split(" ", 2)[2] for line in log.recent(10)] == ["line 6", "line 7", "line 8", "line 9"]
    assert [line.split(" ", 2)[2] for line in log.recent(2)] == ["line 8", "line 9"]
    assert log.recent(0) == [] and log.recent(-1) == []
    # long lines are cut in the ring only (after masking, so no half secret can remain)
    log.add_secret(SECRET)
    long_text = "x" * (RING_LINE_CHARS - 20) + SECRET + "y" * 100
    log.info("%s", long_text)
    kept = log.recent(1)[0]
    assert len(kept) == RING_LINE_CHARS and SECRET not in kept and "***" in kept
    assert _lines[-1].endswith("y" * 100) and SECRET not in _lines[-1]
    # filtered lines never reach the ring
    log.set_level("error")
    log.info("hidden")
    assert log.recent(1)[0] == kept


def _fail_deep(secret):
    raise ValueError("broker said no to " + secret)


def _fail_outer(secret):
    _fail_deep(secret)


def test_exception_logs_type_text_and_traceback_masked():
    log, lines, _clock = _logger(level="error")
    log.add_secret(SECRET)
    try:
        _fail_outer(SECRET)
    except ValueError as exc:
        log.exception("publish failed", exc)
    assert lines[0] == "0.000 ERROR publish failed: ValueError: broker said no to ***", lines[0]
    text = "\n".join(lines)
    assert "_fail_outer" in text and "_fail_deep" in text, text
    assert "Traceback" in text
    for line in lines + log.recent(16):
        assert SECRET not in line, line
        assert line.startswith("0.000 ERROR "), line


def test_a_long_traceback_does_not_flush_the_ring():
    log, lines, _clock = _logger(keep=12)
    for k in range(4):
        log.info("context %d", k)

    def recurse(depth):
        if depth == 0:
            raise RuntimeError("deep")
        recurse(depth - 1)

    try:
        recurse(20)
    except RuntimeError as exc:
        log.exception("crash", exc)
    ring = log.recent(12)
    # the sink gets every traceback line (CPython folds repeated frames, MicroPython lists all 21)
    assert len(lines) >= 4 + 1 + 10, lines
    # the ring: the context, the head line and only the innermost 6 traceback lines
    assert len(ring) == 4 + 1 + 6, ring
    assert [line.split(" ", 2)[2] for line in ring[:4]] == ["context 0", "context 1", "context 2", "context 3"]
    assert ring[4].endswith("ERROR crash: RuntimeError: deep")
    assert ring[-1].endswith("RuntimeError: deep") and lines[-1] == ring[-1]


def test_default_clock_and_sink_work_on_every_runtime():
    log = Logger()
    log.debug("not printed")
    log.info("printed by print()")
    stamp = log.recent(1)[0].split(" ")[0]
    seconds, millis = stamp.split(".")
    assert int(seconds) >= 0 and len(millis) == 3
    assert log.recent(5)[-1].endswith("INFO printed by print()") and len(log.recent(5)) == 1
