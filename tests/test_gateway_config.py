"""Gateway config.json: defaults, every bad-input class, secrets, load/fallback (the strict JSON
reader on its own: test_gateway_jsonstrict.py)."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import json
import os

import xrt
from gateway.config import (
    DEFAULTS,
    SECRET_KEYS,
    ConfigError,
    load_config,
    parse_config,
    redact,
)
from gateway.log import Logger

MQTT_SECRET = "hunter2-secret"
WIFI_SECRET = "wifi-pass-0451"
SECRETS = (MQTT_SECRET, WIFI_SECRET)
REPO = __file__.rsplit("/", 2)[0] if __file__.count("/") >= 2 else ".."


def _config():
    """A complete, valid config holding both passwords (every bad case starts from it)."""
    return {
        "device_id": "garage-1",
        "wifi": {"ssid": "home", "password": WIFI_SECRET, "hostname": "rbamp-garage"},
        "mqtt": {"host": "192.168.1.10", "port": 1883, "user": "gw", "password": MQTT_SECRET,
                 "base_topic": "home/rbamp", "keepalive": 30, "qos": 1, "timeout_s": 2.5},
        "i2c": {"bus": 0, "scl": 22, "sda": 21, "freq": 50000},
        "drdy_pin": 4,
        "modules": [{"address": "0x50", "label": "mains", "sensor_class": 1, "ct_models": [3, 2]},
                    {"address": 81}],
        "period_s": 60,
        "publish": {"interval_s": 10, "power_change_w": 25.5},
        "commit": {"growth_wh": 5, "interval_s": 120},
        "homeassistant": {"discovery": True, "prefix": "homeassistant"},
        "ntp": {"enabled": True, "host": "pool.ntp.org"},
        "log_level": "info",
    }


def _error(config_or_text):
    text = config_or_text if type(config_or_text) is str else json.dumps(config_or_text)
    exc = xrt.raises(ConfigError, parse_config, text)
    message = str(exc)
    assert message.startswith("config.json: "), message
    for secret in SECRETS:
        assert secret not in message, message
    return exc


def _bad(key, problem, mutate):
    config = _config()
    mutate(config)
    exc = _error(config)
    assert exc.key == key, (exc.key, str(exc))
    assert "config.json: %s: " % key in str(exc), str(exc)
    assert problem in str(exc), str(exc)
    return str(exc)


def _set(path, value):
    """A mutator that sets a dotted key ("mqtt.port", "modules.0.address")."""
    parts = path.split(".")

    def mutate(config):
        node = config
        for part in parts[:-1]:
            node = node[int(part)] if type(node) is list else node[part]
        if type(node) is list:
            node[int(parts[-1])] = value
        else:
            node[parts[-1]] = value

    return mutate


def _delete(path):
    parts = path.split(".")

    def mutate(config):
        node = config
        for part in parts[:-1]:
            node = node[part]
        del node[parts[-1]]

    return mutate


def _write(path, data):
    if type(data) is str:
        data = data.encode("utf-8")
    with open(path, "wb") as handle:
        handle.write(data)


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove(*paths):
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def _paths(name):
    main = xrt.tmp_path(name + ".json")
    good = xrt.tmp_path(name + ".last_good.json")
    _remove(main, good, good + ".tmp")
    return main, good


# ------------------------------------------------------------------ defaults and normalisation
def test_minimal_config_gets_every_documented_default():
    cfg = parse_config('{"mqtt": {"host": "broker.lan"}}')
    assert cfg["device_id"] is None
    assert cfg["wifi"] == {"ssid": None, "password": None, "hostname": None}
    assert cfg["mqtt"] == {"host": "broker.lan", "port": 1883, "user": None, "password": None, "tls": False,
                           "ca_file": None, "client_id": None, "base_topic": "rbamp", "keepalive": 60,
                           "qos": 1, "timeout_s": 5}
    assert cfg["i2c"] == {"bus": 0, "scl": None, "sda": None, "freq": 50000}
    assert cfg["drdy_pin"] is None
    assert cfg["modules"] == [{"address": 0x50, "channels": None, "label": None, "sensor_class": None,
                               "ct_models": None}]
    assert cfg["period_s"] == 60
    assert cfg["mains_loss"] == {"voltage_v": 150}
    assert cfg["publish"] == {"interval_s": 10, "power_change_w": 50}
    assert cfg["commit"] == {"growth_wh": 5, "interval_s": 60}
    assert cfg["homeassistant"] == {"discovery": True, "prefix": "homeassistant"}
    assert cfg["ntp"] == {"enabled": True, "host": None,
                          "servers": ["pool.ntp.org", "time.cloudflare.com", "time.google.com"]}
    assert cfg["tz"] == "UTC0"
    assert cfg["web"] == {"enabled": True, "port": 80, "password": None}
    assert cfg["setup"] == {"button_pin": None, "wifi_wait_s": 300, "ap_minutes": 10, "ap_password": None}
    assert cfg["log_level"] == "info"
    # DEFAULTS is the same thing without a broker, and parsing never hands out DEFAULTS' own objects
    expected = parse_config('{"mqtt": {"host": "broker.lan"}}')
    expected["mqtt"]["host"] = None
    assert DEFAULTS == expected
    cfg["modules"][0]["address"] = 0x51
    cfg["mqtt"]["base_topic"] = "changed"
    assert DEFAULTS["modules"][0]["address"] == 0x50 and DEFAULTS["mqtt"]["base_topic"] == "rbamp"


def test_module_channels_and_the_mains_loss_threshold_are_checked():
    cfg = parse_config({"mqtt": {"host": "b"}, "modules": [{"address": 80, "channels": 2}],
                        "mains_loss": {"voltage_v": 0}})
    assert cfg["modules"][0]["channels"] == 2 and cfg["mains_loss"]["voltage_v"] == 0
    for bad, key in (({"modules": [{"address": 80, "channels": 4}]}, "modules[0].channels"),
                     ({"modules": [{"address": 80, "channels": "2"}]}, "modules[0].channels"),
                     ({"mains_loss": {"voltage_v": -1}}, "mains_loss.voltage_v")):
        bad["mqtt"] = {"host": "b"}
        try:
            parse_config(bad)
        except ConfigError as exc:
            assert exc.key == key, (exc.key, key)
        else:
            raise AssertionError("accepted %r" % (bad,))


def test_partial_sections_merge_with_defaults_and_null_means_default():
    cfg = parse_config({"mqtt": {"host": "b", "keepalive": 30, "qos": None, "user": ""},
                        "publish": {"power_change_w": 0}, "commit": None, "wifi": {"ssid": "net", "password": ""}})
    assert cfg["mqtt"]["keepalive"] == 30 and cfg["mqtt"]["qos"] == 1 and cfg["mqtt"]["timeout_s"] == 5
    assert cfg["mqtt"]["user"] is None          # empty optional strings mean "not set"
    assert cfg["wifi"] == {"ssid": "net", "password": None, "hostname": None}
    assert cfg["publish"] == {"interval_s": 10, "power_change_w": 0}
    assert cfg["commit"] == {"growth_wh": 5, "interval_s": 60}


def test_tls_changes_the_default_port_only():
    assert parse_config({"mqtt": {"host": "b", "tls": True}})["mqtt"]["port"] == 8883
    assert parse_config({"mqtt": {"host": "b", "tls": True, "port": 8884}})["mqtt"]["port"] == 8884
    assert parse_config({"mqtt": {"host": "b", "tls": False}})["mqtt"]["port"] == 1883
    cfg = parse_config({"mqtt": {"host": "b", "tls": True, "ca_file": "/certs/ca.pem"}})
    assert cfg["mqtt"]["ca_file"] == "/certs/ca.pem"


def test_full_config_is_normalised():
    cfg = parse_config(json.dumps(_config()))
    assert cfg["modules"] == [
        {"address": 0x50, "channels": None, "label": "mains", "sensor_class": 1, "ct_models": [3, 2]},
        {"address": 0x51, "channels": None, "label": None, "sensor_class": None, "ct_models": None},
    ]
    assert cfg["mqtt"]["timeout_s"] == 2.5 and cfg["publish"]["power_change_w"] == 25.5
    assert cfg["wifi"]["password"] == WIFI_SECRET and cfg["mqtt"]["password"] == MQTT_SECRET
    for text, expected in (("0x08", 8), ("0X77", 0x77), ("0x5a", 0x5A), ("0x5A", 0x5A)):
        assert parse_config({"mqtt": {"host": "b"}, "modules": [{"address": text}]})["modules"][0]["address"] == expected
    assert parse_config({"mqtt": {"host": "b"}, "log_level": "DEBUG"})["log_level"] == "debug"


def test_example_config_in_the_repository_is_valid():
    with open(REPO + "/config.example.json", "rb") as handle:
        cfg = parse_config(handle.read())
    assert cfg["modules"][0]["address"] == 0x50
    assert cfg["modules"][0]["sensor_class"] == 1
    assert cfg["wifi"]["ssid"] and cfg["mqtt"]["host"]
    for model in cfg["modules"][0]["ct_models"]:
        assert 1 <= model <= 7


# ------------------------------------------------------------------ bad input, class by class
def test_not_json_names_the_place_and_never_echoes_content():
    cases = (
        ('{"mqtt": {"host": "b",}}', "trailing comma", 1, 23),
        ('{"mqtt": {"host": \'b\'}}', "expected a value", 1, 19),
        ('{"mqtt":\n  {"host" "b"}}', "expected ':'", 2, 11),
        ('{"mqtt": {"host": "b"}} x', "unexpected text after the end", 1, 25),
        ('{"mqtt": {"host": "b", "port": 01883}}', "leading zeros", 1, 32),
        ('{"mqtt": {"host": "b", "port": NaN}}', "NaN", 1, 32),
        ('{"mqtt": {"host": "b"}, "modules": [{"address": 0x50}]}', "hex", 1, 49),
        ('{"mqtt": {"host": "b\u0001"}}', "control character", 1, 21),
        ('{"mqtt": {"host": "\\q"}}', "unknown escape", 1, 20),
        ('', "end of file", 1, 1),
    )
    for text, problem, line, column in cases:
        exc = _error(text)
        message = str(exc)
        assert exc.key is None, message
        assert message.startswith("config.json: not valid JSON: "), message
        assert problem in message, (problem, message)
        assert "line %d column %d" % (line, column) in message, message
    exc = _error('{"mqtt": {"password": "' + MQTT_SECRET + '" "host": "b"}}')
    assert "expected ',' or '}'" in str(exc)


def test_truncated_file_is_never_accepted():
    # MicroPython 1.25's json module returns {'a': 1} for '{"a": 1': the reader must not
    text = json.dumps(_config())
    assert parse_config(text)["modules"][1]["address"] == 0x51
    for cut in range(len(text)):
        exc = xrt.raises(ConfigError, parse_config, text[:cut])
        assert exc.key is None and "not valid JSON" in str(exc), (cut, str(exc))
        for secret in SECRETS:
            assert secret not in str(exc)
    assert "incomplete, or still being copied" in str(xrt.raises(ConfigError, parse_config, text[:-1]))


def test_top_level_must_be_an_object():
    for text, kind in (("[]", "a list"), ('"x"', "a string"), ("null", "null"), ("42", "a number")):
        exc = _error(text)
        assert exc.key is None and "must be a JSON object" in str(exc) and kind in str(exc), str(exc)


def test_wrong_types_name_key_and_expected_type():
    _bad("mqtt.port", "must be an integer in 1..65535 (got '1883x')", _set("mqtt.port", "1883x"))
    _bad("mqtt.port", "must be an integer in 1..65535 (got '1883')", _set("mqtt.port", "1883"))
    _bad("mqtt.port", "must be an integer", _set("mqtt.port", 1883.0))
    _bad("mqtt.tls", "must be true or false (got 'yes')", _set("mqtt.tls", "yes"))
    _bad("mqtt.host", "must be a string (got 42)", _set("mqtt.host", 42))
    _bad("mqtt", "must be an object {...} (got a list)", _set("mqtt", [MQTT_SECRET]))
    _bad("wifi", "must be an object {...} (got a string)", _set("wifi", "home"))
    _bad("modules", "must be a list of 1..9 modules (got an object)", _set("modules", {"address": 80}))
    _bad("modules[1]", "must be an object {...} (got a number)", _set("modules.1", 81))
    _bad("modules[0].ct_models", "must be a list of 1..3 CT model codes", _set("modules.0.ct_models", 3))
    _bad("modules[0].ct_models[1]", "must be a CT model code in 1..7 (got '2')", _set("modules.0.ct_models.1", "2"))
    _bad("modules[0].label", "must be a string (got 7)", _set("modules.0.label", 7))
    _bad("publish.interval_s", "must be a number in 1..3600 (got '10')", _set("publish.interval_s", "10"))
    _bad("log_level", "must be one of 'debug', 'info', 'warning', 'error' (got 'verbose')",
         _set("log_level", "verbose"))
    _bad("device_id", "must be a string (got 12)", _set("device_id", 12))


def test_bool_is_not_an_integer_and_integer_is_not_a_bool():
    _bad("mqtt.port", "must be an integer in 1..65535 (got true)", _set("mqtt.port", True))
    _bad("mqtt.qos", "must be 0 or 1 (got false)", _set("mqtt.qos", False))
    _bad("period_s", "must be an integer in 1..3600 (got true)", _set("period_s", True))
    _bad("modules[0].address", "must be an I2C address in 0x08..0x77", _set("modules.0.address", True))
    _bad("publish.power_change_w", "must be a number >= 0 (got false)", _set("publish.power_change_w", False))
    _bad("mqtt.tls", "must be true or false (got 1)", _set("mqtt.tls", 1))
    _bad("homeassistant.discovery", "must be true or false (got 0)", _set("homeassistant.discovery", 0))
    _bad("ntp.enabled", "must be true or false (got 'true')", _set("ntp.enabled", "true"))


def test_out_of_range_values_name_the_range():
    cases = (
        ("mqtt.port", 0, "must be an integer in 1..65535 (got 0)"),
        ("mqtt.port", 65536, "must be an integer in 1..65535 (got 65536)"),
        ("mqtt.keepalive", 9, "must be an integer in 10..3600 (got 9)"),
        ("mqtt.keepalive", 3601, "in 10..3600"),
        ("mqtt.qos", 2, "must be 0 or 1 (got 2)"),
        ("mqtt.timeout_s", 0.4, "must be a number in 0.5..30"),
        ("mqtt.timeout_s", 31, "must be a number in 0.5..30 (got 31)"),
        ("i2c.bus", 4, "must be an integer in 0..3 (got 4)"),
        ("i2c.freq", 400000, "does not support 400 kHz"),
        ("i2c.freq", 9999, "10000..100000"),
        ("i2c.scl", -1, "must be a GPIO number in 0..63 (got -1)"),
        ("drdy_pin", 64, "must be a GPIO number in 0..63 (got 64)"),
        ("modules.0.address", 7, "must be an I2C address in 0x08..0x77 (a number, or a hex string like \"0x50\") (got 7)"),
        ("modules.0.address", 0x78, "(got 120)"),
        ("modules.0.address", "0x7f", "(got '0x7f')"),
        ("modules.0.address", "80", "(got '80')"),
        ("modules.0.address", "0x5g", "(got '0x5g')"),
        ("modules.0.sensor_class", 4, "must be 0 (unset), 1 (SCT-013), 2 (wired CT) or 3 (built-in CT) (got 4)"),
        ("modules.0.ct_models.0", 8, "must be a CT model code in 1..7 (got 8)"),
        ("modules.0.ct_models.0", 0, "(got 0)"),
        ("modules.0.label", "too-long!", "must be a string of 1..8 bytes (got 'too-long!')"),
        ("modules.0.label", "caf\u00e9", "printable ASCII"),
        ("period_s", 0, "must be an integer in 1..3600 (got 0)"),
        ("period_s", 3601, "(got 3601)"),
        ("publish.interval_s", 0.5, "must be a number in 1..3600 (got 0.5)"),
        ("publish.power_change_w", -1, "must be a number >= 0 (got -1)"),
        ("commit.growth_wh", 0.0001, "must be a number in 0.001..1000"),
        ("commit.growth_wh", 1001, "(got 1001)"),
        ("commit.interval_s", 86401, "must be an integer in 1..86400 (got 86401)"),
        ("device_id", "Garage", "may only contain a-z, 0-9, '_' and '-' (got 'Garage')"),
        ("device_id", "x" * 33, "must be a string of 1..32 bytes"),
        ("wifi.ssid", "s" * 33, "must be a string of 1..32 bytes"),
        ("wifi.hostname", "-gw", "must not start or end with '-'"),
        ("wifi.hostname", "gw.local", "may only contain letters, digits and '-'"),
        ("mqtt.host", "mqtt://broker", "without a scheme"),
        ("mqtt.host", "broker:1883", "give the port in the 'port' key"),
        ("mqtt.host", "", "must not be empty"),
        ("mqtt.client_id", "my gateway", "must not contain spaces"),
        ("ntp.host", "", "must not be empty"),
    )
    for path, value, problem in cases:
        key = path.replace(".0.", "[0].").replace(".0", "[0]")
        _bad(key, problem, _set(path, value))
    # a huge exponent is infinity, not a number in range
    exc = _error('{"mqtt": {"host": "b", "timeout_s": 1e999}}')
    assert exc.key == "mqtt.timeout_s" and "must be a number in 0.5..30" in str(exc), str(exc)


def test_bad_base_topic_and_discovery_prefix():
    for value, problem in (
        ("rbamp/+", "wildcards '+' or '#'"),
        ("rbamp/#", "wildcards '+' or '#'"),
        ("/rbamp", "must not start or end with '/'"),
        ("rbamp/", "must not start or end with '/'"),
        ("home//rbamp", "empty level"),
        ("$SYS/rbamp", "must not start with '$'"),
        ("", "must not be empty"),
        ("t" * 65, "1..64 bytes"),
    ):
        _bad("mqtt.base_topic", problem, _set("mqtt.base_topic", value))
    _bad("homeassistant.prefix", "wildcards", _set("homeassistant.prefix", "ha/#"))
    assert parse_config({"mqtt": {"host": "b", "base_topic": "a/b/c"}})["mqtt"]["base_topic"] == "a/b/c"


def test_missing_required_keys():
    _bad("mqtt.host", "required key missing", _delete("mqtt.host"))
    _bad("mqtt.host", "must be set (got null)", _set("mqtt.host", None))
    _bad("mqtt.host", "required key missing", _delete("mqtt"))
    _bad("modules[1].address", "required key missing", _set("modules.1", {"label": "x"}))
    exc = _error("{}")
    assert exc.key == "mqtt.host" and "required key missing" in str(exc)


def test_unknown_keys_are_errors_with_suggestions():
    def add(path, value):
        parts = path.split(".")

        def mutate(config):
            node = config
            for part in parts[:-1]:
                node = node[int(part)] if type(node) is list else node[part]
            node[parts[-1]] = value

        return mutate

    cases = (
        ("mqtt.prot", 1883, "unknown key (did you mean 'port'?)"),
        ("mqtt.hots", "b", "unknown key (did you mean 'host'?)"),        # swapped letters
        ("mqtt.Keepalive", 30, "unknown key (did you mean 'keepalive'?)"),
        ("wifi.pasword", WIFI_SECRET, "unknown key (did you mean 'password'?)"),
        ("mqtt.basetopic", "x", "unknown key (did you mean 'base_topic'?)"),
        ("homeassitant", {}, "unknown key (did you mean 'homeassistant'?)"),
        ("port", 1883, "unknown key (did you mean 'mqtt.port' or 'web.port'?)"),
        ("host", "b", "unknown key (did you mean 'mqtt.host' or 'ntp.host'?)"),
        ("mqtt.ssid", "x", "unknown key (did you mean 'wifi.ssid'?)"),
        ("address", 80, "unknown key (did you mean 'modules[].address'?)"),
        ("modules.0.adress", 81, "unknown key (did you mean 'address'?)"),
        ("modules.0.ct_model", [3], "unknown key (did you mean 'ct_models'?)"),
        ("mqtt.retain", True, "unknown key"),
    )
    for path, value, problem in cases:
        key = path.replace(".0.", "[0].")
        message = _bad(key, problem, add(path, value))
        if problem == "unknown key":
            assert "did you mean" not in message, message
    # unknown keys are reported before the missing key they probably meant to spell
    exc = _error({"mqtt": {"hots": "b"}})
    assert exc.key == "mqtt.hots", str(exc)


def test_duplicates_are_errors():
    message = _bad("modules[1].address", "0x50 is already used by modules[0]", _set("modules.1.address", 80))
    assert "modules[1].address" in message
    _bad("modules[2].address", "0x51 is already used by modules[1]",
         lambda config: config["modules"].append({"address": "0x51"}))
    # a key given twice in the file would silently lose the first value
    exc = _error('{"mqtt": {"host": "a", "port": 1883,\n "port": 1884}}')
    assert exc.key == "mqtt.port" and "appears twice (line 2 column 2)" in str(exc), str(exc)


def test_module_count_limits():
    # one energy journal record holds m modules of c channels in all while m + c <= 19 (store.py)
    _bad("modules[0].ct_models", "must be a list of 1..3 CT model codes, one per channel (got a list of 4)",
         _set("modules", [{"address": 0x50, "ct_models": [3, 6, 1, 2]}]))
    _bad("modules", "must be a list of 1..9 modules (got a list of 0)", _set("modules", []))
    ten = [{"address": 0x08 + index} for index in range(10)]
    _bad("modules", "must be a list of 1..9 modules", _set("modules", ten))
    nine = parse_config({"mqtt": {"host": "b"}, "modules": ten[:9]})
    assert [module["address"] for module in nine["modules"]] == list(range(0x08, 0x11))
    # declared channels count as declared, the others as the one channel every module has
    three_each = [{"address": 0x08 + index, "channels": 3} for index in range(5)]
    _bad("modules", "5 modules with 15 channels do not fit the energy journal (modules + channels <= 19",
         _set("modules", three_each))
    message = _bad("modules", "6 modules with 14 channels do not fit",
                   _set("modules", three_each[:4] + [{"address": 0x20}, {"address": 0x21}]))
    assert "a module without 'channels' counts 1" in message, message
    fits = parse_config({"mqtt": {"host": "b"}, "modules": three_each[:4] + [{"address": 0x30}]})
    assert [module["channels"] for module in fits["modules"]] == [3, 3, 3, 3, None]


def test_the_journal_limit_is_the_stores():
    from gateway.config_schema import JOURNAL_MODULES_AND_CHANNELS, MAX_MODULES
    from gateway.store import RECORD_LIMIT, record_length

    for modules in range(1, MAX_MODULES + 2):
        for channels in range(modules, 3 * modules + 1):
            fits = record_length(modules, 2 * channels) <= RECORD_LIMIT
            assert fits == (modules + channels <= JOURNAL_MODULES_AND_CHANNELS), (modules, channels)
    assert record_length(MAX_MODULES + 1, 2 * (MAX_MODULES + 1)) > RECORD_LIMIT


def test_rules_that_span_keys():
    _bad("mqtt.ca_file", "only used with \"tls\": true", _set("mqtt.ca_file", "/ca.pem"))
    _bad("i2c.sda", "must be given together with i2c.scl", _set("i2c.sda", None))
    _bad("i2c.scl", "must be given together with i2c.sda", _set("i2c.scl", None))
    _bad("i2c.sda", "must differ from i2c.scl", _set("i2c.sda", 22))
    _bad("drdy_pin", "is already used by the I2C bus (got 21)", _set("drdy_pin", 21))
    both_default = _config()
    both_default["i2c"]["scl"] = None
    both_default["i2c"]["sda"] = None
    cfg = parse_config(both_default)
    assert cfg["i2c"]["scl"] is None and cfg["drdy_pin"] == 4
    # MQTT 3.1.1 sends a password only with a user name: a lone password would silently do nothing
    message = _bad("mqtt.password", "is only sent together with a user name (set mqtt.user",
                   _set("mqtt.user", None))
    assert message.endswith("the password)"), message
    cfg = parse_config({"mqtt": {"host": "b", "user": "gw"}})
    assert cfg["mqtt"]["user"] == "gw" and cfg["mqtt"]["password"] is None


def test_wifi_password_is_a_wpa2_passphrase_or_key():
    rule = "wifi.password: must be a WPA2 passphrase of 8..63 characters, or exactly 64 hex digits (got a string)"
    key = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789"
    for good in ("8chars!!", "p" * 63, key, "caf\u00e9-ol\u00e9"):
        cfg = parse_config({"mqtt": {"host": "b"}, "wifi": {"ssid": "home", "password": good}})
        assert cfg["wifi"]["password"] == good
    for bad in ("7chars!", "q1", key[:-1] + "g", " " * 64):
        config = _config()
        config["wifi"]["password"] = bad
        message = str(_error(config))
        assert message == "config.json: " + rule, message
        assert bad not in message
    # 65 bytes: the length rule speaks first, still without the value
    config = _config()
    config["wifi"]["password"] = key + "0"
    assert str(_error(config)) == "config.json: wifi.password: must be a string of 1..64 bytes (got a string)"


# ------------------------------------------------------------------ secrets
def test_secret_values_never_appear_in_messages():
    # wrong type under a secret key: the kind is shown, never the value
    message = _bad("mqtt.password", "must be a string (got a number)", _set("mqtt.password", 4511))
    assert "4511" not in message
    message = _bad("wifi.password", "must be a string (got a list)", _set("wifi.password", [WIFI_SECRET]))
    # too long a password: still named, still not shown
    long_secret = "p" * 65
    config = _config()
    config["wifi"]["password"] = long_secret
    message = str(_error(config))
    assert "wifi.password: must be a string of 1..64 bytes (got a string)" in message and long_secret not in message
    # the same secret typed into a field that echoes its value is scrubbed there too
    for path in ("mqtt.port", "mqtt.keepalive", "i2c.bus", "modules.0.address", "log_level"):
        message = _bad(path.replace(".0.", "[0]."), "(got '***')", _set(path, MQTT_SECRET))
    # a secret under a misspelt key is not shown by the unknown-key message either
    config = _config()
    config["mqtt"]["passwd"] = "other-secret-77"
    config["mqtt"]["port"] = "other-secret-77"
    message = str(_error(config))
    assert "other-secret-77" not in message, message


def test_redact_replaces_every_secret_and_copies():
    cfg = parse_config(_config())
    safe = redact(cfg)
    assert safe["mqtt"]["password"] == "***" and safe["wifi"]["password"] == "***"
    assert safe["mqtt"]["user"] == "gw" and safe["wifi"]["ssid"] == "home"
    text = json.dumps(safe)
    for secret in SECRETS:
        assert secret not in text and secret not in repr(safe)
    # the original is untouched and the copy shares nothing mutable with it
    assert cfg["mqtt"]["password"] == MQTT_SECRET
    safe["modules"][0]["ct_models"].append(7)
    assert cfg["modules"][0]["ct_models"] == [3, 2]
    # unset passwords stay null, so a status page can say "no password"
    assert redact(DEFAULTS)["mqtt"]["password"] is None
    # passwords anywhere, also in raw documents with foreign keys
    raw = {"a": [{"password": "x1"}, {"nested": {"api_token": "x2", "wifi_psk": "x3"}}], "password": None}
    assert redact(raw) == {"a": [{"password": "***"}, {"nested": {"api_token": "***", "wifi_psk": "***"}}],
                           "password": None}
    assert "password" in SECRET_KEYS


def test_load_result_repr_and_logged_error_hold_no_secret():
    main, good = _paths("secret_log")
    config = _config()
    config["mqtt"]["port"] = "1883x"
    _write(main, json.dumps(config))
    result = load_config(main, good)
    lines = []
    log = Logger(level="debug", sink=lines.append)
    for secret in SECRETS:
        log.add_secret(secret)
    log.error("%s", result.error)
    log.info("config: %r", redact(result.config))
    log.debug("raw: %r", config)            # even a careless debug line of the raw document
    assert "mqtt.port" in lines[0]
    for text in lines + [repr(result)] + log.recent(10):
        for secret in SECRETS:
            assert secret not in text, text


# ------------------------------------------------------------------ load_config and fallbacks
def test_valid_file_is_used_and_kept_as_last_good():
    main, good = _paths("ok")
    text = json.dumps(_config())
    _write(main, text)
    result = load_config(main, good)
    assert result.ok and result.error is None and result.source == "file" and not result.safe_mode
    assert result.config == parse_config(text)
    assert _read(good) == text.encode() and not _exists(good + ".tmp")
    assert result.warnings == []


def test_last_good_is_rewritten_only_when_the_content_differs():
    main, good = _paths("differs")
    text = json.dumps(_config())
    _write(main, text)
    load_config(main, good)
    inode = os.stat(good)[1]
    assert load_config(main, good).ok
    assert os.stat(good)[1] == inode, "identical content must not be written again"
    changed = _config()
    changed["period_s"] = 30
    _write(main, json.dumps(changed))
    result = load_config(main, good)
    assert result.ok and result.config["period_s"] == 30
    assert _read(good) == json.dumps(changed).encode()
    assert os.stat(good)[1] != inode, "a new copy replaces the old one by rename, not in place"
    # a leftover .tmp from a power cut during an earlier write does not get in the way
    _write(good + ".tmp", "{garbage")
    _write(main, text)
    assert load_config(main, good).ok and _read(good) == text.encode() and not _exists(good + ".tmp")


def test_bad_file_falls_back_to_last_good():
    main, good = _paths("fallback")
    good_config = _config()
    _write(main, json.dumps(good_config))
    assert load_config(main, good).ok
    kept = _read(good)
    broken = _config()
    broken["mqtt"]["port"] = "1883x"
    _write(main, json.dumps(broken))
    result = load_config(main, good)
    assert not result.ok and result.source == "last_good" and not result.safe_mode
    assert result.error == "fallback.json: mqtt.port: must be an integer in 1..65535 (got '1883x')", result.error
    assert result.config == parse_config(good_config)
    assert _read(good) == kept, "a bad file must never replace the last good copy"


def test_truncated_file_on_disk_falls_back_to_last_good():
    main, good = _paths("truncated")
    text = json.dumps(_config())
    _write(main, text)
    assert load_config(main, good).ok
    changed = _config()
    changed["period_s"] = 15
    changed_text = json.dumps(changed)
    for cut in (1, len(changed_text) // 2, len(changed_text) - 1):
        _write(main, changed_text[:cut])   # someone is copying the new file right now
        result = load_config(main, good)
        assert result.source == "last_good" and result.config["period_s"] == 60, (cut, result.error)
        assert "not valid JSON" in result.error and "still being copied" in result.error
    _write(main, changed_text)                # the copy finished
    result = load_config(main, good)
    assert result.ok and result.config["period_s"] == 15


def test_missing_file_is_an_error_and_falls_back():
    main, good = _paths("missing")
    _write(good, json.dumps(_config()))
    result = load_config(main, good)
    assert result.error == "missing.json not found" and result.source == "last_good" and not result.safe_mode
    _remove(good)
    result = load_config(main, good)
    assert result.error == "missing.json not found" and result.source == "defaults" and result.safe_mode
    assert result.config == DEFAULTS and result.config is not DEFAULTS
    assert not _exists(good)
    # the board's file name appears as is
    result = load_config(xrt.tmp_path("config.json"), None)
    assert result.error == "config.json not found"


def test_both_bad_runs_on_defaults_in_safe_mode():
    main, good = _paths("bothbad")
    _write(main, '{"mqtt": {"host": "b", "password": "' + MQTT_SECRET + '"')   # truncated
    _write(good, "{\"mqtt\": {}}")
    result = load_config(main, good)
    assert result.safe_mode and result.source == "defaults" and not result.ok
    assert result.config == DEFAULTS and result.salvaged == []
    assert "bothbad.json: not valid JSON" in result.error
    assert any("bothbad.last_good.json: mqtt.host: required key missing" in w for w in result.warnings), result.warnings
    for text in [result.error, repr(result)] + result.warnings:
        assert MQTT_SECRET not in text


def test_safe_mode_keeps_the_valid_hardware_sections_of_a_broken_file():
    main, good = _paths("salvage")
    config = _config()
    config["mqtt"]["port"] = 0                       # the error
    config["modules"] = [{"address": "0x51"}, {"address": 82, "label": "pv"}]
    config["period_s"] = 30
    config["commit"] = {"growth_wh": "lots"}         # invalid section: stays at its default
    _write(main, json.dumps(config))
    result = load_config(main, good)
    assert result.safe_mode and result.source == "defaults" and "mqtt.port" in result.error
    cfg = result.config
    assert [m["address"] for m in cfg["modules"]] == [0x51, 82] and cfg["modules"][1]["label"] == "pv"
    assert cfg["period_s"] == 30 and cfg["i2c"]["scl"] == 22 and cfg["drdy_pin"] == 4
    assert cfg["commit"] == DEFAULTS["commit"]
    assert cfg["mqtt"] == DEFAULTS["mqtt"] and cfg["wifi"] == DEFAULTS["wifi"], "no network settings in safe mode"
    assert sorted(result.salvaged) == ["drdy_pin", "i2c", "log_level", "modules", "period_s"]
    # pins that clash are not half-taken
    config["drdy_pin"] = 21
    _write(main, json.dumps(config))
    cfg = load_config(main, good).config
    assert cfg["i2c"] == DEFAULTS["i2c"] and cfg["drdy_pin"] is None


def test_oversized_and_unwritable_cases():
    main, good = _paths("big")
    config = _config()
    config["device_id"] = "x" * 20000            # invalid anyway, but the size check comes first
    _write(main, json.dumps(config))
    result = load_config(main, good)
    assert result.safe_mode and result.error == "big.json: larger than 16384 bytes", result.error
    # a last good copy that cannot be written is a warning, not a failure
    _write(main, json.dumps(_config()))
    nowhere = xrt.tmp_path("no-such-dir/last_good.json")
    result = load_config(main, nowhere)
    assert result.ok and result.source == "file" and len(result.warnings) == 1
    assert "could not keep a last good copy" in result.warnings[0]
    # without a last good path at all
    assert load_config(main, None).ok


def test_every_schema_key_is_documented():
    from gateway.config_schema import ROWS, SECTION, path_of

    with open(REPO + "/docs/config.md") as handle:
        doc = handle.read()
    tables = {"": doc.split("### ")[1], "modules[]": doc.split("### `modules`")[1].split("### ")[0]}
    for row in ROWS:
        if row[2] == SECTION and row[1] != "[]":
            heading = "### `%s`" % path_of(row)
            assert heading in doc, heading
            tables[path_of(row)] = doc.split(heading)[1].split("### ")[0]
    documented = 0
    for row in ROWS:
        if row[1] == "[]":
            continue  # a list's entries, documented with the list
        assert "| `%s` |" % row[1] in tables[row[0]], path_of(row)
        documented += 1
    assert documented == 56, documented  # every key of the table, none skipped
