"""Home Assistant discovery: fields HA needs, classes and units, unique ids, the rules of Home
Assistant's MQTT schema, names that make clean entity ids, diagnostic entities, and templates that
read the right value out of the documented state and totals payloads; no negative zero in the
payloads."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import json

import xrt
from gateway.discovery import GATEWAY_DIAGNOSTICS, discovery_messages, module_key

ORIGIN = {"name": "rbamp-gateway", "sw_version": "0.1.0"}
MODULES = [
    {"address": 0x50, "label": "house", "variant": "UI1", "channels": 1, "has_voltage": True,
     "uid_hex": "00112233445566778899aabb", "fw_version": 4},
    {"address": 0x51, "label": None, "variant": "I3", "channels": 3, "has_voltage": False,
     "fw_version": 3},
]
EXPECTED_CLASSES = {
    # quantity: (device_class, unit, state_class, topic suffix)
    "voltage": ("voltage", "V", "measurement", "state"),
    "frequency": ("frequency", "Hz", "measurement", "state"),
    "current": ("current", "A", "measurement", "state"),
    "power": ("power", "W", "measurement", "state"),
    "power_factor": ("power_factor", None, "measurement", "state"),
    "reactive_power": ("reactive_power", "var", "measurement", "state"),
    "import_wh": ("energy", "Wh", "total_increasing", "totals"),
    "export_wh": ("energy", "Wh", "total_increasing", "totals"),
}
GATEWAY_IDS = [d[0] for d in GATEWAY_DIAGNOSTICS]


def configs(prefix="homeassistant", base="rbamp", device_id="rbamp-a1b2c3", modules=None, origin=None):
    out = []
    for topic, payload in discovery_messages(prefix, base, device_id, MODULES if modules is None else modules,
                                             ORIGIN if origin is None else origin):
        assert isinstance(payload, str)
        out.append((topic, json.loads(payload)))
    return out


def expand(config, key):
    """A topic field with HA's '~' prefix substituted."""
    value = config[key]
    return config["~"] + value[1:] if value.startswith("~") else value


def sample_state():
    def ch(base, n):
        return [base + i for i in range(n)]

    return {"modules": {
        "0x50": {"status": "ok", "voltage": 230.5, "frequency": 50.02, "current": [1.5],
                 "power": [345.0], "power_factor": [0.97], "reactive_power": [12.5]},
        "0x51": {"status": "ok", "frequency": 49.98, "current": ch(2.0, 3), "power": ch(500.0, 3),
                 "power_factor": ch(0.5, 3), "reactive_power": ch(-20.0, 3)},
    }, "uptime_s": 5, "samples": 25}


def sample_totals():
    return {"0x50": {"import_wh": [1234.5], "export_wh": [0.25]},
            "0x51": {"import_wh": [10.0, 20.0, 30.0], "export_wh": [1.0, 2.0, 3.0]}}


def _lookup(value, path):
    # path: value_json followed by .name and ['key'] steps; missing -> None (HA's default(none))
    rest = path[len("value_json"):]
    while rest:
        if rest.startswith("."):
            end = 1
            while end < len(rest) and rest[end] not in ".[":
                end += 1
            key = rest[1:end]
            rest = rest[end:]
        elif rest.startswith("['"):
            end = rest.index("']")
            key = rest[2:end]
            rest = rest[end + 2:]
        else:
            raise AssertionError("unsupported template path %r" % path)
        value = value.get(key) if isinstance(value, dict) else None
    return value


def render(template, payload):
    """Evaluates the template shapes discovery uses (anything else fails the test), as Jinja
    would: a missing value is None (HA's default(none): the state becomes unknown)."""
    assert template.startswith("{{ ") and template.endswith(" }}"), template
    expr = template[3:-3]
    if expr.startswith("'ON' if "):
        path, rest = expr[len("'ON' if "):].split(" else ")
        assert rest == "'OFF'", template
        return "ON" if _lookup(payload, path) else "OFF"
    if expr.startswith("{'error': "):
        path, rest = expr[len("{'error': "):].split("} | ")
        assert rest == "tojson", template
        return json.dumps({"error": _lookup(payload, path)})
    if " // " in expr:
        path, divisor = expr.split(" // ")
        return _lookup(payload, path) // int(divisor)
    if expr.startswith("("):
        inner, index = expr[1:].split(") [") if ") [" in expr else expr[1:].split(")[")
        path, default = inner.split(" | default(")
        n = int(default[len("[none] * "):-1])
        assert default.startswith("[none] * ") and index.endswith("]"), template
        value = _lookup(payload, path)
        if value is None:
            value = [None] * n
        return value[int(index[:-1])]
    path, default = expr.split(" | ")
    assert default == "default(none)", template
    return _lookup(payload, path)


