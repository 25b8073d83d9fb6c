"""Home Assistant discovery: fields HA needs, classes and units, unique ids, and templates that
read the right value out of the documented state and totals payloads."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import json

import xrt
from gateway.discovery import discovery_messages, module_key

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
    """Evaluates the two template shapes discovery uses (anything else fails the test)."""
    assert template.startswith("{{ ") and template.endswith(" }}"), template
    expr = template[3:-3]
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


def test_every_sensor_has_the_fields_home_assistant_needs():
    found = configs()
    assert len(found) == (2 + 6) + (1 + 6 * 3)  # no voltage input on 0x51
    for topic, config in found:
        for key in ("name", "uniq_id", "stat_t", "val_tpl", "dev_cla", "stat_cla", "avty", "avty_mode", "dev", "o"):
            assert key in config, (topic, key)
        assert topic.startswith("homeassistant/sensor/rbamp-a1b2c3/") and topic.endswith("/config"), topic
        assert config["~"] == "rbamp/rbamp-a1b2c3"
        # available while the gateway and the sensor's own module both say so
        module = "0x" + config["uniq_id"].split("_")[1]
        assert config["avty_mode"] == "all"
        assert config["avty"] == [{"topic": "rbamp/rbamp-a1b2c3/availability"},
                                  {"topic": "rbamp/rbamp-a1b2c3/module/%s/availability" % module}]
        assert expand(config, "stat_t") in ("rbamp/rbamp-a1b2c3/state", "rbamp/rbamp-a1b2c3/totals")
        assert config["dev"]["ids"] == ["rbamp-a1b2c3"]
        assert config["dev"]["name"] and config["dev"]["sw"] == "0.1.0"
        assert config["o"] == {"name": "rbamp-gateway", "sw": "0.1.0"}  # no invented support URL
        assert config["name"]


def test_device_class_unit_and_state_class_per_quantity():
    seen = {}
    for topic, config in configs():
        rest = config["uniq_id"].split("_", 2)[2]  # after the device id and the address
        quantity = rest.rsplit("_", 1)[0] if rest[-1].isdigit() else rest
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
        _, address, rest = config["uniq_id"].split("_", 2)
        key = module_key(int(address, 16))
        payload = totals if config["stat_t"].endswith("totals") else state
        entry = payload[key] if payload is totals else payload["modules"][key]
        if rest[-1].isdigit():
            field, channel = rest.rsplit("_", 1)
            expected = entry[field][int(channel)]
        else:
            expected = entry[rest]
        assert render(config["val_tpl"], payload) == expected, (config["uniq_id"], config["val_tpl"])
        checked += 1
    assert checked == 27


def test_an_unreachable_module_reads_as_unknown_not_as_a_template_error():
    state = {"modules": {"0x50": {"status": "unreachable", "error": "NACK"}, "0x51": {"status": "ok"}}}
    for _, config in configs():
        if config["stat_t"].endswith("state"):
            assert render(config["val_tpl"], state) is None, config["val_tpl"]


def test_names_use_the_label_or_the_address_and_number_channels_only_when_several():
    names = dict((c["uniq_id"], c["name"]) for _, c in configs())
    assert names["rbamp-a1b2c3_50_power_0"] == "house Power"
    assert names["rbamp-a1b2c3_51_power_1"] == "module 0x51 Power ch2"
    assert names["rbamp-a1b2c3_51_import_wh_0"] == "module 0x51 Energy import ch1"


def test_support_url_only_when_given_and_odd_device_ids_are_made_safe():
    found = configs(device_id="gw 1.x", origin={"name": "rbamp-gateway", "sw_version": "1.2",
                                                 "support_url": "https://example.invalid/help"})
    topic, config = found[0]
    assert topic.startswith("homeassistant/sensor/gw_1_x/")
    assert config["uniq_id"].startswith("gw_1_x_")
    assert config["dev"]["ids"] == ["gw 1.x"]
    assert config["~"] == "rbamp/gw 1.x"
    assert config["o"]["url"] == "https://example.invalid/help"


def test_discovery_for_a_three_channel_module_fits_in_14_kb():
    # built all at once when published (the gateway's heap target is 48 KB); the per-module
    # availability list with full topics (no "~", which Home Assistant might not expand inside
    # the list) costs about 2 KB of it
    module = [{"address": 0x50, "label": "house", "channels": 3, "has_voltage": True}]
    messages = discovery_messages("homeassistant", "rbamp", "rbamp-a1b2c3d4e5f6", module, ORIGIN)
    assert len(messages) == 20
    total = sum(len(t) + len(p) for t, p in messages)
    assert total < 14 * 1024, total  # measured: 12.4 KB


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

    state = payloads.state([Module()], 1000, None, 5, 0, False, None)
    totals = payloads.totals([Module()])
    assert totals == {"0x50": {"import_wh": [1234.5], "export_wh": [0.25]}}
    module = [{"address": 0x50, "label": "house", "channels": 1, "has_voltage": True}]
    seen = {}
    for _, payload in discovery_messages("ha", "b", "d", module, ORIGIN):
        config = json.loads(payload)
        source = totals if config["stat_t"].endswith("totals") else state
        seen[config["uniq_id"]] = render(config["val_tpl"], source)
    assert seen == {"d_50_voltage": 230.0, "d_50_frequency": 50.02, "d_50_current_0": 1.5,
                    "d_50_power_0": 345.0, "d_50_power_factor_0": 0.971, "d_50_reactive_power_0": 12.5,
                    "d_50_import_wh_0": 1234.5, "d_50_export_wh_0": 0.25}, seen


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
    assert got["0x51"]["power"] == [100.0, -50.1]  # the sampler's RT values still count
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
