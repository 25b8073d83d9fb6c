"""Energy per local day and month (today, yesterday, this month, last month) from the lifetime
counters, with the day and month starts kept in a small file across restarts.

    from gateway.localtime import parse_tz

    calendar = CalendarTotals(board.path("calendar.json"), parse_tz(cfg["tz"]), log)
    calendar.update(metering.modules, None)           # at boot, before metering counts anything
    ...
    calendar.update(metering.modules, timesync.utc_now())   # every round (None until synced)
    calendar.channel_view("0x50", 0)   # {"import": {"today": 812.4, "yesterday": 9650.0,
                                       #  "month": 10462.4, "last_month": None}, "export": {...}}
    calendar.since_boot                # True until the clock was first known
    calendar.day_start_utc, calendar.yesterday_start_utc   # for Home Assistant's last_reset

Input: metering's modules (``.key``, ``.ledger`` with ``append_totals``, ``import_mwh(ch)``,
``export_mwh(ch)``, ``.channels``); counters are integer mWh in the journal's order
(``[import, export]`` per channel). Nothing here reads the clock or the bus.

Rules:

- Until the first call with a time, "today" is the energy since boot (``since_boot``); yesterday
  and the months are unknown (None). A board without time stays there.
- A day ends at local midnight (``gateway.localtime``: 23- and 25-hour days at DST changes; a
  midnight a transition skips ends the day at the transition). A month ends at the first local
  midnight of the next month. At the rollover the day's energy becomes yesterday's and the
  counters at that instant are the new day's start.
- At boot the counters come from the journal, as they were at power-off. Energy up to then
  belongs to the day stored in the file: when the first known time falls on that day, today goes
  on from the stored start; on the next day the counters at boot close the stored day
  (yesterday); later, yesterday is unknown. Months alike. Energy metered between boot and the
  first known time counts for the day of that time.
- A module seen for the first time (or with another channel count) starts its day and month
  where its counters are; its yesterday and last month are unknown.
- Counters that went backwards (a reset of the totals) restart the day and month at their new
  value.

The file (JSON, a few hundred bytes) is written only at a rollover, when a module gets its first
start, and at the first known time when that changed anything: about once a day, not per
sample. ``writes`` counts every write ever made (kept in the file, shown for flash wear). Each
write goes to ``<path>.tmp`` and is renamed over the file, so a power cut leaves the old file or
the new one, never a mix. Replaying a rollover from the old file gives the same result as the
lost write would have: the journal's counters at boot are the counters at the cut.

File format::

    {"version": 1, "writes": 12, "day": 20261202, "month": 202612,
     "modules": {"0x50": {"day": [mWh...], "month": [mWh...],
                          "yesterday": [mWh...] or null, "last_month": [mWh...] or null}}}

``day``/``month`` in a module entry are the counters at the start of the stored day and month;
``yesterday``/``last_month`` the energy of those periods.
"""

import json
import os

from gateway import localtime

FORMAT_VERSION = 1
RETRY_WRITE_S = 600  # a write that failed is tried again after this long

# channel_view keys
TODAY = "today"
YESTERDAY = "yesterday"
MONTH = "month"
LAST_MONTH = "last_month"
IMPORT = "import"
EXPORT = "export"

_DAY = "day"
_MONTH = "month"
_YESTERDAY = "yesterday"
_LAST_MONTH = "last_month"


def _day_key(day_number):
    year, month, mday = localtime.civil_from_days(day_number)
    return year * 10000 + month * 100 + mday