def parts(config, device_id="rbamp-a1b2c3"):
    """(module address or None, quantity, channel or None) of an entity, from its unique id."""
    rest = config["uniq_id"][len(device_id) + 1:]
    if rest in GATEWAY_IDS:
        return None, rest, None
    address, rest = rest.split("_", 1)
    if rest[-1].isdigit():
        quantity, channel = rest.rsplit("_", 1)
        return int(address, 16), quantity, int(channel)
    return int(address, 16), rest, None


def measuring(found):
    """The configs of the modules' measuring sensors (no diagnostics)."""
    return [(t, c) for t, c in found if c.get("ent_cat") is None]


def test_every_entity_has_the_fields_home_assistant_needs():
    found = configs()
    # the gateway's diagnostics, a status per module, then the measuring sensors (no voltage
    # input on 0x51)
    assert len(found) == len(GATEWAY_IDS) + 2 + (2 + 6) + (1 + 6 * 3)
    for topic, config in found:
        for key in ("name", "uniq_id", "stat_t", "val_tpl", "avty", "avty_mode", "dev", "o"):
            assert key in config, (topic, key)
        assert topic.split("/")[2] == "rbamp-a1b2c3" and topic.endswith("/config"), topic
        assert config["~"] == "rbamp/rbamp-a1b2c3"
        address, quantity, _ = parts(config)
        assert config["avty_mode"] == "all"
        gateway = {"topic": "rbamp/rbamp-a1b2c3/availability"}
        if config.get("ent_cat") == "diagnostic":
            # a diagnostic needs only the gateway: a module's status shows "unreachable"
            assert config["avty"] == [gateway], config
        else:
            # available while the gateway and the sensor's own module both say so
            assert config["avty"] == [gateway, {"topic": "rbamp/rbamp-a1b2c3/module/%s/availability"
                                                % module_key(address)}], config
        assert expand(config, "stat_t") in ("rbamp/rbamp-a1b2c3/state", "rbamp/rbamp-a1b2c3/totals")
        assert config["dev"] == {"ids": ["rbamp-a1b2c3"], "name": "rbamp-a1b2c3", "mf": "rbAmp",
                                 "mdl": "rbAmp gateway", "sw": "0.1.0"}
        assert config["o"] == {"name": "rbamp-gateway", "sw": "0.1.0"}  # no invented support URL
        assert config["name"]


def test_device_class_unit_and_state_class_per_quantity():
    seen = {}
    for topic, config in measuring(configs()):
        _, quantity, _ = parts(config)
        assert quantity in EXPECTED_CLASSES, config["uniq_id"]
        device_class, unit, state_class, suffix = EXPECTED_CLASSES[quantity]
        assert config["dev_cla"] == device_class, config
        assert config.get("unit_of_meas") == unit, config
        assert config["stat_cla"] == state_class, config
        assert expand(config, "stat_t").endswith("/" + suffix), config
        seen[quantity] = seen.get(quantity, 0) + 1
    assert seen == {"voltage": 1, "frequency": 2, "current": 4, "power": 4, "power_factor": 4,
                    "reactive_power": 4, "import_wh": 4, "export_wh": 4}


def test_unique_ids_and_topics_are_unique_and_stable():
    first = configs()
    second = configs()
    ids = [c["uniq_id"] for _, c in first]
    topics = [t for t, _ in first]
    assert len(set(ids)) == len(ids)
    assert len(set(topics)) == len(topics)
    assert ids == [c["uniq_id"] for _, c in second]
    assert "rbamp-a1b2c3_50_power_0" in ids and "rbamp-a1b2c3_51_export_wh_2" in ids
    # another gateway: no id in common
    other = [c["uniq_id"] for _, c in configs(device_id="rbamp-ffeedd")]
    assert not set(ids) & set(other)


def test_templates_read_each_sensors_own_value_from_the_payloads():
    state = sample_state()
    totals = sample_totals()
    checked = 0
    for _, config in configs():
        address, field, channel = parts(config)
        payload = totals if config["stat_t"].endswith("totals") else state
        if address is None:
            continue  # the gateway's diagnostics: test_diagnostics_read_the_gateways_state
        key = module_key(address)
        entry = payload[key] if payload is totals else payload["modules"][key]
        expected = entry[field] if channel is None else entry[field][channel]
        assert render(config["val_tpl"], payload) == expected, (config["uniq_id"], config["val_tpl"])
        checked += 1
    assert checked == 27 + 2  # the measuring sensors and the two modules' status


