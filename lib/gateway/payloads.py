"""What the gateway publishes: topic names, payload keys and the builders of the payloads.

The link (gateway.mqtt_link), Home Assistant discovery (gateway.discovery) and the application
(gateway.app) all take topics and keys from here, so a name such as "import_wh" is written once::

    from gateway import payloads

    prefix = payloads.topic_prefix("rbamp", "rbamp-1a2b3c")    # "rbamp/rbamp-1a2b3c/"
    prefix + payloads.TOTALS                                     # the retained totals topic
    body = payloads.totals(metering.modules)                     # {"0x50": {"import_wh": [..], ...}}
    payloads.encode_json(body)                                   # b'{"0x50":{...}}', what goes out

Topics under ``<base_topic>/<device_id>/``:

    availability                  b"online" / b"offline" (also the last will), retained
    module/<key>/availability     b"online" / b"offline": whether that module answers, retained
    state                         the live state, QoS 0
    totals                        the energy totals, retained, never decreasing
    energy_day                    today's and yesterday's energy per channel, retained (once the
                                  clock is known)
    period                        one record per period, in seq order

state::

    {"modules": {"0x50": {"status": "ok",          # "ok", "unreachable", "rebooted", ...
                          "voltage": 231.4,         # V
                          "frequency": 50.0,        # Hz
                          "current": [1.234],       # A, one per channel
                          "power": [270.1],         # W, signed: < 0 is export
                          "power_factor": [0.95],   # a ratio in -1..1 (no unit, not %)
                          "reactive_power": [12.0], # var
                          "error": "..."}},         # only when something failed
     "uptime_ms": .., "samples": .., "periods": .., "heap_used": .., "safe_mode": false,
     "config_error": null,                          # the config problem's text, or null
     "firmware": "0.1.0", "wifi_rssi": -61,         # dBm, null when unknown (the PC)
     "ip": "192.168.1.20",                          # null when unknown
     "journal": "ok"}                               # "ok", "held", "no journal", "commit errors"

    A module whose values could not be read leaves them out; Home Assistant then shows its
    sensors as unknown (discovery's templates default to none). No value is ever a negative
    zero: a power of -0.04 W rounds to 0.0, not -0.0.

totals::

    {"0x50": {"import_wh": [1234.567], "export_wh": [0.0]}}   # Wh, one per channel

    import_wh is the latched-period consumption counter, export_wh the export split from the
    sampled signed power; both are the ledger's integer mWh / 1000.

energy_day (local days of config.json's ``tz``; gateway.calendar_totals)::

    {"date": "2026-12-02",                           # today, local
     "day_start": "2026-12-01T23:00:00+00:00",       # when today began, UTC (last_reset)
     "yesterday_start": "2026-11-30T23:00:00+00:00",
     "modules": {"0x50": {"today_import_wh": [812.4], "today_export_wh": [0.0],
                          "yesterday_import_wh": [9650.0], "yesterday_export_wh": [null]}}}

    Wh to the tenth, one per channel; null where unknown (yesterday after the gateway was off
    all that day, or a module first seen today). Not published before the clock is known: until
    then "today" is not a day.

period: ``{"seq": n, "ts": unix s or null, "modules": {"0x50": {"valid": true, "avg_p": [..],
"max_p": .., "dt_ms": .., "windows": .., "import_wh": [..], "export_wh": [..]}}}``.
"""

import json

ONLINE = b"online"
OFFLINE = b"offline"

# topic suffixes under <base_topic>/<device_id>/
AVAILABILITY = "availability"
STATE = "state"
TOTALS = "totals"
PERIOD = "period"
ENERGY_DAY = "energy_day"

# state payload keys
MODULES = "modules"
STATUS = "status"
ERROR = "error"
VOLTAGE = "voltage"
FREQUENCY = "frequency"
CURRENT = "current"
POWER = "power"
POWER_FACTOR = "power_factor"
REACTIVE_POWER = "reactive_power"

# gateway diagnostics in the state payload
UPTIME_MS = "uptime_ms"
SAFE_MODE = "safe_mode"
CONFIG_ERROR = "config_error"
FIRMWARE = "firmware"
WIFI_RSSI = "wifi_rssi"
IP = "ip"
JOURNAL = "journal"
# the journal's health, the value of JOURNAL
JOURNAL_OK = "ok"
JOURNAL_HELD = "held"  # commits wait: its layout is not settled, or config.json is not in use
JOURNAL_NONE = "no journal"  # none could be opened: totals are not kept
JOURNAL_FAILING = "commit errors"  # a commit failed since boot (the log says why)

