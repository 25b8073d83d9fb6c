"""Local time from a POSIX TZ string, in integer arithmetic (MicroPython has no time zones).

    rule = parse_tz("CET-1CEST,M3.5.0,M10.5.0/3")   # ValueError with a short reason if bad
    local_time(1796193000, rule)   # (2026, 12, 2, 7, 30, 0, 2, 336, False)
    day_key(1796193000, rule)      # 20261202
    next_midnight_utc(1796193000, rule)              # the UTC second the next local day starts
    format_local(1796193000, rule)                   # "2026-12-02 07:30:00"

Every time argument is an int: seconds since 1970-01-01 UTC (a board whose ``time.time()`` counts
from 2000 converts before calling; that is the time sync's job). Only ints are used, so the
results are exact on a 32-bit single-float port; beyond 2^30 s an int is a long int there (a
small allocation, no loss).

The TZ syntax (POSIX, with the RFC 8536 extension of rule times from -167 to 167 hours):

    std offset [dst [offset] ,start[/time],end[/time]]

- names: three or more letters, or ``<...>`` with letters, digits, ``+`` and ``-``;
- offsets: ``[+|-]hh[:mm[:ss]]``, hours 0..24, counted west of Greenwich (``CET-1`` is UTC+1);
  the DST offset defaults to one hour less than the standard one;
- dates: ``Mm.w.d`` (month 1..12, week 1..5 where 5 is the last, weekday 0..6 from Sunday),
  ``Jn`` (1..365, February 29 never counted), ``n`` (0..365, counting February 29);
- times: local wall-clock time of the transition in the time then in force, default 02:00:00.

A DST name without rules (``EST5EDT``) is refused rather than guessed: the C library's default
rules differ from system to system.

``weekday`` is 0 for Monday and ``yday`` is 1..366, as MicroPython's ``time.localtime`` has them.
"""

_DAY_S = 86400
_MAX_TEXT = 100
_DEFAULT_RULE_TIME_S = 7200


class DateRule:
    """One transition: ``kind`` "M" (month, week, weekday), "J" (Julian 1..365) or "n" (0..365),
    and the local time in seconds (may be negative or beyond a day)."""

    def __init__(self, kind, month, week, weekday, day, time_s):
        self.kind = kind
        self.month = month
        self.week = week
        self.weekday = weekday
        self.day = day
        self.time_s = time_s

    def day_number(self, year):
        """Days since 1970-01-01 of this rule's date in ``year``."""
        if self.kind == "M":
            first = days_from_civil(year, self.month, 1)
            sunday_based = (first + 4) % 7  # 1970-01-01 was a Thursday
            day = first + (self.weekday - sunday_based) % 7 + (self.week - 1) * 7
            length = _month_length(year, self.month)
            while day - first >= length:  # week 5 means the last one
                day -= 7
            return day
        jan1 = days_from_civil(year, 1, 1)
        if self.kind == "J":
            skip_leap = 1 if _is_leap(year) and self.day >= 60 else 0
            return jan1 + self.day - 1 + skip_leap
        return jan1 + self.day


class TzRule:
    """A parsed TZ string. Offsets are seconds east of UTC (local = UTC + offset)."""

    def __init__(self, text, std_name, std_offset_s, dst_name, dst_offset_s, start, end):
        self.text = text
        self.std_name = std_name
        self.std_offset_s = std_offset_s
        self.dst_name = dst_name
        self.dst_offset_s = dst_offset_s
        self.start = start
        self.end = end

    def transitions_utc(self, year):
        """(DST start, DST end) of ``year`` as UTC seconds; None without DST."""
        if self.dst_name is None:
            return None
        start = self.start.day_number(year) * _DAY_S + self.start.time_s - self.std_offset_s
        end = self.end.day_number(year) * _DAY_S + self.end.time_s - self.dst_offset_s
        return start, end

    def is_dst(self, utc_s):
        days = (utc_s + self.std_offset_s) // _DAY_S
        transitions = self.transitions_utc(civil_from_days(days)[0])
        if transitions is None:
            return False
        start, end = transitions
        if start < end:
            return start <= utc_s < end
        # southern hemisphere: DST spans the new year
        return not end <= utc_s < start

    def offset_s(self, utc_s):
        return self.dst_offset_s if self.is_dst(utc_s) else self.std_offset_s