def test_an_unreachable_module_reads_as_unknown_not_as_a_template_error():
    state = {"modules": {"0x50": {"status": "unreachable", "error": "NACK"}, "0x51": {"status": "ok"}}}
    for _, config in measuring(configs()):
        if config["stat_t"].endswith("state"):
            assert render(config["val_tpl"], state) is None, config["val_tpl"]


def test_names_use_the_label_or_the_address_and_number_channels_from_one_only_when_several():
    names = dict((c["uniq_id"], c["name"]) for _, c in configs())
    assert names["rbamp-a1b2c3_50_power_0"] == "house Power"
    assert names["rbamp-a1b2c3_51_power_1"] == "module 0x51 Power ch2"  # unique id _1, name ch2
    assert names["rbamp-a1b2c3_51_import_wh_0"] == "module 0x51 Energy import ch1"
    assert names["rbamp-a1b2c3_50_status"] == "house Status"
    assert names["rbamp-a1b2c3_uptime"] == "Uptime"


def _slug(text):
    # how Home Assistant turns "<device name> <entity name>" into an entity id (util.slugify:
    # lower case, every run of other characters one "_"), enough for the ASCII names here
    out = []
    for char in text.lower():
        if "a" <= char <= "z" or "0" <= char <= "9":
            out.append(char)
        elif out and out[-1] != "_":
            out.append("_")
    return "".join(out).strip("_")


def test_entity_ids_do_not_repeat_the_prefix():
    # Home Assistant names a discovered entity "<device name> <entity name>" and makes its
    # entity id from that (https://www.home-assistant.io/integrations/mqtt/, "Naming of MQTT
    # entities"); an entity name that starts with the device name is stripped with a warning
    for topic, config in configs(device_id="rbamp-host1234"):
        device = config["dev"]["name"]
        assert not config["name"].lower().startswith(device.lower()), config["name"]
        entity_id = topic.split("/")[1] + "." + _slug(device + " " + config["name"])
        assert entity_id.split(".")[1].startswith("rbamp_host1234_"), entity_id
        assert "rbamp_rbamp" not in entity_id, entity_id
    ids = [topic.split("/")[1] + "." + _slug(c["dev"]["name"] + " " + c["name"])
           for topic, c in configs(device_id="rbamp-host1234")]
    assert "sensor.rbamp_host1234_house_power" in ids
    assert "sensor.rbamp_host1234_module_0x51_power_ch2" in ids
    assert "binary_sensor.rbamp_host1234_config_error" in ids
    assert len(set(ids)) == len(ids)


def test_support_url_only_when_given_and_odd_device_ids_are_made_safe():
    found = configs(device_id="gw 1.x", origin={"name": "rbamp-gateway", "sw_version": "1.2",
                                                 "support_url": "https://example.invalid/help"})
    topic, config = found[0]
    assert topic.startswith("homeassistant/sensor/gw_1_x/")
    assert config["uniq_id"].startswith("gw_1_x_")
    assert config["dev"]["ids"] == ["gw 1.x"]
    assert config["~"] == "rbamp/gw 1.x"
    assert config["o"]["url"] == "https://example.invalid/help"


def test_discovery_for_a_three_channel_module_fits_in_18_kb():
    # built all at once when published (the gateway's heap target is 48 KB); the per-module
    # availability list with full topics (no "~", which Home Assistant might not expand inside
    # the list) costs about 2 KB of it, the gateway's diagnostics and the status about 4 KB
    module = [{"address": 0x50, "label": "house", "channels": 3, "has_voltage": True}]
    messages = discovery_messages("homeassistant", "rbamp", "rbamp-a1b2c3d4e5f6", module, ORIGIN)
    assert len(messages) == 20 + 1 + len(GATEWAY_IDS)
    total = sum(len(t) + len(p) for t, p in messages)
    assert total < 18 * 1024, total  # measured: 16.5 KB (12.4 KB before the diagnostics)


def test_a_device_id_that_is_not_one_topic_level_is_refused():
    # prefix, base topic and modules come validated from config.json and metering; the device id
    # may come from a file on the board
    for bad in ("gw+1", "gw/x", "#", ""):
        assert "device_id" in str(xrt.raises(ValueError, discovery_messages, "ha", "b", bad, MODULES, ORIGIN))