# totals and period keys
IMPORT_WH = "import_wh"
EXPORT_WH = "export_wh"
SEQ = "seq"
TS = "ts"
VALID = "valid"
AVG_P = "avg_p"
MAX_P = "max_p"
DT_MS = "dt_ms"
WINDOWS = "windows"
REBOOTED = "rebooted"
STALE = "stale"

# energy_day payload keys
DATE = "date"
DAY_START = "day_start"
YESTERDAY_START = "yesterday_start"
TODAY_IMPORT_WH = "today_import_wh"
TODAY_EXPORT_WH = "today_export_wh"
YESTERDAY_IMPORT_WH = "yesterday_import_wh"
YESTERDAY_EXPORT_WH = "yesterday_export_wh"

# values above this are not energy a gateway metered: a retained payload holding one is damaged
_MAX_RETAINED_WH = 1e12


def module_key(address):
    """The key of a module in every payload and in its availability topic, e.g. "0x50"."""
    return "0x%02x" % address


def topic_prefix(base_topic, device_id):
    """``<base_topic>/<device_id>/``. The device id may come from a file kept on the board (not
    from config.json), so it is checked here: it must be one plain topic level."""
    if not isinstance(device_id, str) or not device_id:
        raise ValueError("device_id must be a non-empty str, got %r" % (device_id,))
    for char in "+#/":
        if char in device_id:
            raise ValueError("device_id must be one MQTT topic level (no '+', '#' or '/'), got %r"
                             % (device_id,))
    return "%s/%s/" % (base_topic, device_id)


def module_availability(key):
    """Suffix of a module's availability topic."""
    return "module/%s/availability" % key


def ha_status_topic(ha_prefix):
    """Where Home Assistant announces itself ("online" is its birth message)."""
    return ha_prefix + "/status"


def discovery_topic(ha_prefix, node_id, object_id, component="sensor"):
    """``<prefix>/<component>/<node id>/<object id>/config``: where Home Assistant looks."""
    return "%s/%s/%s/%s/config" % (ha_prefix, component, node_id, object_id)


# ---------------------------------------------------------------------- builders

def rounded(value, digits):
    """round() without a negative zero: -0.04 rounds to 0.0, which subscribers show as 0, not
    "-0" (adding 0.0 turns -0.0 into 0.0 and leaves every other value as it is)."""
    return round(value, digits) + 0.0


def state(modules, uptime_ms, heap_used, samples, periods, safe_mode, config_error, firmware=None,
          wifi_rssi=None, ip=None, journal=None):
    """The live state of metering's modules (``MeteredModule``: snapshot, reactive_power,
    frequency and live_error as Metering.read_live() left them) and the gateway's diagnostics.
    No bus access."""
    out = {}
    for module in modules:
        entry = {STATUS: module.status}
        snap = module.snapshot
        if snap is not None and module.ready and module.live_error is not None:
            # the read failed, perhaps half way through the snapshot: no values rather than old
            # or torn ones (Home Assistant shows the sensors as unknown)
            entry[ERROR] = module.live_error
        elif snap is not None and module.ready:
            channels = module.channels
            entry[VOLTAGE] = rounded(snap.voltage, 1)
            entry[CURRENT] = [rounded(snap.current[ch], 3) for ch in range(channels)]
            entry[POWER] = [rounded(snap.power[ch], 1) for ch in range(channels)]
            entry[POWER_FACTOR] = [rounded(snap.power_factor[ch], 3) for ch in range(channels)]
            reactive = module.reactive_power
            if reactive is not None:  # None until the first read_live() after the module began
                entry[REACTIVE_POWER] = [rounded(reactive[ch], 1) for ch in range(channels)]
                entry[FREQUENCY] = rounded(module.frequency, 2)
        elif module.error:
            entry[ERROR] = module.error
        out[module.key] = entry
    return {MODULES: out, UPTIME_MS: uptime_ms, "heap_used": heap_used, "samples": samples,
            "periods": periods, SAFE_MODE: safe_mode, CONFIG_ERROR: config_error, FIRMWARE: firmware,
            WIFI_RSSI: wifi_rssi, IP: ip, JOURNAL: journal}


