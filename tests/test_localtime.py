RUNTIMES = ("cpython", "mpy64", "mpy32")

import xrt
from gateway.localtime import (day_key, day_start_utc, format_local, format_utc_iso, local_day_number, local_time,
                               month_key, next_midnight_utc, parse_tz)

# Transition instants below are the published ones (EU: last Sunday of March/October at 01:00 UTC;
# US: second Sunday of March / first of November at 02:00 local; New South Wales: first Sunday of
# October / April); they are written as UTC seconds.
CET = "CET-1CEST,M3.5.0,M10.5.0/3"
US_EAST = "EST5EDT,M3.2.0,M11.1.0"
SYDNEY = "AEST-10AEDT,M10.1.0,M4.1.0/3"
HOUR = 3600
DAY = 86400


def _clock(utc_s, rule):
    return local_time(utc_s, rule)[:6] + (local_time(utc_s, rule)[8],)


def test_cet_spring_forward_and_fall_back():
    rule = parse_tz(CET)
    spring = 1774746000  # 2026-03-29 01:00 UTC
    assert _clock(spring - 1, rule) == (2026, 3, 29, 1, 59, 59, False)
    assert _clock(spring, rule) == (2026, 3, 29, 3, 0, 0, True)
    autumn = 1792890000  # 2026-10-25 01:00 UTC
    assert _clock(autumn - 1, rule) == (2026, 10, 25, 2, 59, 59, True)
    assert _clock(autumn, rule) == (2026, 10, 25, 2, 0, 0, False)
    assert rule.transitions_utc(2026) == (spring, autumn)


def test_cet_days_are_23_and_25_hours_long_at_the_transitions():
    rule = parse_tz(CET)
    march_28_start = 1774652400  # 2026-03-28 00:00 CET
    march_29_start = next_midnight_utc(march_28_start, rule)
    march_30_start = next_midnight_utc(march_29_start, rule)
    assert march_29_start - march_28_start == 24 * HOUR
    assert march_30_start - march_29_start == 23 * HOUR
    assert march_30_start == 1774821600
    october_25_start = 1792879200  # 2026-10-25 00:00 CEST
    october_26_start = next_midnight_utc(october_25_start + 5 * HOUR, rule)
    assert october_26_start - october_25_start == 25 * HOUR
    assert october_26_start == 1792969200
    assert day_key(october_26_start - 1, rule) == 20261025
    assert day_key(october_26_start, rule) == 20261026


def test_us_eastern_transitions():
    rule = parse_tz(US_EAST)
    spring = 1772953200  # 2026-03-08 07:00 UTC, 02:00 EST
    assert _clock(spring - 1, rule) == (2026, 3, 8, 1, 59, 59, False)
    assert _clock(spring, rule) == (2026, 3, 8, 3, 0, 0, True)
    autumn = 1793512800  # 2026-11-01 06:00 UTC, 02:00 EDT
    assert _clock(autumn - 1, rule) == (2026, 11, 1, 1, 59, 59, True)
    assert _clock(autumn, rule) == (2026, 11, 1, 1, 0, 0, False)
    # the evening before New Year's Day in UTC is still the old year in New York
    assert day_key(1798761600 - 1, rule) == 20261231
    assert month_key(1798761600 + 4 * HOUR, rule) == 202612
    assert month_key(1798761600 + 5 * HOUR, rule) == 202701


def test_southern_hemisphere_dst_spans_the_new_year():
    rule = parse_tz(SYDNEY)
    april_end = 1775318400  # 2026-04-04 16:00 UTC, 03:00 AEDT
    assert _clock(april_end - 1, rule) == (2026, 4, 5, 2, 59, 59, True)
    assert _clock(april_end, rule) == (2026, 4, 5, 2, 0, 0, False)
    october_start = 1791043200  # 2026-10-03 16:00 UTC, 02:00 AEST
    assert _clock(october_start - 1, rule) == (2026, 10, 4, 1, 59, 59, False)
    assert _clock(october_start, rule) == (2026, 10, 4, 3, 0, 0, True)
    new_year_utc = 1798761600  # 2027-01-01 00:00 UTC is 11:00 AEDT
    assert _clock(new_year_utc, rule) == (2027, 1, 1, 11, 0, 0, True)
    assert _clock(new_year_utc - 12 * HOUR, rule) == (2026, 12, 31, 23, 0, 0, True)
    assert day_key(new_year_utc - 12 * HOUR, rule) == 20261231