def test_the_templates_name_the_keys_the_payload_builders_write():
    from gateway import payloads

    class Snap:
        voltage = 230.04
        current = [1.5]
        power = [345.04]
        power_factor = [0.971]

    class Ledger:
        channels = 1

        def import_mwh(self, ch):
            return 1234500

        def export_mwh(self, ch):
            return 250

    class Module:
        key = "0x50"
        status = "ok"
        ready = True
        channels = 1
        snapshot = Snap()
        reactive_power = [12.54]
        frequency = 50.021
        live_error = None
        error = None
        ledger = Ledger()

    state = payloads.state([Module()], 61999, None, 5, 0, False, "config.json: not valid JSON",
                           "0.1.0", -61, "192.0.2.7", payloads.JOURNAL_OK)
    totals = payloads.totals([Module()])
    assert totals == {"0x50": {"import_wh": [1234.5], "export_wh": [0.25]}}
    module = [{"address": 0x50, "label": "house", "channels": 1, "has_voltage": True}]
    seen = {}
    attributes = {}
    for _, payload in discovery_messages("ha", "b", "d", module, ORIGIN):
        config = json.loads(payload)
        source = totals if config["stat_t"].endswith("totals") else state
        seen[config["uniq_id"]] = render(config["val_tpl"], source)
        if "json_attr_tpl" in config:
            attributes[config["uniq_id"]] = json.loads(render(config["json_attr_tpl"], state))
    assert seen == {"d_50_voltage": 230.0, "d_50_frequency": 50.02, "d_50_current_0": 1.5,
                    "d_50_power_0": 345.0, "d_50_power_factor_0": 0.971, "d_50_reactive_power_0": 12.5,
                    "d_50_import_wh_0": 1234.5, "d_50_export_wh_0": 0.25, "d_50_status": "ok",
                    "d_uptime": 61, "d_wifi_rssi": -61, "d_ip": "192.0.2.7", "d_firmware": "0.1.0",
                    "d_journal": "ok", "d_safe_mode": "OFF", "d_config_error": "ON"}, seen
    assert attributes == {"d_config_error": {"error": "config.json: not valid JSON"}}


def test_diagnostics_without_a_value_read_as_unknown_or_off():
    from gateway import payloads

    state = payloads.state([], 0, None, 0, 0, False, None)  # a PC: no Wi-Fi, no address known
    seen = {}
    for _, payload in discovery_messages("ha", "b", "d", [], ORIGIN):
        config = json.loads(payload)
        seen[config["uniq_id"]] = render(config["val_tpl"], state)
    assert seen == {"d_uptime": 0, "d_wifi_rssi": None, "d_ip": None, "d_firmware": None,
                    "d_journal": None, "d_safe_mode": "OFF", "d_config_error": "OFF"}, seen


def test_journal_health_names_what_holds_the_journal_back():
    from gateway import payloads

    class Metering:
        store = object()
        journal_hold = None
        commit_errors = 0

    metering = Metering()
    assert payloads.journal_health(metering) == "ok"
    metering.commit_errors = 2
    assert payloads.journal_health(metering) == "commit errors"
    metering.journal_hold = "the journal's layout is not settled yet"
    assert payloads.journal_health(metering) == "held"
    metering.store = None
    assert payloads.journal_health(metering) == "no journal"


def test_a_module_not_begun_gets_only_its_status_and_keeps_its_announced_sensors():
    from gateway.discovery import kept_topics

    modules = [dict(MODULES[0]), dict(MODULES[1], begun=False)]
    ids = [c["uniq_id"] for _, c in configs(modules=modules)]
    assert "rbamp-a1b2c3_51_status" in ids
    assert not [i for i in ids if i.startswith("rbamp-a1b2c3_51_") and i != "rbamp-a1b2c3_51_status"]
    assert "rbamp-a1b2c3_50_power_0" in ids
    assert kept_topics("homeassistant", "rbamp-a1b2c3", modules) == ["homeassistant/sensor/rbamp-a1b2c3/51_"]
    assert kept_topics("homeassistant", "rbamp-a1b2c3", MODULES) == []


