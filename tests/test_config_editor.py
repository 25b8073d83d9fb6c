"""gateway.config_editor on every runtime: what the web page is shown (no secret, which ones are
set), how a document sent back is merged (blank keeps a secret), checked by the board's own
parser (nothing written on a bad value) and written (atomically, the old valid file kept as the
last good copy, indented in the schema's order)."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import json
import os

import xrt
from gateway.config import MAX_FILE_BYTES, ConfigError, load_config, parse_config, parse_json
from gateway.config_editor import (MAX_DOCUMENT_BYTES, STORED_FILE_BYTES, ConfigEditor, encode, merge_secrets,
                                   redacted)

STORED = {"device_id": "kitchen",
          "wifi": {"ssid": "home", "password": "wifi-pass-1"},
          "mqtt": {"host": "broker.lan", "port": 1883, "user": "meter", "password": "mqtt-pass-2"},
          "modules": [{"address": "0x50", "label": "house", "ct_models": [1, 2]}],
          "publish": {"interval_s": 10, "power_change_w": 12.5},
          "web": {"password": None}}


class _Board:
    def __init__(self, folder):
        self.config_path = folder + "/config.json"
        self.last_good_path = folder + "/config.last_good.json"


def _fresh(name, stored=STORED, text=None, last_good=None):
    folder = xrt.tmp_path(name)
    try:
        for entry in os.listdir(folder):
            os.remove(folder + "/" + entry)
    except OSError:
        os.mkdir(folder)
    board = _Board(folder)
    if text is None and stored is not None:
        text = json.dumps(stored)
    if text is not None:
        with open(board.config_path, "w") as handle:
            handle.write(text)
    if last_good is not None:
        with open(board.last_good_path, "w") as handle:
            handle.write(last_good)
    result = load_config(board.config_path, None)
    return board, ConfigEditor(board, result)


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def test_the_view_blanks_every_set_secret_and_names_them():
    board, editor = _fresh("view")
    view = editor.view()
    text = json.dumps(view)
    assert "wifi-pass-1" not in text and "mqtt-pass-2" not in text, text
    assert view["config"]["wifi"]["password"] == "" and view["config"]["mqtt"]["password"] == ""
    assert view["config"]["web"]["password"] is None  # not set: stays null, not listed
    assert sorted(view["secrets_set"]) == ["mqtt.password", "wifi.password"]
    assert view["config"]["mqtt"]["user"] == "meter" and view["config"]["modules"][0]["address"] == "0x50"
    assert view["in_use"] == "config.json" and view["error"] is None
    # the editor's text: the same document, secrets blank, keys in the schema's order
    assert json.loads(view["text"]) == view["config"] and "wifi-pass-1" not in view["text"]
    top = [line.split('"')[1] for line in view["text"].split("\n") if line.startswith('  "')]
    assert top.index("wifi") < top.index("mqtt") < top.index("modules"), top
    shown, found = redacted({"a": [{"token": "t"}, {"token": ""}], "pass_hint": "x"})
    assert shown == {"a": [{"token": ""}, {"token": ""}], "pass_hint": ""} and found == ["a[0].token", "pass_hint"], (
        shown, found)


def test_a_blank_secret_keeps_the_stored_value_null_unsets_and_a_new_one_replaces():
    stored = {"wifi": {"ssid": "a", "password": "old-wifi"}, "mqtt": {"password": "old-mqtt", "user": "u"},
              "web": {"password": "old-web"}}
    sent = {"wifi": {"ssid": "b", "password": ""}, "mqtt": {"password": None, "user": "u"},
            "web": {"password": "new-web"}, "setup": {"ap_password": ""}}
    merged = merge_secrets(sent, stored)
    assert merged == {"wifi": {"ssid": "b", "password": "old-wifi"}, "mqtt": {"password": None, "user": "u"},
                      "web": {"password": "new-web"}, "setup": {}}, merged  # never set: stays unset
    assert sent["wifi"]["password"] == ""  # the document sent is not changed
    assert merge_secrets({"m": [{"psk": ""}, {"psk": ""}]}, {"m": [{"psk": "k0"}]}) == {"m": [{"psk": "k0"}, {}]}


def test_a_bad_value_raises_the_checkers_error_and_writes_nothing():
    board, editor = _fresh("bad")
    before = _read(board.config_path)
    view = editor.view()
    document = view["config"]
    document["mqtt"]["port"] = 70000
    error = xrt.raises(ConfigError, editor.save, document)
    assert error.key == "mqtt.port" and "must be an integer in 1..65535" in str(error), error
    assert "mqtt-pass-2" not in str(error)
    for body in (b'{"mqtt": ', b"[1, 2]", b"{" * 20000, b'{"wifi": {"ssid": "x"}, "wifi": {}}'):
        xrt.raises(ConfigError, editor.save, body)
    document["mqtt"]["port"] = 1883
    document["colour"] = "blue"
    unknown = document
    assert xrt.raises(ConfigError, editor.save, unknown).key == "colour"
    assert _read(board.config_path) == before
    assert _read(board.last_good_path) is None and _read(board.config_path + ".tmp") is None


def test_a_good_document_replaces_the_file_and_the_old_one_becomes_the_last_good_copy():
    board, editor = _fresh("good")
    before = _read(board.config_path)
    document = editor.view()["config"]
    document["publish"]["interval_s"] = 30
    document["tz"] = "CET-1CEST,M3.5.0,M10.5.0/3"
    document["web"]["password"] = "a-web-password"
    editor.save(json.dumps(document).encode())
    assert _read(board.last_good_path) == before
    assert _read(board.config_path + ".tmp") is None
    written = parse_json(_read(board.config_path))
    assert written["wifi"]["password"] == "wifi-pass-1" and written["mqtt"]["password"] == "mqtt-pass-2"
    assert written["web"]["password"] == "a-web-password" and written["publish"]["interval_s"] == 30
    assert written["publish"]["power_change_w"] == 12.5 and written["modules"][0]["ct_models"] == [1, 2]
    config = load_config(board.config_path, board.last_good_path)
    assert config.ok and config.config["tz"] == "CET-1CEST,M3.5.0,M10.5.0/3", config
    # a second save keeps the first saved file as the last good copy
    document["publish"]["interval_s"] = 20
    first = _read(board.config_path)
    editor.save(document)
    assert _read(board.last_good_path) == first


def test_the_written_file_is_indented_in_the_schemas_order_and_reads_back_the_same():
    document = {"web": {"port": 8080, "enabled": True}, "modules": [{"label": "a\"b", "address": 80}],
                "mqtt": {"port": 1883, "host": "h"}, "device_id": "x", "publish": {"interval_s": 2.5},
                "log_level": "info", "ntp": {"servers": ["a.example", "b.example"]}}
    data = encode(document)
    text = data.decode()
    assert parse_json(data) == document
    lines = text.split("\n")
    assert lines[0] == "{" and lines[1] == '  "device_id": "x",' and text.endswith("}\n"), text
    keys = [line.strip().split('"')[1] for line in lines if line.startswith('  "')]
    assert keys == ["device_id", "mqtt", "modules", "publish", "ntp", "web", "log_level"], keys
    assert '    "host": "h",\n    "port": 1883' in text and '"enabled": true,\n    "port": 8080' in text, text
    assert '"servers": ["a.example", "b.example"]' in text
    assert '"address": 80,\n      "label": "a\\"b"' in text, text
    parse_config(document)


def test_a_broken_config_json_is_never_kept_as_the_last_good_copy():
    good = json.dumps(STORED)
    board, editor = _fresh("broken", text='{"mqtt": {"host": "x",}}', last_good=good)
    view = editor.view()
    assert view["in_use"] == "safe_mode" and "trailing comma" in view["error"], view  # no last good given to load
    assert view["config"]["mqtt"]["user"] == "meter"  # the document shown: the last good copy
    document = view["config"]
    document["device_id"] = "fixed"
    editor.save(document)
    assert _read(board.last_good_path) == good.encode()  # not the broken file
    written = parse_json(_read(board.config_path))
    assert written["device_id"] == "fixed" and written["wifi"]["password"] == "wifi-pass-1"


def test_without_any_file_the_document_starts_empty_and_size_is_bounded():
    board, editor = _fresh("empty", stored=None)
    view = editor.view()
    assert view["config"] == {} and view["secrets_set"] == [] and view["in_use"] == "safe_mode", view
    editor.save({"mqtt": {"host": "broker.lan"}, "wifi": {"ssid": "home", "password": "a-wifi-password"}})
    assert parse_json(_read(board.config_path))["wifi"]["password"] == "a-wifi-password"
    assert _read(board.last_good_path) is None  # there was no valid file to keep
    huge = b'{"device_id": "' + b"x" * MAX_DOCUMENT_BYTES + b'"}'
    assert "larger than" in str(xrt.raises(ConfigError, editor.save, huge))
    assert STORED_FILE_BYTES == MAX_FILE_BYTES  # the editor reads what the loader would