def test_fixed_offsets_without_dst():
    tehran = parse_tz("<+0330>-3:30")
    assert tehran.std_name == "+0330" and tehran.dst_name is None
    assert _clock(1796193000, tehran) == (2026, 12, 2, 10, 0, 0, False)
    utc = parse_tz("UTC0")
    assert _clock(1796193000, utc) == (2026, 12, 2, 6, 30, 0, False)
    assert next_midnight_utc(1796193000, utc) == 1796256000
    marquesas = parse_tz("<-0930>9:30")
    assert _clock(1796193000, marquesas) == (2026, 12, 1, 21, 0, 0, False)
    assert next_midnight_utc(1796193000, marquesas) == 1796193000 + 3 * HOUR
    plus_sign = parse_tz("EST+5")
    assert _clock(1796193000, plus_sign)[:4] == (2026, 12, 2, 1)


def test_julian_rules_skip_february_29_and_zero_based_rules_count_it():
    skip = parse_tz("AAA0BBB,J60/0,J300/0")  # J60 is March 1 in every year
    assert _clock(1803859200, skip)[:4] + (_clock(1803859200, skip)[6],) == (2027, 3, 1, 1, True)
    assert _clock(1803859200 - 1, skip)[6] is False  # 2027-02-28 23:59:59
    assert _clock(1835481600, skip)[:4] + (_clock(1835481600, skip)[6],) == (2028, 3, 1, 1, True)
    assert _clock(1835481600 - 1, skip)[6] is False  # 2028-02-29 23:59:59: not yet
    count = parse_tz("AAA0BBB,59/0,300/0")  # day 59 from 0: March 1, or February 29 in a leap year
    assert _clock(1803859200 - 1, count)[6] is False
    assert _clock(1803859200, count)[6] is True
    assert _clock(1835395200 - 1, count)[6] is False  # 2028-02-28 23:59:59
    assert _clock(1835395200, count)[:4] == (2028, 2, 29, 1)
    assert _clock(1835395200, count)[6] is True


def test_rule_times_beyond_a_day_and_negative_ones():
    # Chile: DST starts at 24:00 on the first Saturday of September, so that Sunday has no midnight
    santiago = parse_tz("<-04>4<-03>,M9.1.6/24,M4.1.6/24")
    saturday_start = 1788580800  # 2026-09-05 00:00 -04
    sunday_start = next_midnight_utc(saturday_start + 12 * HOUR, santiago)
    assert sunday_start == 1788667200
    assert _clock(sunday_start, santiago) == (2026, 9, 6, 1, 0, 0, True)
    assert next_midnight_utc(sunday_start, santiago) - sunday_start == 23 * HOUR
    assert day_start_utc(local_day_number(sunday_start, santiago), santiago) == sunday_start
    # Greenland: transitions at -1:00 and 0:00 local
    nuuk = parse_tz("<-02>2<-01>,M3.5.0/-1,M10.5.0/0")
    assert nuuk.transitions_utc(2026) == (1774746000, 1792890000)


def test_negative_dst_winter_time_as_in_ireland():
    dublin = parse_tz("IST-1GMT0,M10.5.0,M3.5.0/1")
    assert _clock(1796193000, dublin) == (2026, 12, 2, 6, 30, 0, True)
    assert _clock(1783000000, dublin)[3] == (1783000000 % DAY) // HOUR + 1