def test_state_payload_leaves_out_what_could_not_be_read():
    from gateway import payloads

    class Snap:
        voltage = 229.96
        current = [0.5, 0.25]
        power = [100.04, -50.06]
        power_factor = [0.5, -0.25]

    class Module:
        def __init__(self, key, status, ready, error=None, live_error=None, reactive=None):
            self.key = key
            self.status = status
            self.ready = ready
            self.channels = 2
            self.snapshot = Snap()
            self.error = error
            self.live_error = live_error
            self.reactive_power = reactive
            self.frequency = 49.987 if reactive is not None else None
            self.ledger = None

    modules = [Module("0x50", "ok", True, reactive=[1.04, -2.06]),
               Module("0x51", "ok", True, live_error="bus error at 0x51"),
               Module("0x52", "unreachable", False, error="no ACK at 0x52"),
               Module("0x53", "ok", True)]  # began after the last read_live(): nothing read yet
    body = payloads.state(modules, 1000, 4096, 5, 1, False, None)
    got = body["modules"]
    assert got["0x50"] == {"status": "ok", "voltage": 230.0, "current": [0.5, 0.25], "power": [100.0, -50.1],
                           "power_factor": [0.5, -0.25], "reactive_power": [1.0, -2.1], "frequency": 49.99}
    assert got["0x51"]["error"] == "bus error at 0x51" and "frequency" not in got["0x51"]
    assert got["0x51"] == {"status": "ok", "error": "bus error at 0x51"}  # no old or torn values
    assert got["0x52"] == {"status": "unreachable", "error": "no ACK at 0x52"}
    assert "reactive_power" not in got["0x53"] and "error" not in got["0x53"]
    assert body["uptime_ms"] == 1000 and body["samples"] == 5 and body["config_error"] is None
    assert payloads.totals(modules) == {}  # no ledger: no totals
    assert payloads.encode_json({"a": [1.5]}) == b'{"a":[1.5]}'
    assert payloads.decode_object(b'{"a": 1}') == {"a": 1}
    for bad in (b"", b"[1]", b"not json {", None):
        assert payloads.decode_object(bad) is None


def test_retained_wh_values_become_mwh_and_damage_counts_as_zero():
    from gateway.payloads import retained_mwh

    assert retained_mwh([1234.567, 2], 0) == 1234567 and retained_mwh([1234.567, 2], 1) == 2000
    for bad in (["12"], [True], [-1.0], [1e13], [None], []):
        assert retained_mwh(bad, 0) == 0, bad


def test_period_record_builder_uses_the_ledger_names():
    from gateway import payloads

    class Ledger:
        channels = 2

        def import_mwh(self, ch):
            return 1500 * (ch + 1)

        def export_mwh(self, ch):
            return 7 * ch

    entry = payloads.add_energy({payloads.VALID: True, payloads.AVG_P: [1.0, 2.0]}, Ledger(), 2)
    record = payloads.period_record(9, {"0x50": entry})
    assert record == {"seq": 9, "modules": {"0x50": {"valid": True, "avg_p": [1.0, 2.0],
                                                      "import_wh": [1.5, 3.0], "export_wh": [0.0, 0.007]}}}


# ---------------------------------------------------------------------- Home Assistant's rules
# What Home Assistant's MQTT discovery accepts, written down from its documentation (no package
# checks these without pulling Home Assistant itself: ha-mqtt-models-pydantic ignores unknown
# keys and takes any device class, state class or unit):
# - https://www.home-assistant.io/integrations/mqtt/ ("MQTT Discovery": the topic format and its
#   allowed characters, the abbreviations, device and origin keys, availability; unknown keys
#   make a config invalid)
# - https://www.home-assistant.io/integrations/sensor.mqtt/ and
#   https://www.home-assistant.io/integrations/binary_sensor.mqtt/ (each platform's keys;
#   state_topic is required; a unit must suit the device class)
# - https://www.home-assistant.io/integrations/sensor/ (device classes and their units)
# - https://developers.home-assistant.io/docs/core/entity/sensor/ (state classes, and which device
#   classes allow which: energy total or total_increasing, power and the electrical quantities
#   measurement only)
# - https://developers.home-assistant.io/docs/core/entity/#generic-properties (entity_category:
#   config or diagnostic; a sensor or binary sensor cannot be config, it changes nothing)
# - https://www.home-assistant.io/docs/energy/electricity-grid/ (energy sensors the Energy
#   dashboard takes: device class energy, a total state class, Wh / kWh / MWh ...)
COMMON_KEYS = {"~": "base topic", "name": "name", "uniq_id": "unique_id", "stat_t": "state_topic",
               "val_tpl": "value_template", "dev_cla": "device_class", "ent_cat": "entity_category",
               "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
               "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template",
               "dev": "device", "o": "origin", "ic": "icon", "en": "enabled_by_default",
               "exp_aft": "expire_after", "frc_upd": "force_update", "qos": "qos"}