def parse_tz(text):
    """A ``TzRule`` from a POSIX TZ string; ValueError with a short reason on anything else."""
    if type(text) is not str:
        raise ValueError("not a string")
    if not text:
        raise ValueError("empty")
    if len(text) > _MAX_TEXT:
        raise ValueError("longer than %d characters" % _MAX_TEXT)
    if "/" in text and "," not in text:
        # "Europe/Berlin": the gateway has no zone database; the zone file's last line is the rule
        raise ValueError("a zone name, not a rule: the rule is the last line of /usr/share/zoneinfo/<zone>")
    reader = _Reader(text)
    std_name = reader.name("standard time name")
    std_offset = -reader.clock("offset", 24, False)
    dst_name = None
    dst_offset = None
    start = end = None
    if not reader.done():
        dst_name = reader.name("DST name")
        if reader.done() or reader.peek() == ",":
            dst_offset = std_offset + 3600
        else:
            dst_offset = -reader.clock("DST offset", 24, False)
        if reader.done():
            raise ValueError("DST name %s needs rules: ,start[/time],end[/time]" % dst_name)
        reader.expect(",", "',' before the DST start rule")
        start = reader.date_rule("DST start")
        reader.expect(",", "',' before the DST end rule")
        end = reader.date_rule("DST end")
        if not reader.done():
            raise ValueError("unexpected %r after the DST end rule" % reader.rest())
    return TzRule(text, std_name, std_offset, dst_name, dst_offset, start, end)


class _Reader:
    def __init__(self, text):
        self.text = text
        self.pos = 0

    def done(self):
        return self.pos >= len(self.text)

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def rest(self):
        return self.text[self.pos:]

    def expect(self, char, what):
        if self.peek() != char:
            raise ValueError("expected %s at %r" % (what, self.rest()))
        self.pos += 1

    def name(self, what):
        text = self.text
        begin = self.pos
        if self.peek() == "<":
            end = text.find(">", begin)
            if end < 0:
                raise ValueError("%s: '<' without '>'" % what)
            inner = text[begin + 1:end]
            for char in inner:
                if not (_is_letter(char) or _is_digit(char) or char in "+-"):
                    raise ValueError("%s <%s>: only letters, digits, '+' and '-'" % (what, inner))
            self.pos = end + 1
        else:
            while self.pos < len(text) and _is_letter(text[self.pos]):
                self.pos += 1
            inner = text[begin:self.pos]
        if len(inner) < 3:
            if not inner and begin < len(text):
                raise ValueError("%s expected at %r" % (what, text[begin:]))
            raise ValueError("%s %r: three characters at least" % (what, inner))
        return inner

    def number(self, what, digits_max):
        begin = self.pos
        while self.pos < len(self.text) and _is_digit(self.text[self.pos]) and self.pos - begin < digits_max:
            self.pos += 1
        if self.pos == begin:
            raise ValueError("%s: number expected at %r" % (what, self.rest()))
        return int(self.text[begin:self.pos])

    def clock(self, what, max_hours, rule_time):
        """[+|-]hh[:mm[:ss]] in seconds (signed)."""
        sign = 1
        if self.peek() in ("+", "-"):
            sign = -1 if self.peek() == "-" else 1
            self.pos += 1
        hours = self.number(what, 3)
        minutes = seconds = 0
        if self.peek() == ":":
            self.pos += 1
            minutes = self.number(what, 2)
            if self.peek() == ":":
                self.pos += 1
                seconds = self.number(what, 2)
        if hours > max_hours or minutes > 59 or seconds > 59:
            limit = "-167..167 hours" if rule_time else "0..24 hours"
            raise ValueError("%s out of range (%s, minutes and seconds 0..59)" % (what, limit))
        return sign * (hours * 3600 + minutes * 60 + seconds)

    def date_rule(self, what):
        char = self.peek()
        month = week = weekday = day = 0
        if char == "M":
            self.pos += 1
            month = self.number(what, 2)
            self.expect(".", "'.' in %s Mm.w.d" % what)
            week = self.number(what, 1)
            self.expect(".", "'.' in %s Mm.w.d" % what)
            weekday = self.number(what, 1)
            if not (1 <= month <= 12 and 1 <= week <= 5 and 0 <= weekday <= 6):
                raise ValueError("%s: Mm.w.d needs month 1..12, week 1..5, weekday 0..6" % what)
            kind = "M"
        elif char == "J":
            self.pos += 1
            day = self.number(what, 3)
            if not 1 <= day <= 365:
                raise ValueError("%s: Jn needs n in 1..365" % what)
            kind = "J"
        elif char and _is_digit(char):
            day = self.number(what, 3)
            if day > 365:
                raise ValueError("%s: day number needs 0..365" % what)
            kind = "n"
        else:
            raise ValueError("%s: Mm.w.d, Jn or n expected at %r" % (what, self.rest()))
        time_s = _DEFAULT_RULE_TIME_S
        if self.peek() == "/":
            self.pos += 1
            time_s = self.clock("%s time" % what, 167, True)
        return DateRule(kind, month, week, weekday, day, time_s)


