"""The strict JSON reader (gateway.jsonstrict): RFC 8259 values, and every document that
MicroPython's own json module would take wrongly refused with the place named."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import json

import xrt
from gateway.jsonstrict import JsonError, parse_json


def _refused(text, source="document"):
    exc = xrt.raises(JsonError, parse_json, text, source)
    assert isinstance(exc, ValueError)
    return exc


def test_values_and_escapes():
    doc = parse_json('{"s": "a\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00", "n": [-0, -12, 3.5, 1e3, -2.5E-2, 0.125],'
                     ' "t": [true, false, null], "e": {}, "l": [], "u": "\u00fcml\u00e4ut"}')
    assert doc["s"] == 'a"b\\c/d\n\t\u00e9\U0001F600'
    assert doc["n"][:2] == [0, -12] and type(doc["n"][1]) is int
    assert doc["n"][2:] == [3.5, 1000.0, -0.025, 0.125] and type(doc["n"][3]) is float
    assert doc["t"] == [True, False, None] and doc["e"] == {} and doc["l"] == []
    assert doc["u"] == "\u00fcml\u00e4ut"
    # a byte-order mark from a Windows editor is not an error
    assert parse_json(b"\xef\xbb\xbf{\"a\": 1}") == {"a": 1}
    assert parse_json(bytearray(b' \r\n\t{"a" :1 } \n')) == {"a": 1}
    # top-level scalars are JSON too (what a config must be is the checker's business)
    assert parse_json("42") == 42 and parse_json('"x"') == "x" and parse_json("null") is None


def test_agrees_with_cpython_json_on_a_config_sized_document():
    doc = {"device_id": "garage-1", "mqtt": {"host": "192.168.1.10", "port": 1883, "timeout_s": 2.5,
                                             "password": "p\u00e4ss \"q\"\\"},
           "modules": [{"address": "0x50", "ct_models": [3, 2]}, {"address": 81, "label": None}],
           "flags": [True, False], "nested": {"a": {"b": {"c": []}}}}
    compact = json.dumps(doc)
    for text in (compact, compact.replace(", ", ",\n\t ").replace("{", "{\r\n ")):
        assert parse_json(text) == doc
        assert parse_json(text.encode("utf-8")) == doc


def test_rejections_name_the_problem():
    for text, problem in (
        ('{"a": "\\ud83d"}', "unpaired surrogate"),
        ('{"a": "\\ude00"}', "unpaired surrogate"),
        ('{"a": "\\u00g1"}', "bad \\u escape"),
        ('{"a": [1, 2,]}', "trailing comma before ']'"),
        ('{"a": 1,}', "trailing comma before '}'"),
        ('{"a": 1.}', "digits after '.'"),
        ('{"a": 1e}', "digits in the exponent"),
        ('{"a": -}', "expected digits"),
        ('{"a": tru}', "expected a value"),
        ("{a: 1}", "expected a key in double quotes"),
        ('{"a": Infinity}', "NaN and Infinity"),
        ('{"a": NaN}', "NaN and Infinity"),
        ('{"a": 0x50}', "no hex numbers"),
        ('{"a": 010}', "leading zeros"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        ('{"a": "x\ny"}', "control character inside a string"),
        ('{"a": 1} {}', "unexpected text after the end of the document"),
        ("[" * 40 + "]" * 40, "nested too deeply"),
    ):
        exc = _refused(text)
        assert exc.key is None, (text, str(exc))
        assert str(exc).startswith("document: not valid JSON: ") and problem in str(exc), (text, str(exc))


def test_every_truncation_is_refused():
    # MicroPython 1.25's json module returns {'a': 1} for '{"a": 1': this reader never does
    text = '{"mqtt": {"host": "b", "port": 1883, "tls": false},\n "modules": [{"address": "0x50"}, 81]}'
    assert parse_json(text)["modules"][1] == 81
    for cut in range(len(text)):
        exc = _refused(text[:cut], "cut.json")
        assert exc.key is None and str(exc).startswith("cut.json: not valid JSON: "), (cut, str(exc))
    assert "unexpected end of file (is it incomplete, or still being copied?) at line 2 column 38" in \
        str(_refused(text[:-1]))


def test_line_and_column_are_counted_in_bytes_from_one():
    exc = _refused('{\n  "a": 1,\n  "b" 2\n}')
    assert str(exc) == "document: not valid JSON: expected ':' after a key at line 3 column 7", str(exc)
    exc = _refused('{"\u00e9": x}')
    assert "at line 1 column 8" in str(exc), str(exc)   # the key's two UTF-8 bytes count twice


def test_a_key_given_twice_is_refused_with_its_path():
    exc = _refused('{"mqtt": {"host": "a", "port": 1883,\n "port": 1884}}', "config.json")
    assert exc.key == "mqtt.port"
    assert str(exc) == "config.json: mqtt.port: appears twice (line 2 column 2)", str(exc)
    exc = _refused('{"modules": [{"address": 80}, {"address": 81, "address": 82}]}')
    assert exc.key == "modules[1].address", exc.key
    # the same key in different objects is fine
    assert parse_json('{"a": {"x": 1}, "b": {"x": 2}}') == {"a": {"x": 1}, "b": {"x": 2}}