PLATFORM_KEYS = {
    "sensor": {"stat_cla": "state_class", "unit_of_meas": "unit_of_measurement",
               "sug_dsp_prc": "suggested_display_precision", "lrst_val_tpl": "last_reset_value_template"},
    "binary_sensor": {"pl_on": "payload_on", "pl_off": "payload_off", "off_dly": "off_delay"},
}
DEVICE_KEYS = ("ids", "cns", "name", "mf", "mdl", "mdl_id", "sw", "hw", "sn", "cu", "sa", "via_device")
ORIGIN_KEYS = ("name", "sw", "url")
AVAILABILITY_KEYS = ("topic", "t", "payload_available", "pl_avail", "payload_not_available",
                     "pl_not_avail", "value_template", "val_tpl")
TOPIC_KEYS = ("stat_t", "json_attr_t", "avty_t")
SENSOR_UNITS = {  # device class: units it accepts
    "voltage": ("V", "mV", "µV", "kV", "MV"), "current": ("A", "mA"), "frequency": ("Hz", "kHz", "MHz", "GHz"),
    "power": ("mW", "W", "kW", "MW", "GW", "TW", "BTU/h"), "power_factor": ("%", None),
    "reactive_power": ("var", "kvar"), "apparent_power": ("VA", "kVA"),
    "energy": ("J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"),
    "duration": ("d", "h", "min", "s", "ms"), "signal_strength": ("dB", "dBm"),
}
SENSOR_STATE_CLASSES = {  # device class: state classes it allows (None: no device class)
    "voltage": ("measurement",), "current": ("measurement",), "frequency": ("measurement",),
    "power": ("measurement",), "power_factor": ("measurement",), "reactive_power": ("measurement",),
    "apparent_power": ("measurement",), "signal_strength": ("measurement",),
    "energy": ("total", "total_increasing"), "duration": ("measurement", "total", "total_increasing"),
    None: ("measurement", "total", "total_increasing"),
}
BINARY_SENSOR_CLASSES = ("battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
                         "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving",
                         "occupancy", "opening", "plug", "power", "presence", "problem", "running",
                         "safety", "smoke", "sound", "tamper", "update", "vibration", "window")
ENERGY_DASHBOARD_UNITS = ("Wh", "kWh", "MWh", "GWh", "MJ", "GJ")


def _topic_level_ok(level):
    if not level:
        return False
    for char in level:
        if not ("a" <= char <= "z" or "A" <= char <= "Z" or "0" <= char <= "9" or char in "_-"):
            return False
    return True


def home_assistant_problems(topic, config):
    """What Home Assistant would refuse (or warn about) in one discovery message; [] if none."""
    problems = []
    levels = topic.split("/")
    if len(levels) != 5 or levels[4] != "config" or not all(_topic_level_ok(x) for x in levels[2:4]):
        problems.append("topic is not <prefix>/<component>/<node_id>/<object_id>/config")
    component = levels[1] if len(levels) > 1 else None
    if component not in PLATFORM_KEYS:
        return problems + ["component %r is not one used here" % component]
    allowed = dict(COMMON_KEYS)
    allowed.update(PLATFORM_KEYS[component])
    for key in config:
        if key not in allowed:
            problems.append("unknown key %r (extra keys are not allowed)" % key)
    if "stat_t" not in config:
        problems.append("state_topic is required")
    if "dev" in config:
        device = config["dev"]
        if not (device.get("ids") or device.get("cns")):
            problems.append("a device needs identifiers or connections")
        problems += ["unknown device key %r" % k for k in device if k not in DEVICE_KEYS]
        if "uniq_id" not in config:
            problems.append("an entity with a device needs a unique_id")
    problems += ["unknown origin key %r" % k for k in config.get("o", {}) if k not in ORIGIN_KEYS]
    if "o" in config and not config["o"].get("name"):
        problems.append("origin needs a name")
    for item in config.get("avty", []):
        problems += ["unknown availability key %r" % k for k in item if k not in AVAILABILITY_KEYS]
        if not (item.get("topic") or item.get("t")):
            problems.append("an availability entry needs a topic")
    if config.get("avty_mode", "latest") not in ("all", "any", "latest"):
        problems.append("availability_mode must be all, any or latest")
    for key in TOPIC_KEYS:
        value = config.get(key, "")
        if ("~" in value and "~" not in config) or "+" in value or "#" in value:
            problems.append("%s is not a topic to publish on" % key)
    if "json_attr_tpl" in config and "json_attr_t" not in config:
        problems.append("json_attributes_template without json_attributes_topic")
    category = config.get("ent_cat")
    if category is not None and category != "diagnostic":
        problems.append("entity_category %r: a %s can only be diagnostic" % (category, component))
    device_class = config.get("dev_cla")
    if component == "binary_sensor":
        if device_class is not None and device_class not in BINARY_SENSOR_CLASSES:
            problems.append("binary_sensor device_class %r" % device_class)
        return problems
    unit = config.get("unit_of_meas")
    state_class = config.get("stat_cla")
    if device_class is not None:
        if device_class not in SENSOR_UNITS:
            problems.append("device_class %r is not one this test knows" % device_class)
        elif unit not in SENSOR_UNITS[device_class]:
            problems.append("unit %r is not valid together with device class %r" % (unit, device_class))
    if state_class is not None and state_class not in SENSOR_STATE_CLASSES.get(device_class, ()):
        problems.append("state class %r is impossible for device class %r" % (state_class, device_class))
    if "lrst_val_tpl" in config and state_class != "total":
        problems.append("last_reset_value_template needs state class total")
    precision = config.get("sug_dsp_prc")
    if precision is not None and (not isinstance(precision, int) or precision < 0):
        problems.append("suggested_display_precision must be an int >= 0")
    if device_class == "energy" and (unit not in ENERGY_DASHBOARD_UNITS or state_class not in ("total", "total_increasing")):
        problems.append("an energy sensor the Energy dashboard cannot use")
    return problems