def _day_number(day_key):
    return localtime.days_from_civil(day_key // 10000, day_key // 100 % 100, day_key % 100)


def _month_key(day_number):
    year, month, _ = localtime.civil_from_days(day_number)
    return year * 100 + month


def _next_month_key(month_key):
    year, month = month_key // 100, month_key % 100
    return (year + 1) * 100 + 1 if month == 12 else month_key + 1


def _difference(now, start):
    return [now[i] - start[i] for i in range(len(now))]


def _shifted(start, jump, floor):
    """``start`` raised by ``jump`` where it grew, and (with ``floor``) where ``start`` was not
    below ``floor``."""
    out = []
    for i in range(len(start)):
        moves = jump[i] > 0 and (floor is None or start[i] >= floor[i])
        out.append(start[i] + jump[i] if moves else start[i])
    return out


def _counters(ledger):
    out = []
    ledger.append_totals(out)
    return out


def _valid_counters(value, length):
    if not isinstance(value, list) or len(value) != length:
        return False
    for item in value:
        if type(item) is not int or item < 0:
            return False
    return True


class CalendarTotals:
    def __init__(self, path, rule, log):
        self.path = path
        self.rule = rule
        self.log = log
        self.since_boot = True
        self.writes = 0
        self.write_errors = 0
        self._day = None    # local day number of the current (or stored) day
        self._month = None  # month key of the current (or stored) month
        self._entries = {}  # module key -> {"day", "month", "yesterday", "last_month"}
        self._boot = {}     # module key -> counters when first seen at this boot
        self._ledgers = {}  # module key -> ledger, for channel_view
        self._settled = {}  # module key -> True once its entry belongs to the current day
        self._next_midnight = None
        self._day_start = None
        self._retry_at = None
        self._dirty = False  # a change to write at the next update with a time
        self._load()

    # ------------------------------------------------------------------ the file
    def _load(self):
        try:
            with open(self.path) as handle:
                text = handle.read()
        except OSError:
            return  # no file yet: the first known time starts the day
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
                raise ValueError("not a version %d calendar file" % FORMAT_VERSION)
            day = data["day"]
            month = data["month"]
            writes = data["writes"]
            modules = data["modules"]
            if type(day) is not int or type(month) is not int or type(writes) is not int or not isinstance(
                    modules, dict):
                raise ValueError("day, month, writes or modules of the wrong type")
            day_number = _day_number(day)
            if _day_key(day_number) != day or _month_key(day_number) != month:
                raise ValueError("day %d and month %d do not match" % (day, month))
        except (ValueError, KeyError, TypeError) as exc:
            self.log.warning("calendar: %s is not usable (%s); day and month totals start again", self.path, exc)
            return
        self.writes = writes
        self._day = day_number
        self._month = month
        for key in modules:
            entry = modules[key]
            if not isinstance(entry, dict):
                continue
            start = entry.get(_DAY)
            length = len(start) if isinstance(start, list) else -1
            if not (_valid_counters(start, length) and _valid_counters(entry.get(_MONTH), length)):
                continue  # a damaged entry: that module starts again when seen
            kept = {_DAY: start, _MONTH: entry[_MONTH], _YESTERDAY: None, _LAST_MONTH: None}
            for name in (_YESTERDAY, _LAST_MONTH):
                if _valid_counters(entry.get(name), length):
                    kept[name] = entry[name]
            self._entries[key] = kept

    def _save(self, utc_s):
        data = {"version": FORMAT_VERSION, "writes": self.writes + 1, "day": _day_key(self._day),
                "month": self._month, "modules": self._entries}
        temporary = self.path + ".tmp"
        try:
            with open(temporary, "w") as handle:
                handle.write(json.dumps(data))
                if hasattr(os, "fsync"):  # CPython: the rename must not reach the disk before the data
                    handle.flush()
                    os.fsync(handle.fileno())
            os.rename(temporary, self.path)
        except OSError as exc:
            self.write_errors += 1
            self._dirty = True
            self._retry_at = utc_s + RETRY_WRITE_S
            self.log.error("calendar: could not write %s (%s); retry in %d s", self.path, exc, RETRY_WRITE_S)
            return
        self.writes += 1
        self._retry_at = None
        self._dirty = False

    # ------------------------------------------------------------------ per round
    def update(self, modules, utc_s):
        """Note new modules and roll the day and month over when due. ``utc_s``: seconds since
        1970 UTC (int) once the clock is known, else None."""
        changed = False
        for module in modules:
            ledger = module.ledger
            if ledger is None or not ledger.channels:
                continue
            key = module.key
            if self._ledgers.get(key) is not ledger:
                self._ledgers[key] = ledger
                now = _counters(ledger)
                boot = self._boot.get(key)
                if boot is None or len(boot) != len(now) or self._went_back(boot, now):
                    self._boot[key] = now  # first seen, or a new ledger that starts lower
                entry = self._entries.get(key)
                if entry is not None and key in self._settled and (
                        len(entry[_DAY]) != len(now) or self._went_back(entry[_DAY], now)
                        or self._went_back(entry[_MONTH], now)):
                    self._restart(key, entry, now)
                    changed = True
        if utc_s is None:
            return
        if self.since_boot:
            self._first_time(utc_s)
            return
        if utc_s >= self._next_midnight:
            self._roll_over(utc_s)
            return
        for key in self._ledgers:
            if key not in self._settled:
                changed = self._settle(key, self._day, self._month) or changed
        if changed:
            self._dirty = True
        if self._dirty and (self._retry_at is None or utc_s >= self._retry_at):
            self._save(utc_s)

    def raised(self, module, before):
        """A restore raised ``module``'s counters from ``before`` (the journal's order; e.g. to the
        broker's retained totals, after a journal that lagged them or was wiped). The jump is no
        energy since boot, so the boot counters move with it. A day or month start moves only where
        it was set from the counters at boot (not below them: a new day, or a wiped journal); a
        start below them came from the file, the counters had grown from it before the restart
        (a journal that only lagged), and the jump is energy metered then."""
        key = module.key
        ledger = module.ledger
        boot = self._boot.get(key)
        if ledger is None or boot is None or len(before) != len(boot):
            return  # not seen yet: its first sight takes the raised counters as they are
        jump = _difference(_counters(ledger), before)
        self._boot[key] = _shifted(boot, jump, None)
        entry = self._entries.get(key)
        if entry is not None and key in self._settled:
            entry[_DAY] = _shifted(entry[_DAY], jump, boot)
            entry[_MONTH] = _shifted(entry[_MONTH], jump, boot)
            self._dirty = True

    def _first_time(self, utc_s):
        today = localtime.local_day_number(utc_s, self.rule)
        month = _month_key(today)
        forgot = self._forget_unseen()
        changed = forgot or self._day != today
        for key in self._ledgers:
            changed = self._settle(key, today, month) or changed
        self._day = today
        self._month = month
        self.since_boot = False
        self._set_day_bounds(today)
        if changed:
            self._save(utc_s)

    def _settle(self, key, today, month):
        """Bring a module's stored starts to ``today`` with its counters at boot."""
        self._settled[key] = True
        boot = self._boot[key]
        entry = self._entries.get(key)
        if entry is None or len(entry[_DAY]) != len(boot):
            self._entries[key] = {_DAY: boot, _MONTH: boot, _YESTERDAY: None, _LAST_MONTH: None}
            return True
        changed = False
        if self._day != today:
            closed = self._day == today - 1 and not self._went_back(entry[_DAY], boot)
            entry[_YESTERDAY] = _difference(boot, entry[_DAY]) if closed else None
            entry[_DAY] = boot
            changed = True
        if self._month != month:
            closed = _next_month_key(self._month) == month and not self._went_back(entry[_MONTH], boot)
            entry[_LAST_MONTH] = _difference(boot, entry[_MONTH]) if closed else None
            entry[_MONTH] = boot
            changed = True
        if self._went_back(entry[_DAY], boot) or self._went_back(entry[_MONTH], boot):
            self._restart(key, entry, boot)
            changed = True
        return changed

    def _went_back(self, start, now):
        for i in range(len(start)):
            if now[i] < start[i]:
                return True
        return False

    def _restart(self, key, entry, now):
        if len(entry[_DAY]) != len(now):
            self.log.info("calendar: module %s has another channel count; its day and month start again", key)
        else:
            self.log.warning("calendar: the counters of module %s went backwards; its day and month start again", key)
        entry[_DAY] = now
        entry[_MONTH] = now
        entry[_YESTERDAY] = None
        entry[_LAST_MONTH] = None

    def _forget_unseen(self):
        """Drop the starts of modules not seen at this boot (removed from config.json, or without
        counters): kept, they would be taken for the new day's when such a module shows up."""
        gone = [key for key in self._entries if key not in self._ledgers]
        for key in gone:
            del self._entries[key]
        return bool(gone)

    def _roll_over(self, utc_s):
        today = localtime.local_day_number(utc_s, self.rule)
        month = _month_key(today)
        self._forget_unseen()
        for key in self._ledgers:
            self._settled[key] = True
            now = _counters(self._ledgers[key])
            entry = self._entries.get(key)
            if entry is None or len(entry[_DAY]) != len(now):
                self._entries[key] = {_DAY: now, _MONTH: now, _YESTERDAY: None, _LAST_MONTH: None}
                continue
            if self._went_back(entry[_DAY], now) or self._went_back(entry[_MONTH], now):
                self._restart(key, entry, now)
                continue
            entry[_YESTERDAY] = _difference(now, entry[_DAY]) if today == self._day + 1 else None
            entry[_DAY] = now
            if month != self._month:
                closed = _next_month_key(self._month) == month
                entry[_LAST_MONTH] = _difference(now, entry[_MONTH]) if closed else None
                entry[_MONTH] = now
        if today != self._day + 1:
            self.log.warning("calendar: the clock moved from day %d to day %d", _day_key(self._day), _day_key(today))
        self._day = today
        self._month = month
        self._set_day_bounds(today)
        self._save(utc_s)

    def _set_day_bounds(self, today):
        self._day_start = localtime.day_start_utc(today, self.rule)
        self._next_midnight = localtime.day_start_utc(today + 1, self.rule)

    # ------------------------------------------------------------------ what the page and MQTT read
    @property
    def day_start_utc(self):
        """UTC seconds when today began (None while counting since boot)."""
        return None if self.since_boot else self._day_start

    @property
    def yesterday_start_utc(self):
        return None if self.since_boot else localtime.day_start_utc(self._day - 1, self.rule)

    @property
    def day_key(self):
        """Today as an int like 20261202 (None while counting since boot)."""
        return None if self.since_boot else _day_key(self._day)

    def counters_mwh(self, key, which):
        """Integer mWh per counter (the journal's order) of ``which`` (TODAY, YESTERDAY, MONTH,
        LAST_MONTH) for a module, or None when unknown."""
        ledger = self._ledgers.get(key)
        if ledger is None:
            return None
        if self.since_boot:
            if which != TODAY:
                return None
            return _difference(_counters(ledger), self._boot[key])
        entry = self._entries.get(key)
        if entry is None:
            return None
        if which == TODAY:
            return _difference(_counters(ledger), entry[_DAY])
        if which == MONTH:
            return _difference(_counters(ledger), entry[_MONTH])
        return entry[_YESTERDAY if which == YESTERDAY else _LAST_MONTH]

    def value_mwh(self, key, which, index):
        """One counter's energy (integer mWh) of ``which`` for a module, or None when unknown;
        ``index`` in the journal's order (2 * ch for import, 2 * ch + 1 for export)."""
        ledger = self._ledgers.get(key)
        if ledger is None or index >= 2 * ledger.channels:
            return None
        if self.since_boot:
            start = self._boot[key] if which == TODAY else None
        else:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if which == YESTERDAY or which == LAST_MONTH:
                kept = entry[_YESTERDAY if which == YESTERDAY else _LAST_MONTH]
                return None if kept is None else kept[index]
            start = entry[_DAY if which == TODAY else _MONTH]
        if start is None:
            return None
        ch = index // 2
        now = ledger.import_mwh(ch) if index % 2 == 0 else ledger.export_mwh(ch)
        return now - start[index]

    def channel_view(self, key, ch):
        """``{"import": {"today", "yesterday", "month", "last_month"}, "export": {...}}`` in Wh
        (rounded to 0.1 Wh, None where unknown) of channel ``ch`` (0-based, the ledger's index)."""
        view = {IMPORT: {}, EXPORT: {}}
        for which in (TODAY, YESTERDAY, MONTH, LAST_MONTH):
            for direction, index in ((IMPORT, 2 * ch), (EXPORT, 2 * ch + 1)):
                value = self.value_mwh(key, which, index)
                view[direction][which] = None if value is None else wh(value)
        return view


def wh(mwh):
    """Integer mWh as Wh rounded to 0.1 (a float; exact to the tenth below 100 MWh on float32)."""
    return ((mwh + 50) // 100) / 10
