"""Day and month totals (gateway.calendar_totals) in virtual time: the UTC seconds are handed in,
the counters are real ledgers, the file is real; a power cut is an exception out of the rename."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import os

import xrt
from gateway import calendar_totals
from gateway.calendar_totals import RETRY_WRITE_S, CalendarTotals
from gateway.ledger import Ledger
from gateway.localtime import parse_tz
from gateway.log import Logger

CET = parse_tz("CET-1CEST,M3.5.0,M10.5.0/3")
HOUR = 3600
DAY = 86400
# local midnights (CET, UTC+1 in winter) as UTC seconds
NOV_29 = 1795906800
NOV_30 = NOV_29 + DAY
DEC_1 = NOV_30 + DAY
DEC_2 = DEC_1 + DAY
DEC_3 = DEC_2 + DAY
DEC_4 = DEC_3 + DAY
LIFETIME_MWH = 5000000000  # 5 MWh already counted: beyond a small int on the 32-bit port


class FakeModule:
    def __init__(self, address, channels, start_mwh=LIFETIME_MWH):
        self.key = "0x%02x" % address
        self.channels = channels
        self.ledger = Ledger(channels) if channels else None
        if self.ledger is not None:
            self.ledger.restore([start_mwh + i for i in range(2 * channels)])

    def add(self, ch, import_wh, export_wh=0):
        meter = self.ledger.meter
        meter.consumption[ch].set_mwh(meter.consumption[ch].mwh() + int(import_wh * 1000))
        meter.exported[ch].set_mwh(meter.exported[ch].mwh() + int(export_wh * 1000))

    def counters(self):
        out = []
        self.ledger.append_totals(out)
        return out

    def rebooted(self):
        """The same module after a restart: a new ledger restored to the counters at power-off."""
        again = FakeModule(int(self.key, 16), self.channels)
        again.ledger = Ledger(self.channels)
        again.ledger.restore(self.counters())
        return again


class PowerCut(Exception):
    pass


class CutAtRename:
    """Stands in for the os module: the rename never happens (the power went)."""

    def __init__(self, error=PowerCut):
        self.error = error
        self.renames = 0

    def rename(self, old, new):
        self.renames += 1
        raise self.error("power cut" if self.error is PowerCut else "no space")


def fresh_path(name):
    path = xrt.tmp_path(name)
    for leftover in (path, path + ".tmp"):
        try:
            os.remove(leftover)
        except OSError:
            pass
    return path


def make(path, lines=None):
    log = Logger(sink=(lines.append if lines is not None else (lambda line: None)))
    return CalendarTotals(path, CET, log)


def view(calendar, module, ch=0, direction="import"):
    return calendar.channel_view(module.key, ch)[direction]


def test_since_boot_until_the_time_is_known():
    path = fresh_path("since_boot.json")
    module = FakeModule(0x50, 2)
    calendar = make(path)
    calendar.update([module], None)
    module.add(0, 1234.5, 2.0)
    module.add(1, 10.0)
    calendar.update([module], None)
    assert calendar.since_boot and calendar.day_start_utc is None
    assert view(calendar, module) == {"today": 1234.5, "yesterday": None, "month": None, "last_month": None}
    assert view(calendar, module, 0, "export")["today"] == 2.0
    assert view(calendar, module, 1)["today"] == 10.0
    assert calendar.writes == 0
    assert xrt.raises(OSError, os.stat, path)  # nothing written without a date


def test_midnight_rolls_today_into_yesterday():
    path = fresh_path("midnight.json")
    module = FakeModule(0x50, 1)
    calendar = make(path)
    calendar.update([module], None)
    calendar.update([module], DEC_1 + 10 * HOUR)
    assert not calendar.since_boot
    assert calendar.day_start_utc == DEC_1 and calendar.yesterday_start_utc == NOV_30
    assert calendar.day_key == 20261201
    assert calendar.writes == 1
    module.add(0, 1000.0, 25.5)
    calendar.update([module], DEC_2 - 1)
    assert view(calendar, module)["today"] == 1000.0 and view(calendar, module)["yesterday"] is None
    calendar.update([module], DEC_2)
    assert calendar.day_key == 20261202
    assert calendar.day_start_utc == DEC_2 and calendar.yesterday_start_utc == DEC_1
    assert view(calendar, module) == {"today": 0.0, "yesterday": 1000.0, "month": 1000.0, "last_month": None}
    assert view(calendar, module, 0, "export") == {"today": 0.0, "yesterday": 25.5, "month": 25.5,
                                                   "last_month": None}
    assert calendar.writes == 2
    module.add(0, 0.04)
    module.add(0, 0.02)
    calendar.update([module], DEC_2 + 60)
    assert view(calendar, module)["today"] == 0.1  # 0.06 Wh, to the tenth


def test_dst_days_are_23_and_25_hours():
    march_28 = 1774652400  # local midnights in CET/CEST
    march_29 = 1774738800
    march_30 = 1774821600
    module = FakeModule(0x50, 1)
    calendar = make(fresh_path("dst_spring.json"))
    calendar.update([module], march_28 + 12 * HOUR)
    calendar.update([module], march_29)
    module.add(0, 230.0)
    calendar.update([module], march_30 - 1)
    assert calendar.day_key == 20260329
    calendar.update([module], march_30)
    assert calendar.day_key == 20260330
    assert calendar.day_start_utc - calendar.yesterday_start_utc == 23 * HOUR
    assert view(calendar, module)["yesterday"] == 230.0

    october_25 = 1792879200
    october_26 = 1792969200
    module = FakeModule(0x51, 1)
    calendar = make(fresh_path("dst_autumn.json"))
    calendar.update([module], october_25 - HOUR)
    calendar.update([module], october_25)
    module.add(0, 250.0)
    calendar.update([module], october_26 - 1)
    assert calendar.day_key == 20261025
    calendar.update([module], october_26)
    assert calendar.day_start_utc - calendar.yesterday_start_utc == 25 * HOUR
    assert view(calendar, module)["yesterday"] == 250.0


def test_month_rolls_over_at_the_first_midnight_of_a_month():
    module = FakeModule(0x50, 1)
    calendar = make(fresh_path("month.json"))
    calendar.update([module], NOV_29 + 10 * HOUR)
    module.add(0, 100.0)
    calendar.update([module], NOV_30 + 5)
    module.add(0, 200.0)
    calendar.update([module], DEC_1 - 1)
    assert view(calendar, module) == {"today": 200.0, "yesterday": 100.0, "month": 300.0, "last_month": None}
    calendar.update([module], DEC_1)
    assert view(calendar, module) == {"today": 0.0, "yesterday": 200.0, "month": 0.0, "last_month": 300.0}
    module.add(0, 7.0)
    calendar.update([module], DEC_2)
    assert view(calendar, module) == {"today": 0.0, "yesterday": 7.0, "month": 7.0, "last_month": 300.0}


def run_day_one(path):
    """A gateway that ran on Dec 1 from 10:00 and counted 300 Wh (ch 0 import) before power-off."""
    module = FakeModule(0x50, 1)
    calendar = make(path)
    calendar.update([module], None)
    calendar.update([module], DEC_1 + 9 * HOUR)
    module.add(0, 300.0)
    calendar.update([module], DEC_1 + 21 * HOUR)
    return module


def boot(path, module_at_power_off, utc_s, since_boot_wh=50.0):
    """The next boot: counters from the journal, 50 Wh metered before the time is known."""
    module = module_at_power_off.rebooted()
    calendar = make(path)
    calendar.update([module], None)
    module.add(0, since_boot_wh)
    calendar.update([module], utc_s)
    return calendar, module


def test_off_over_midnight_closes_the_stored_day_with_the_counters_at_boot():
    path = fresh_path("off_one_night.json")
    module = run_day_one(path)
    calendar, module = boot(path, module, DEC_2 + 8 * HOUR)
    assert view(calendar, module) == {"today": 50.0, "yesterday": 300.0, "month": 350.0, "last_month": None}
    assert calendar.writes == 2


def test_restart_on_the_same_day_goes_on_with_today():
    path = fresh_path("same_day.json")
    module = run_day_one(path)
    calendar, module = boot(path, module, DEC_1 + 22 * HOUR)
    assert view(calendar, module) == {"today": 350.0, "yesterday": None, "month": 350.0, "last_month": None}
    assert calendar.writes == 1  # nothing changed: nothing written


def test_off_for_days_leaves_yesterday_unknown():
    path = fresh_path("off_days.json")
    module = run_day_one(path)
    calendar, module = boot(path, module, DEC_4 + 8 * HOUR)
    assert view(calendar, module) == {"today": 50.0, "yesterday": None, "month": 350.0, "last_month": None}


def test_off_over_the_end_of_a_month():
    path = fresh_path("off_month.json")
    module = FakeModule(0x50, 1)
    calendar = make(path)
    calendar.update([module], NOV_29 + 9 * HOUR)
    module.add(0, 100.0)
    calendar.update([module], NOV_30 + 9 * HOUR)
    module.add(0, 40.0)
    calendar.update([module], NOV_30 + 20 * HOUR)
    again, module_again = boot(path, module, DEC_1 + 7 * HOUR, since_boot_wh=5.0)
    assert view(again, module_again) == {"today": 5.0, "yesterday": 40.0, "month": 5.0, "last_month": 140.0}
    # off from November 30 until December 3: the month closes, the day before is unknown
    later, module_later = boot(fresh_copy(path, "off_month_long.json"), module, DEC_3 + 7 * HOUR, 5.0)
    assert view(later, module_later) == {"today": 5.0, "yesterday": None, "month": 5.0, "last_month": 140.0}


def fresh_copy(path, name):
    """``path`` as it was before the first ``boot`` rewrote it (started Nov 29, rolled to Nov 30)."""
    copy = fresh_path(name)
    module = FakeModule(0x50, 1)
    calendar = make(copy)
    calendar.update([module], NOV_29 + 9 * HOUR)
    module.add(0, 100.0)
    calendar.update([module], NOV_30 + 9 * HOUR)
    return copy


def test_power_cut_during_the_rollover_write_neither_loses_nor_doubles_a_day():
    reference = fresh_path("cut_reference.json")
    module = run_day_one(reference)
    calendar = make(reference)
    calendar.update([module], None)
    calendar.update([module], DEC_2)
    expected = view(calendar, module)
    assert expected == {"today": 0.0, "yesterday": 300.0, "month": 300.0, "last_month": None}

    path = fresh_path("cut.json")
    module = run_day_one(path)
    calendar = make(path)
    calendar.update([module], None)
    calendar.update([module], DEC_1 + 23 * HOUR)
    cut = CutAtRename()
    calendar_totals.os = cut
    try:
        xrt.raises(PowerCut, calendar.update, [module], DEC_2)
    finally:
        calendar_totals.os = os
    assert cut.renames == 1
    os.stat(path + ".tmp")  # the new copy was written but never took the old one's place
    # the old file holds Dec 1; the journal holds the counters at the cut (= at midnight)
    again, module_again = boot(path, module, DEC_2 + 60, since_boot_wh=0.0)
    assert view(again, module_again) == expected
    # the write that went through is not replayed a second time at the next boot
    third, module_third = boot(path, module_again, DEC_2 + 120, since_boot_wh=0.0)
    assert view(third, module_third) == expected


def test_a_failed_write_is_retried_later():
    lines = []
    path = fresh_path("retry.json")
    module = FakeModule(0x50, 1)
    calendar = make(path, lines)
    calendar.update([module], DEC_1 + HOUR)
    calendar_totals.os = CutAtRename(OSError)
    try:
        calendar.update([module], DEC_2)
        calendar.update([module], DEC_2 + RETRY_WRITE_S - 1)
        assert calendar.write_errors == 1
    finally:
        calendar_totals.os = os
    assert calendar.writes == 1
    assert [line for line in lines if "could not write" in line]
    calendar.update([module], DEC_2 + RETRY_WRITE_S)
    assert calendar.writes == 2
    assert make(path).day_key is None  # a new object counts since boot until it is told the time
    restored = make(path)
    restored.update([module], None)
    restored.update([module], DEC_2 + RETRY_WRITE_S + 1)
    assert restored.day_key == 20261202 and restored.writes == 2


def test_a_module_seen_later_gets_its_starts_when_first_seen():
    path = fresh_path("later.json")
    first = FakeModule(0x50, 1)
    late = FakeModule(0x51, 0)  # not answered yet and named nowhere: no counters
    calendar = make(path)
    calendar.update([first, late], DEC_1 + HOUR)
    assert calendar.writes == 1
    assert view(calendar, late) == {"today": None, "yesterday": None, "month": None, "last_month": None}
    late.channels = 2
    late.ledger = Ledger(2)
    late.ledger.restore([700000, 0, 0, 0])
    calendar.update([first, late], DEC_1 + 2 * HOUR)
    assert calendar.writes == 2
    late.add(1, 12.0)
    calendar.update([first, late], DEC_1 + 3 * HOUR)
    assert view(calendar, late, 1) == {"today": 12.0, "yesterday": None, "month": 12.0, "last_month": None}
    assert view(calendar, late, 0)["today"] == 0.0
    calendar.update([first, late], DEC_2)
    assert view(calendar, late, 1)["yesterday"] == 12.0
    assert calendar.writes == 3


def test_writes_only_at_rollovers_and_the_count_survives_restarts():
    path = fresh_path("wear.json")
    module = FakeModule(0x50, 1)
    calendar = make(path)
    calendar.update([module], None)
    for hour in range(10 * 24):
        module.add(0, 1.0)
        calendar.update([module], DEC_1 + hour * HOUR + 30)
    assert calendar.writes == 10  # the first day's start and nine midnights
    assert view(calendar, module)["yesterday"] == 24.0
    again = make(path)
    assert again.writes == 10


def test_a_restore_over_a_wiped_journal_is_no_energy_of_today():
    path = fresh_path("raised.json")
    module = FakeModule(0x50, 1, start_mwh=0)
    calendar = make(path)
    calendar.update([module], None)
    calendar.update([module], DEC_1 + HOUR)
    module.add(0, 3.0)
    before = module.counters()
    module.ledger.restore([LIFETIME_MWH, 0])  # the broker's retained totals are a floor
    calendar.raised(module, before)
    assert view(calendar, module)["today"] == 3.0
    calendar.update([module], DEC_1 + 2 * HOUR)
    assert calendar.writes == 2
    restored = make(path)
    restored.update([module], None)
    restored.update([module], DEC_1 + 3 * HOUR)
    assert view(restored, module)["today"] == 3.0


def test_a_restore_after_a_journal_that_only_lagged_keeps_that_energy_in_today():
    path = fresh_path("lagged.json")
    module = run_day_one(path)  # 300 Wh today, all in the journal
    journal = module.rebooted()
    journal.ledger.meter.consumption[0].set_mwh(journal.ledger.import_mwh(0) - 2000)  # the last 2 Wh not committed
    calendar = make(path)
    calendar.update([journal], DEC_1 + 22 * HOUR)  # the PC's clock: known at once
    assert view(calendar, journal)["today"] == 298.0
    before = journal.counters()
    journal.ledger.restore(module.counters())  # the broker's retained totals had them
    calendar.raised(journal, before)
    assert view(calendar, journal)["today"] == 300.0


def test_counters_that_went_backwards_start_the_day_again():
    lines = []
    path = fresh_path("backwards.json")
    module = run_day_one(path)
    zeroed = FakeModule(0x50, 1, start_mwh=0)  # `rbamp reset-totals` while the gateway was off
    calendar = make(path, lines)
    calendar.update([zeroed], None)
    zeroed.add(0, 4.0)
    calendar.update([zeroed], DEC_1 + 22 * HOUR)
    assert view(calendar, zeroed) == {"today": 4.0, "yesterday": None, "month": 4.0, "last_month": None}
    assert [line for line in lines if "went backwards" in line]
    assert module.key == zeroed.key


def test_a_damaged_file_starts_again():
    for content in ("{not json", '{"version": 1, "writes": 3, "day": 20261302, "month": 202613, "modules": {}}',
                    '{"version": 2}', '[]'):
        path = fresh_path("damaged.json")
        with open(path, "w") as handle:
            handle.write(content)
        lines = []
        module = FakeModule(0x50, 1)
        calendar = make(path, lines)
        assert [line for line in lines if "not usable" in line], content
        calendar.update([module], DEC_1)
        module.add(0, 1.0)
        assert view(calendar, module)["today"] == 1.0
        assert calendar.writes == 1


def test_a_clock_that_jumps_days_ahead_leaves_yesterday_unknown():
    lines = []
    module = FakeModule(0x50, 1)
    calendar = make(fresh_path("jump.json"), lines)
    calendar.update([module], DEC_1 + HOUR)
    module.add(0, 9.0)
    calendar.update([module], DEC_4 + HOUR)  # a resync moved the clock three days on
    assert view(calendar, module) == {"today": 0.0, "yesterday": None, "month": 9.0, "last_month": None}
    assert [line for line in lines if "moved from day 20261201 to day 20261204" in line]