def test_every_discovery_message_meets_home_assistants_mqtt_schema():
    modules = [dict(MODULES[0]), dict(MODULES[1]), {"address": 0x52, "label": "pv", "channels": 2,
                                                      "has_voltage": True, "begun": False}]
    found = configs(modules=modules)
    for topic, config in found:
        assert home_assistant_problems(topic, config) == [], (topic, config)
    components = [topic.split("/")[1] for topic, _ in found]
    assert components.count("binary_sensor") == 2 and components.count("sensor") == len(found) - 2
    energy = [c for _, c in found if c.get("dev_cla") == "energy"]
    assert len(energy) == 8  # import and export of 0x50's one channel and 0x51's three
    assert len([c for _, c in found if c.get("ent_cat") == "diagnostic"]) == len(GATEWAY_IDS) + 3


def test_the_schema_rules_catch_what_home_assistant_refuses():
    # each rule fails on the mistake it is there for, so the test above cannot pass by accident
    topic, good = [(t, c) for t, c in configs() if c["uniq_id"].endswith("_50_import_wh_0")][0]
    assert home_assistant_problems(topic, good) == []
    mistakes = (
        ("unit_of_meas", "W"), ("stat_cla", "measurement"), ("dev_cla", "energy_storage"),
        ("ent_cat", "config"), ("unit_of_measurement", "Wh"), ("sug_dsp_prc", -1), ("avty_mode", "some"),
        ("stat_t", "rbamp/+/totals"), ("json_attr_tpl", "{{ value_json | tojson }}"),
        ("lrst_val_tpl", "{{ value_json.day_start }}"),
    )
    for key, value in mistakes:
        bad = dict(good)
        bad[key] = value
        assert home_assistant_problems(topic, bad), (key, value)
    for bad_device in ({"name": "x"}, {"ids": ["x"], "manufacturer": "rbAmp"}):
        assert home_assistant_problems(topic, dict(good, dev=bad_device)), bad_device
    assert home_assistant_problems(topic.replace("/sensor/", "/sensors/"), good)
    assert home_assistant_problems(topic.replace("rbamp-a1b2c3", "rbamp a1b2c3"), good)
    no_id = dict(good)
    del no_id["uniq_id"]
    assert home_assistant_problems(topic, no_id)
    binary_topic, binary = [(t, c) for t, c in configs() if t.split("/")[1] == "binary_sensor"][0]
    assert home_assistant_problems(binary_topic, binary) == []
    assert home_assistant_problems(binary_topic, dict(binary, unit_of_meas="s"))
    assert home_assistant_problems(binary_topic, dict(binary, dev_cla="voltage"))


# ---------------------------------------------------------------------- no negative zero