def test_weekday_yday_and_far_dates():
    utc = parse_tz("UTC0")
    assert local_time(1861876800, utc) == (2028, 12, 31, 12, 0, 0, 6, 366, False)
    assert local_time(1796193000, utc)[6:8] == (2, 336)
    assert local_time(0, utc) == (1970, 1, 1, 0, 0, 0, 3, 1, False)
    assert local_time(4107542400, utc) == (2100, 3, 1, 0, 0, 0, 0, 60, False)
    assert day_key(4107542400 - 1, utc) == 21000228  # 2100 is not a leap year


def test_formatting():
    rule = parse_tz(CET)
    assert format_local(1796193000, rule) == "2026-12-02 07:30:00"
    assert format_local(1784000000, rule) == "2026-07-14 05:33:20"
    assert format_utc_iso(1796193000) == "2026-12-02T06:30:00+00:00"
    assert format_utc_iso(1796193000 - 1) == "2026-12-02T06:29:59+00:00"


def test_bad_strings_are_refused_with_a_reason():
    cases = [
        ("", "empty"),
        ("CET", "number expected"),
        ("CET-1CEST", "needs rules"),
        ("UT0", "three characters"),
        ("CET-25", "out of range"),
        ("CET-1:60", "out of range"),
        ("CET-1CEST,M13.5.0,M10.5.0", "month 1..12"),
        ("CET-1CEST,M3.6.0,M10.5.0", "week 1..5"),
        ("CET-1CEST,M3.5.7,M10.5.0", "weekday 0..6"),
        ("CET-1CEST,M3.5.0", "DST end"),
        ("CET-1CEST,M3.5.0,M10.5.0/168", "out of range"),
        ("CET-1CEST,J0,J300", "1..365"),
        ("CET-1CEST,366,300", "0..365"),
        ("CET-1CEST,M3.5.0,M10.5.0x", "unexpected"),
        ("<+03", "without '>'"),
        ("<+0 3>-3", "only letters"),
        ("Europe/Berlin", "a zone name"),
        (":Europe/Berlin", "a zone name"),
        ("cet -1", "number expected"),
        ("CÉT-1", "three characters"),
        ("X" * 101, "longer than"),
    ]
    for text, reason in cases:
        exc = xrt.raises(ValueError, parse_tz, text)
        assert reason in str(exc), (text, str(exc))
    assert "not a string" in str(xrt.raises(ValueError, parse_tz, 1))


def test_agrees_with_the_system_time_zone_database():
    if xrt.is_micropython():
        raise xrt.Skip("zoneinfo is CPython's")
    import datetime
    import random
    import zoneinfo

    zones = {CET: "Europe/Berlin", US_EAST: "America/New_York", SYDNEY: "Australia/Sydney",
             "<-04>4<-03>,M9.1.6/24,M4.1.6/24": "America/Santiago", "IST-1GMT0,M10.5.0,M3.5.0/1": "Europe/Dublin",
             "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45": "Pacific/Chatham"}
    chooser = random.Random(16)
    for text, name in zones.items():
        try:
            zone = zoneinfo.ZoneInfo(name)
        except zoneinfo.ZoneInfoNotFoundError:
            raise xrt.Skip("no time zone database on this machine")
        rule = parse_tz(text)
        for _ in range(3000):
            utc_s = chooser.randrange(1767225600, 1767225600 + 3 * 365 * DAY)  # 2026..2028
            wall = datetime.datetime.fromtimestamp(utc_s, zone)
            expected = (wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, wall.weekday(),
                        wall.timetuple().tm_yday)
            assert local_time(utc_s, rule)[:8] == expected, (text, utc_s)
            # the next day starts at the first second whose local date is the next one
            start = next_midnight_utc(utc_s, rule)
            next_date = wall.date() + datetime.timedelta(days=1)
            assert datetime.datetime.fromtimestamp(start, zone).date() == next_date, (text, utc_s)
            assert datetime.datetime.fromtimestamp(start - 1, zone).date() == wall.date(), (text, utc_s)