def _is_letter(char):
    # ASCII only: CPython's str.isalpha also takes other scripts, MicroPython's does not
    return "A" <= char <= "Z" or "a" <= char <= "z"


def _is_digit(char):
    return "0" <= char <= "9"


def _is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _month_length(year, month):
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_from_civil(year, month, mday):
    """Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years, March-based)."""
    if month <= 2:
        year -= 1
    era = year // 400
    year_of_era = year - era * 400
    march_month = month - 3 if month > 2 else month + 9
    day_of_year = (153 * march_month + 2) // 5 + mday - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def civil_from_days(days):
    """(year, month, mday) of a day number since 1970-01-01 (inverse of days_from_civil)."""
    shifted = days + 719468  # from 0000-03-01
    era = shifted // 146097
    day_of_era = shifted - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    march_month = (5 * day_of_year + 2) // 153
    mday = day_of_year - (153 * march_month + 2) // 5 + 1
    month = march_month + 3 if march_month < 10 else march_month - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, mday


def _split(seconds):
    days = seconds // _DAY_S
    return days, seconds - days * _DAY_S


def local_time(utc_s, rule):
    """(year, month, mday, hour, minute, second, weekday, yday, is_dst) at ``utc_s``."""
    dst = rule.is_dst(utc_s)
    days, second_of_day = _split(utc_s + (rule.dst_offset_s if dst else rule.std_offset_s))
    year, month, mday = civil_from_days(days)
    hour = second_of_day // 3600
    minute = second_of_day // 60 - hour * 60
    weekday = (days + 3) % 7  # Monday 0; 1970-01-01 was a Thursday
    yday = days - days_from_civil(year, 1, 1) + 1
    return year, month, mday, hour, minute, second_of_day % 60, weekday, yday, dst


def local_day_number(utc_s, rule):
    """Days since 1970-01-01 of the local date at ``utc_s``."""
    return (utc_s + rule.offset_s(utc_s)) // _DAY_S


def day_key(utc_s, rule):
    """The local date as an int, e.g. 20261202."""
    year, month, mday = civil_from_days(local_day_number(utc_s, rule))
    return year * 10000 + month * 100 + mday


def month_key(utc_s, rule):
    """The local month as an int, e.g. 202612."""
    year, month, _ = civil_from_days(local_day_number(utc_s, rule))
    return year * 100 + month


def day_start_utc(day_number, rule):
    """The first UTC second of local day ``day_number`` (days since 1970-01-01).

    Usually local 00:00:00; when a transition skips midnight the day starts with the transition,
    and when midnight happens twice the earlier one counts.
    """
    local_midnight = day_number * _DAY_S
    earliest = None
    for offset in (rule.std_offset_s, rule.dst_offset_s):
        if offset is None:
            continue
        candidate = local_midnight - offset
        if rule.offset_s(candidate) == offset and (earliest is None or candidate < earliest):
            earliest = candidate
    if earliest is not None:
        return earliest
    # midnight falls into a gap: the day begins at the transition that jumps over it
    low = local_midnight - max(rule.std_offset_s, rule.dst_offset_s)
    high = local_midnight - min(rule.std_offset_s, rule.dst_offset_s)
    for year in (civil_from_days(day_number - 1)[0], civil_from_days(day_number)[0]):
        for transition in rule.transitions_utc(year) or ():
            if low <= transition <= high and local_day_number(transition, rule) == day_number:
                return transition
    raise ValueError("no start found for day %d in %s" % (day_number, rule.text))


def next_midnight_utc(utc_s, rule):
    """The UTC second at which the local day after the one at ``utc_s`` begins."""
    return day_start_utc(local_day_number(utc_s, rule) + 1, rule)


def format_local(utc_s, rule):
    """Local time for the page: "2026-12-02 07:30:00"."""
    year, month, mday, hour, minute, second = local_time(utc_s, rule)[:6]
    return "%04d-%02d-%02d %02d:%02d:%02d" % (year, month, mday, hour, minute, second)


def format_utc_iso(utc_s):
    """UTC in ISO 8601 for MQTT (Home Assistant's last_reset): "2026-12-01T23:00:00+00:00"."""
    days, second_of_day = _split(utc_s)
    year, month, mday = civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02d+00:00" % (
        year, month, mday, second_of_day // 3600, second_of_day // 60 % 60, second_of_day % 60)