def test_no_negative_zero_in_the_state_or_a_period_record():
    from gateway import payloads

    class Snap:
        voltage = 230.0
        current = [0.0004, 0.0]
        power = [1053.0, -0.04]  # a channel at rest reads a hair below zero
        power_factor = [0.99, -0.0004]

    class Module:
        key = "0x50"
        status = "ok"
        ready = True
        channels = 2
        snapshot = Snap()
        reactive_power = [-0.04, 0.0]
        frequency = 50.0
        live_error = None
        error = None

    body = payloads.encode_json(payloads.state([Module()], 1, None, 1, 0, False, None))
    assert b"-0.0" not in body, body
    state = json.loads(body)["modules"]["0x50"]
    assert state["power"] == [1053.0, 0.0] and state["power_factor"] == [0.99, 0.0]
    assert state["reactive_power"] == [0.0, 0.0]
    assert payloads.rounded(-0.04, 1) == 0.0 and str(payloads.rounded(-0.04, 1)) == "0.0"
    assert payloads.rounded(-0.06, 1) == -0.1 and payloads.rounded(2.25, 1) in (2.2, 2.3)
    entry = {payloads.VALID: True, payloads.AVG_P: [round(-0.001, 2), 12.5], payloads.MAX_P: round(-0.001, 2),
             payloads.DT_MS: 2000, payloads.IMPORT_WH: [0.0, 1.5]}
    record = payloads.encode_json(payloads.period_record(3, {"0x50": entry}))
    assert b"-0.0" not in record, record
    assert json.loads(record)["modules"]["0x50"]["avg_p"] == [0.0, 12.5]
    assert json.loads(record)["modules"]["0x50"]["dt_ms"] == 2000  # integers stay integers


# ---------------------------------------------------------------------- configs that are gone

def _announced(name):
    import os

    from gateway.discovery import AnnouncedConfigs

    path = xrt.tmp_path(name)
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    log = []

    class Log:
        def warning(self, fmt, *args):
            log.append(fmt % args)

    return AnnouncedConfigs(path, Log()), path, log


def test_configs_announced_before_and_gone_now_are_removed_once_published():
    announced, path, _ = _announced("announced-gone")
    old = discovery_messages("homeassistant", "rbamp", "old-id", MODULES, ORIGIN)
    first = announced.with_removals(old)
    assert first == old  # nothing announced before: nothing to remove
    announced.published(first)
    assert announced.topics() == [t for t, _ in old]
    # the device id changed and module 0x51 left config.json
    new = discovery_messages("homeassistant", "rbamp", "new-id", MODULES[:1], ORIGIN)
    second = announced.with_removals(new)
    assert second[:len(new)] == new
    removed = second[len(new):]
    assert sorted(removed) == sorted((t, "") for t, _ in old)
    # until the link says the round went out, the old topics stay remembered
    assert len(announced.topics()) == len(old) + len(new)
    assert announced.with_removals(new)[len(new):] == removed
    announced.published([(t.encode(), p.encode()) for t, p in second])  # as the link reports it
    assert announced.topics() == [t for t, _ in new]
    assert announced.with_removals(new) == new


def test_a_module_not_answering_keeps_its_configs_and_a_damaged_file_is_not_used():
    from gateway.discovery import kept_topics

    announced, path, _ = _announced("announced-kept")
    announced.published(announced.with_removals(discovery_messages("ha", "rbamp", "gw", MODULES, ORIGIN)))
    pending = [dict(MODULES[0]), dict(MODULES[1], begun=False)]
    now = discovery_messages("ha", "rbamp", "gw", pending, ORIGIN)
    out = announced.with_removals(now, kept_topics("ha", "gw", pending))
    assert out == now  # 0x51's sensors stay while it does not answer
    assert announced.with_removals(now)[len(now):]  # without the kept prefix they would go
    with open(path, "a") as f:
        f.write("ha/sensor/+/x/config\nha/#\n\x00junk\nnot a config topic\n")
    topics = announced.topics()
    assert topics and all(t.endswith("/config") and "+" not in t and "#" not in t for t in topics)


def test_a_file_that_cannot_be_written_is_logged_and_nothing_raises():
    from gateway.discovery import AnnouncedConfigs

    log = []

    class Log:
        def warning(self, fmt, *args):
            log.append(fmt % args)

    announced = AnnouncedConfigs(xrt.tmp_path("no-such-dir") + "/deeper/discovery_topics", Log())
    messages = discovery_messages("ha", "rbamp", "gw", MODULES[:1], ORIGIN)
    assert announced.with_removals(messages) == messages
    assert log and "could not keep the announced topics" in log[0]
