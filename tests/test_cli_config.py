"""Host tests of ``rbamp config create`` and ``config validate``: the gateway's own parser decides,
so the CLI's verdict must be exactly the gateway's."""

import json
import os
import stat

from gateway.config import ConfigError, parse_config
from support_cli import ROOT, assert_one_line_error, cli

BAD_CONFIGS = {
    "port.json": '{"mqtt": {"host": "h", "port": "1883x"}}',
    "comma.json": '{"mqtt": {"host": "h",}}',
    "unknown.json": '{"mqtt": {"host": "h", "prot": 1}}',
    "missing.json": '{"mqtt": {}}',
    "address.json": '{"mqtt": {"host": "h"}, "modules": [{"address": "0x80"}]}',
    "truncated.json": '{"mqtt": {"host": "h"}',
    "wpa.json": '{"mqtt": {"host": "h"}, "wifi": {"ssid": "home", "password": "short"}}',
    "lone-password.json": '{"mqtt": {"host": "h", "password": "no-user-secret"}}',
    "journal.json": '{"mqtt": {"host": "h"}, "modules": [' + ", ".join(
        '{"address": %d, "channels": 3}' % address for address in range(80, 85)) + ']}',
}


def test_create_writes_a_config_the_gateway_accepts(capsys, tmp_path):
    path = tmp_path / "config.json"
    result = cli(capsys, "config", "create", str(path), "--broker", "192.168.1.10:1884", "--wifi-ssid", "home",
                 "--wifi-password", "wifi-secret-1", "--mqtt-user", "meter", "--mqtt-password", "mqtt-secret-2",
                 "--module", "0x50:mains:sct013:3,6", "--module", "0x51", "--scl", "22", "--sda", "21",
                 "--drdy-pin", "4", "--period", "30", "--device-id", "house")
    assert result.code == 0, result.err
    assert "wrote" in result.out and "(valid)" in result.out
    assert "secret" not in result.out + result.err
    config = parse_config(path.read_text())
    assert config["mqtt"]["host"] == "192.168.1.10" and config["mqtt"]["port"] == 1884
    assert config["mqtt"]["password"] == "mqtt-secret-2" and config["wifi"]["password"] == "wifi-secret-1"
    assert [m["address"] for m in config["modules"]] == [0x50, 0x51]
    assert config["modules"][0]["ct_models"] == [3, 6] and config["modules"][0]["sensor_class"] == 1
    assert config["i2c"]["scl"] == 22 and config["drdy_pin"] == 4 and config["period_s"] == 30
    assert config["device_id"] == "house"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it holds passwords
    check = cli(capsys, "config", "validate", str(path))
    assert check.code == 0 and "is valid" in check.out


def test_create_keeps_an_existing_file_unless_forced(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text("keep me")
    assert_one_line_error(cli(capsys, "config", "create", str(path), "--broker", "h"), 1, "already exists", "--force")
    assert path.read_text() == "keep me"
    result = cli(capsys, "config", "create", str(path), "--broker", "broker.lan", "--force", "--json")
    assert result.code == 0, result.err
    assert result.json()["mqtt"]["host"] == "broker.lan"
    assert parse_config(path.read_text())["modules"][0]["address"] == 0x50


def test_create_refuses_what_the_gateway_would_refuse(capsys, tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    assert_one_line_error(cli(capsys, "config", "create", str(path), "--broker", "mqtt://h"), 1,
                          "config.json: mqtt.host:", "without a scheme")
    assert_one_line_error(cli(capsys, "config", "create", str(path), "--broker", "h", "--scl", "5"), 1, "i2c.sda")
    assert_one_line_error(cli(capsys, "config", "create", str(path), "--broker", "h", "--i2c-freq", "400000"), 1,
                          "i2c.freq", "400 kHz")
    assert_one_line_error(cli(capsys, "config", "create", str(path), "--broker", "h", "--module", "0x50:x:9"), 2,
                          "sensor class '9'")
    assert_one_line_error(cli(capsys, "config", "create", str(path), "--broker", "h", "--module",
                              "0x50:ok:sct013:3,6,1,2"), 2, "4 CT models given", "at most 3 channels")
    assert_one_line_error(cli(capsys, "config", "create", str(path), "--broker", "h", "--mqtt-password", "pw-secret"),
                          1, "mqtt.password:", "only sent together with a user name")
    assert_one_line_error(cli(capsys, "config", "create", str(path), "--broker", "h", "--wifi-ssid", "home",
                              "--wifi-password", "short"), 1, "wifi.password:", "64 hex digits")
    assert not path.exists()
    monkeypatch.setenv("RBAMP_MQTT_PASSWORD", "from-the-environment")
    result = cli(capsys, "--json", "config", "create", str(path), "--broker", "h", "--mqtt-user", "u")
    assert result.code == 0 and result.json()["mqtt"]["password"] == "***"
    assert parse_config(path.read_text())["mqtt"]["password"] == "from-the-environment"


def test_validate_reports_exactly_the_gateway_message(capsys, tmp_path):
    for name, text in BAD_CONFIGS.items():
        path = tmp_path / name
        path.write_text(text)
        try:
            parse_config(text, name)
        except ConfigError as exc:
            expected = str(exc)
        else:
            raise AssertionError("%s should be invalid" % name)
        result = cli(capsys, "config", "validate", str(path))
        assert_one_line_error(result, 1)
        assert result.err == "rbamp: error: %s\n" % expected
        as_json = cli(capsys, "config", "validate", str(path), "--json")
        assert as_json.code == 1 and as_json.json() == {"path": str(path), "valid": False, "error": expected,
                                                        "config": None}
    assert_one_line_error(cli(capsys, "config", "validate", str(tmp_path / "absent.json")), 1, "absent.json not found")


def test_validate_the_example_config_without_showing_its_passwords(capsys):
    example = os.path.join(ROOT, "config.example.json")
    result = cli(capsys, "config", "validate", example, "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["valid"] is True and data["config"]["mqtt"]["password"] == "***"
    with open(example) as handle:
        assert json.load(handle)["mqtt"]["password"] not in result.out
