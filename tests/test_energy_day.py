"""Today's and yesterday's energy over MQTT: the energy_day payload from a real calendar and real
ledgers, and the Home Assistant sensors that read it (state class total with last_reset), next to
the lifetime sensors, which stay as they are."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import json
import os

import xrt
from gateway import payloads
from gateway.calendar_totals import CalendarTotals
from gateway.discovery import discovery_messages
from gateway.ledger import Ledger
from gateway.localtime import parse_tz
from gateway.log import Logger
from test_gateway_discovery import ORIGIN, _lookup, home_assistant_problems, render

CET = parse_tz("CET-1CEST,M3.5.0,M10.5.0/3")
DEC_1 = 1796079600  # local midnight, CET
DEC_2 = DEC_1 + 86400
MODULES = [{"address": 0x50, "label": "house", "channels": 1, "has_voltage": True},
           {"address": 0x51, "label": None, "channels": 3, "has_voltage": False}]


class Module:
    def __init__(self, address, channels):
        self.key = payloads.module_key(address)
        self.channels = channels
        self.ledger = Ledger(channels) if channels else None

    def add(self, ch, import_wh, export_wh=0.0):
        meter = self.ledger.meter
        meter.consumption[ch].set_mwh(meter.consumption[ch].mwh() + int(import_wh * 1000))
        meter.exported[ch].set_mwh(meter.exported[ch].mwh() + int(export_wh * 1000))


def calendar_at(name):
    path = xrt.tmp_path(name)
    for leftover in (path, path + ".tmp"):
        try:
            os.remove(leftover)
        except OSError:
            pass
    return CalendarTotals(path, CET, Logger(sink=lambda line: None))


def two_days():
    """0x50 (1 channel) and 0x51 (3 channels) over Dec 1 and the morning of Dec 2; 0x52 never
    answered (no counters)."""
    house, three, absent = Module(0x50, 1), Module(0x51, 3), Module(0x52, 0)
    modules = [house, three, absent]
    calendar = calendar_at("energy_day.json")
    calendar.update(modules, None)
    house.add(0, 5.0)
    assert payloads.energy_day(calendar, modules) is None  # since boot: not a day yet
    calendar.update(modules, DEC_1 + 8 * 3600)
    house.add(0, 9650.0, 120.5)
    three.add(2, 300.0)
    calendar.update(modules, DEC_2)
    house.add(0, 812.4)
    three.add(1, 0.05)
    calendar.update(modules, DEC_2 + 6 * 3600)
    return calendar, modules


def test_the_payload_has_today_yesterday_and_the_utc_starts_of_both():
    calendar, modules = two_days()
    body = payloads.energy_day(calendar, modules)
    assert body == {
        "date": "2026-12-02",
        "day_start": "2026-12-01T23:00:00+00:00",
        "yesterday_start": "2026-11-30T23:00:00+00:00",
        "modules": {
            "0x50": {"today_import_wh": [812.4], "today_export_wh": [0.0],
                     "yesterday_import_wh": [9655.0], "yesterday_export_wh": [120.5]},
            "0x51": {"today_import_wh": [0.0, 0.1, 0.0], "today_export_wh": [0.0, 0.0, 0.0],
                     "yesterday_import_wh": [0.0, 0.0, 300.0], "yesterday_export_wh": [0.0, 0.0, 0.0]},
        },
    }, body
    encoded = payloads.encode_json(body)
    assert json.loads(encoded) == body


def test_yesterday_unknown_is_null():
    module = Module(0x50, 1)
    calendar = calendar_at("energy_day_new.json")
    calendar.update([module], DEC_2 + 3600)
    module.add(0, 1.5)
    body = payloads.energy_day(calendar, [module])
    assert body["modules"]["0x50"] == {"today_import_wh": [1.5], "today_export_wh": [0.0],
                                       "yesterday_import_wh": [None], "yesterday_export_wh": [None]}
    assert b'"yesterday_import_wh":[null]' in payloads.encode_json(body)


def day_configs(day_totals=True):
    out = []
    for topic, payload in discovery_messages("homeassistant", "rbamp", "rbamp-a1b2c3", MODULES, ORIGIN,
                                             day_totals=day_totals):
        out.append((topic, json.loads(payload)))
    return out


def test_day_sensors_are_energy_totals_with_last_reset_beside_the_lifetime_ones():
    found = day_configs()
    for topic, config in found:
        assert home_assistant_problems(topic, config) == [], (topic, config)
    day = [c for _, c in found if c["stat_t"] == "~/energy_day"]
    assert len(day) == 4 * 4  # import and export, today and yesterday, for four channels
    for config in day:
        assert (config["dev_cla"], config["stat_cla"], config["unit_of_meas"]) == ("energy", "total", "Wh")
        reset = "day_start" if "_today_" in config["uniq_id"] else "yesterday_start"
        assert config["lrst_val_tpl"] == "{{ value_json.%s }}" % reset, config
        assert [t for t, c in found if c is config][0].startswith("homeassistant/sensor/rbamp-a1b2c3/")
    lifetime = [c for _, c in found if c["stat_t"] == "~/totals"]
    assert len(lifetime) == 8
    for config in lifetime:
        assert config["stat_cla"] == "total_increasing" and "lrst_val_tpl" not in config
    names = sorted(c["name"] for c in day if c["uniq_id"].startswith("rbamp-a1b2c3_50_"))
    assert names == ["house Energy export today", "house Energy export yesterday",
                     "house Energy import today", "house Energy import yesterday"]
    assert "module 0x51 Energy import yesterday ch3" in [c["name"] for c in day]
    without = day_configs(day_totals=False)
    assert [c for _, c in without if c["stat_t"] == "~/energy_day"] == []
    assert len(without) == len(found) - 16


def test_day_sensor_templates_read_their_own_values():
    calendar, modules = two_days()
    body = json.loads(payloads.encode_json(payloads.energy_day(calendar, modules)))
    seen = {}
    for _, config in day_configs():
        if config["stat_t"] != "~/energy_day":
            continue
        object_id = config["uniq_id"][len("rbamp-a1b2c3_"):]
        seen[object_id] = render(config["val_tpl"], body)
        reset = config["lrst_val_tpl"][len("{{ "):-len(" }}")]
        assert _lookup(body, reset) in ("2026-12-01T23:00:00+00:00", "2026-11-30T23:00:00+00:00")
    assert seen["50_today_import_wh_0"] == 812.4
    assert seen["50_yesterday_import_wh_0"] == 9655.0
    assert seen["50_yesterday_export_wh_0"] == 120.5
    assert seen["51_today_import_wh_1"] == 0.1
    assert seen["51_yesterday_import_wh_2"] == 300.0
    # a module missing from the payload reads as unknown, not as a template error
    empty = {"date": body["date"], "day_start": body["day_start"], "yesterday_start": body["yesterday_start"],
             "modules": {}}
    for _, config in day_configs():
        if config["stat_t"] == "~/energy_day":
            assert render(config["val_tpl"], empty) is None