def journal_health(metering):
    """The JOURNAL value for metering's journal (its store, journal_hold and commit_errors)."""
    if metering.store is None:
        return JOURNAL_NONE
    if metering.journal_hold is not None:
        return JOURNAL_HELD
    if metering.commit_errors:
        return JOURNAL_FAILING
    return JOURNAL_OK


def energy_wh(ledger, channels):
    """``(import_wh list, export_wh list)`` of a module's ledger (integer mWh underneath)."""
    return ([ledger.import_mwh(ch) / 1000 for ch in range(channels)],
            [ledger.export_mwh(ch) / 1000 for ch in range(channels)])


def add_energy(entry, ledger, channels):
    """Put a module's import_wh and export_wh lists into a period record's entry."""
    entry[IMPORT_WH], entry[EXPORT_WH] = energy_wh(ledger, channels)
    return entry


def period_record(seq, modules):
    """A period record: ``modules`` maps module keys to their entries (VALID, AVG_P, ...). A
    negative zero in an entry's numbers (an average of -0.001 W rounded) becomes 0.0."""
    for entry in modules.values():
        for key in list(entry):
            value = entry[key]
            if isinstance(value, float):
                entry[key] = value + 0.0
            elif isinstance(value, list):
                for i in range(len(value)):
                    if isinstance(value[i], float):
                        value[i] = value[i] + 0.0
    return {SEQ: seq, MODULES: modules}


def totals(modules):
    """The totals payload: every module whose channel count is known (one that never answered
    and is named nowhere has no counters yet, and no totals)."""
    out = {}
    for module in modules:
        ledger = module.ledger
        if ledger is None or not ledger.channels:
            continue
        imports, exports = energy_wh(ledger, ledger.channels)
        out[module.key] = {IMPORT_WH: imports, EXPORT_WH: exports}
    return out


def energy_day(calendar, modules):
    """The energy_day payload from a ``CalendarTotals`` and metering's modules, or None while the
    calendar counts since boot (the clock is not known yet)."""
    if calendar.since_boot:
        return None
    from gateway.calendar_totals import TODAY, YESTERDAY, wh
    from gateway.localtime import format_utc_iso

    out = {}
    for module in modules:
        ledger = module.ledger
        if ledger is None or not ledger.channels:
            continue
        entry = {}
        for which, import_key, export_key in ((TODAY, TODAY_IMPORT_WH, TODAY_EXPORT_WH),
                                              (YESTERDAY, YESTERDAY_IMPORT_WH, YESTERDAY_EXPORT_WH)):
            counters = calendar.counters_mwh(module.key, which)
            if counters is None or len(counters) != 2 * ledger.channels:
                entry[import_key] = [None] * ledger.channels
                entry[export_key] = [None] * ledger.channels
            else:
                entry[import_key] = [wh(counters[2 * ch]) for ch in range(ledger.channels)]
                entry[export_key] = [wh(counters[2 * ch + 1]) for ch in range(ledger.channels)]
        out[module.key] = entry
    day = calendar.day_key
    return {DATE: "%04d-%02d-%02d" % (day // 10000, day // 100 % 100, day % 100),
            DAY_START: format_utc_iso(calendar.day_start_utc),
            YESTERDAY_START: format_utc_iso(calendar.yesterday_start_utc), MODULES: out}


def retained_counters(retained, key, channels):
    """One module's counters from a retained totals payload, in the journal's order (``[import,
    export]`` per channel, integer mWh), or None when the payload has no entry for it."""
    entry = retained.get(key) if isinstance(retained, dict) else None
    if not isinstance(entry, dict):
        return None
    imports = entry.get(IMPORT_WH)
    exports = entry.get(EXPORT_WH)
    imports = imports if isinstance(imports, list) else []
    exports = exports if isinstance(exports, list) else []
    counters = []
    for ch in range(channels):
        counters.append(retained_mwh(imports, ch))
        counters.append(retained_mwh(exports, ch))
    return counters


def retained_mwh(values, ch):
    """A Wh value of a retained totals list as integer mWh; anything that is not a plain number
    (or is negative, or absurd) counts as 0, so a damaged retained message cannot raise totals."""
    if ch < len(values):
        value = values[ch]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < _MAX_RETAINED_WH:
            return int(value * 1000)
    return 0


def encode_json(payload):
    """Compact JSON bytes, as published."""
    return json.dumps(payload, separators=(",", ":")).encode()


def decode_object(message):
    """A received JSON object, or None (empty, not JSON, or not an object)."""
    if not message:
        return None
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
