"""config.json's schema as a table: one row per key, read by the one checker (gateway.config_checker).

    from gateway.config_schema import children, path_of

    for row in children("mqtt"):
        print(path_of(row), row[2], row[5])   # mqtt.host name REQUIRED, mqtt.port int None, ...

A row is ``(section, name, kind, low, high, default, rule, check)``:

- ``section`` and ``name``: where the key is. ``section`` is the dotted path of the object holding
  it ("" at the top level; ``modules[]`` is each entry of the list ``modules``); ``name`` is the
  key, or ``[]`` for the row every entry of the list ``section`` is checked by. Names are literals
  so the checked dict's keys are the interned names, not fresh strings (the config stays ~1 KB).
- ``kind``: ``SECTION`` (an object of the rows below it; null means all defaults), ``LIST`` (of
  ``low..high`` entries, each checked by the list's ``[]`` row), ``INT`` and ``NUMBER`` (within
  ``low..high``; true/false are neither), ``BOOL``, ``TEXT`` (``low..high`` bytes of UTF-8 without
  control characters; ``""`` means not set, like null), ``NAME`` (``TEXT`` that may not be
  ``""``), ``CHOICE`` (one of the strings in ``low``, matched without regard to case and stored
  lower case), ``CUSTOM`` (``check`` does everything).
- ``default``: the value of a missing or null key; ``REQUIRED`` when there is none.
- ``rule``: the sentence a wrong value gets when the generic one ("must be an integer in 1..3")
  would not say enough; None otherwise.
- ``check``: a named validator for a rule the kind cannot express (hostnames, topics, addresses),
  ``check(checker, key, value) -> value``, called only for a set value after the kind's own check.

Rules spanning keys run after the walk, in order: ``RULES`` for a config of the user's,
``HARDWARE_RULES`` (a part of them) also when safe mode takes sections from a broken file.

What downstream code may rely on, so it need not check again: every key of the table is present;
a set value has the row's type and range; ``mqtt.port`` is an integer (1883, or 8883 with TLS);
``mqtt.password`` is set only with ``mqtt.user``; ``mqtt.ca_file`` only with ``mqtt.tls``;
``mqtt.base_topic`` and ``homeassistant.prefix`` are valid topic prefixes; module addresses are
ints in 0x08..0x77, each once; the modules fit one energy journal record; the I2C pins and
``drdy_pin`` are distinct.
"""

SECTION = "section"
LIST = "list"
INT = "int"
NUMBER = "number"
BOOL = "bool"
TEXT = "text"
NAME = "name"
CHOICE = "choice"
CUSTOM = "custom"

REQUIRED = object()
_INF = float("inf")

LOG_LEVELS = ("debug", "info", "warning", "error")
# gateway/store.py: one journal record holds m modules of c channels in all while m + c <= 19, and
# every module has at least one channel
JOURNAL_MODULES_AND_CHANNELS = 19
MAX_MODULES = JOURNAL_MODULES_AND_CHANNELS // 2

DEVICE_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
DEVICE_ID_MAX = 32
_HOSTNAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_HEX_DIGITS = "0123456789abcdefABCDEF"


# ---------------------------------------------------------------------------------- named checks
def _device_id(chk, key, value):
    for char in value:
        if char not in DEVICE_ID_CHARS:
            chk.fail(key, "may only contain a-z, 0-9, '_' and '-'", value)
    return value


def _wpa_passphrase(chk, key, value):
    # WPA2: a passphrase of 8..63 characters, or the 256-bit key itself as 64 hex digits (the row
    # already holds it to 64 bytes; the Wi-Fi drivers count bytes)
    size = len(value.encode("utf-8"))
    if size == 64:
        for char in value:
            if char not in _HEX_DIGITS:
                size = 0
                break
    if size < 8:
        chk.fail(key, "must be a WPA2 passphrase of 8..63 characters, or exactly 64 hex digits", value)
    return value


def _hostname(chk, key, value):
    for char in value:
        if char not in _HOSTNAME_CHARS:
            chk.fail(key, "may only contain letters, digits and '-'", value)
    if value[0] == "-" or value[-1] == "-":
        chk.fail(key, "must not start or end with '-'", value)
    return value


def _host(chk, key, value):
    if "://" in value:
        chk.fail(key, "give the host name or IP address only, without a scheme like 'mqtt://'", value)
    for char in value:
        if char in " \t/":
            chk.fail(key, "must be a host name or IP address (no spaces or '/')", value)
    if value.count(":") == 1:
        chk.fail(key, "give the port in the 'port' key, not after ':'", value)
    return value


def _client_id(chk, key, value):
    if " " in value or "+" in value or "#" in value:
        chk.fail(key, "must not contain spaces, '+' or '#'", value)
    return value


def _topic(chk, key, value):
    if "+" in value or "#" in value:
        chk.fail(key, "must not contain the MQTT wildcards '+' or '#'", value)
    if value[0] == "/" or value[-1] == "/":
        chk.fail(key, "must not start or end with '/'", value)
    if "//" in value:
        chk.fail(key, "must not contain an empty level ('//')", value)
    if value[0] == "$":
        chk.fail(key, "must not start with '$' (reserved for the broker)", value)
    return value


def _address(chk, key, value):
    number = value
    if type(value) is str:
        digits = value[2:] if value[:2] in ("0x", "0X") else ""
        number = 0 if digits and len(digits) <= 2 else -1
        for char in digits.lower():
            position = "0123456789abcdef".find(char)
            if position < 0:
                number = -1
                break
            number = number * 16 + position
    if type(number) is not int or not 0x08 <= number <= 0x77:
        # the value as written, not as converted
        chk.fail(key, "must be an I2C address in 0x08..0x77 (a number, or a hex string like \"0x50\")", value)
    return number


def _printable_ascii(chk, key, value):
    for char in value:
        if not 0x20 <= ord(char) <= 0x7E:
            chk.fail(key, "must be printable ASCII (8 characters at most)", value)
    return value


def _posix_tz(chk, key, value):
    from gateway.localtime import parse_tz

    try:
        parse_tz(value)
    except ValueError as exc:
        chk.fail(key, "must be a POSIX TZ string like \"CET-1CEST,M3.5.0,M10.5.0/3\" or \"UTC0\" (%s)"
                 % exc, value)
    return value


def _modules(chk, key, modules):
    seen = {}
    channels = 0
    for index in range(len(modules)):
        address = modules[index]["address"]
        if address in seen:
            chk.fail("%s[%d].address" % (key, index),
                     "0x%02x is already used by %s[%d]" % (address, key, seen[address]))
        seen[address] = index
        channels += modules[index]["channels"] or 1
    if len(modules) + channels > JOURNAL_MODULES_AND_CHANNELS:
        chk.fail(key, "%d modules with %d channels do not fit the energy journal (modules + channels "
                 "<= %d; a module without 'channels' counts 1)" % (len(modules), channels,
                                                                   JOURNAL_MODULES_AND_CHANNELS))
    return modules


# ---------------------------------------------------------------------------------- the table
_PIN = "must be a GPIO number in 0..63"
# several pools: one unreachable or insane server is outvoted (gateway.timesync)
_DEFAULT_NTP_SERVERS = ["pool.ntp.org", "time.cloudflare.com", "time.google.com"]
_DEFAULT_MODULES = [{"address": 0x50, "channels": None, "label": None, "sensor_class": None,
                     "ct_models": None}]

ROWS = (
    ("", "device_id", TEXT, 1, DEVICE_ID_MAX, None, None, _device_id),
    ("", "wifi", SECTION, 0, 0, None, None, None),
    ("wifi", "ssid", TEXT, 1, 32, None, None, None),
    ("wifi", "password", TEXT, 1, 64, None, None, _wpa_passphrase),
    ("wifi", "hostname", TEXT, 1, 32, None, None, _hostname),
    ("", "mqtt", SECTION, 0, 0, None, None, None),
    ("mqtt", "host", NAME, 1, 253, REQUIRED, None, _host),
    ("mqtt", "port", INT, 1, 65535, None, None, None),  # null: 1883, or 8883 with tls (_mqtt_port)
    ("mqtt", "user", TEXT, 1, 256, None, None, None),
    ("mqtt", "password", TEXT, 1, 256, None, None, None),
    ("mqtt", "tls", BOOL, 0, 0, False, None, None),
    ("mqtt", "ca_file", TEXT, 1, 128, None, None, None),
    ("mqtt", "client_id", TEXT, 1, 64, None, None, _client_id),
    ("mqtt", "base_topic", NAME, 1, 64, "rbamp", None, _topic),
    ("mqtt", "keepalive", INT, 10, 3600, 60, None, None),
    ("mqtt", "qos", INT, 0, 1, 1, "must be 0 or 1", None),
    ("mqtt", "timeout_s", NUMBER, 0.5, 30, 5, None, None),
    ("", "i2c", SECTION, 0, 0, None, None, None),
    ("i2c", "bus", INT, 0, 3, 0, None, None),
    ("i2c", "scl", INT, 0, 63, None, _PIN, None),
    ("i2c", "sda", INT, 0, 63, None, _PIN, None),
    # protocol.md: the module does not support 400 kHz and ESP32 already NACKs ~20 % at 100 kHz
    ("i2c", "freq", INT, 10000, 100000, 50000, "must be an integer in 10000..100000 Hz (the rbAmp module "
     "does not support 400 kHz; 50000 is recommended)", None),
    ("", "drdy_pin", INT, 0, 63, None, _PIN, None),
    ("", "modules", LIST, 1, MAX_MODULES, _DEFAULT_MODULES, "must be a list of 1..%d modules" % MAX_MODULES,
     _modules),
    ("modules", "[]", SECTION, 0, 0, None, None, None),
    ("modules[]", "address", CUSTOM, 0, 0, REQUIRED, None, _address),
    ("modules[]", "channels", INT, 1, 3, None, "must be the module's number of current channels, 1..3 "
     "(UI1/I1: 1, UI2/I2: 2, UI3/I3: 3)", None),
    ("modules[]", "label", TEXT, 1, 8, None, None, _printable_ascii),
    ("modules[]", "sensor_class", INT, 0, 3, None,
     "must be 0 (unset), 1 (SCT-013), 2 (wired CT) or 3 (built-in CT)", None),
    ("modules[]", "ct_models", LIST, 1, 3, None, "must be a list of 1..3 CT model codes, one per channel", None),
    ("modules[].ct_models", "[]", INT, 1, 7, None, "must be a CT model code in 1..7", None),
    ("", "period_s", INT, 1, 3600, 60, None, None),
    ("", "publish", SECTION, 0, 0, None, None, None),
    ("publish", "interval_s", NUMBER, 1, 3600, 10, None, None),
    ("publish", "power_change_w", NUMBER, 0, _INF, 50, None, None),
    ("", "commit", SECTION, 0, 0, None, None, None),
    ("commit", "growth_wh", NUMBER, 0.001, 1000, 5, None, None),
    ("commit", "interval_s", INT, 1, 86400, 60, None, None),
    ("", "mains_loss", SECTION, 0, 0, None, None, None),
    ("mains_loss", "voltage_v", NUMBER, 0, 400, 150, None, None),
    ("", "homeassistant", SECTION, 0, 0, None, None, None),
    ("homeassistant", "discovery", BOOL, 0, 0, True, None, None),
    ("homeassistant", "prefix", NAME, 1, 64, "homeassistant", None, _topic),
    ("", "ntp", SECTION, 0, 0, None, None, None),
    ("ntp", "enabled", BOOL, 0, 0, True, None, None),
    ("ntp", "host", NAME, 1, 253, None, None, _host),  # tried before ntp.servers (the key of 0.1)
    ("ntp", "servers", LIST, 1, 4, _DEFAULT_NTP_SERVERS, "must be a list of 1..4 NTP server names", None),
    ("ntp.servers", "[]", NAME, 1, 253, None, None, _host),
    ("", "tz", NAME, 1, 64, "UTC0", None, _posix_tz),
    ("", "web", SECTION, 0, 0, None, None, None),
    ("web", "enabled", BOOL, 0, 0, True, None, None),
    ("web", "port", INT, 1, 65535, 80, None, None),
    ("web", "password", TEXT, 8, 64, None, "must be 8..64 characters (the password the web page asks "
     "for before changing anything)", None),
    ("", "setup", SECTION, 0, 0, None, None, None),
    ("setup", "button_pin", INT, 0, 63, None, _PIN, None),
    ("setup", "wifi_wait_s", INT, 60, 3600, 300, None, None),
    ("setup", "ap_minutes", INT, 1, 60, 10, None, None),
    ("setup", "ap_password", TEXT, 8, 63, None, "must be a WPA2 passphrase of 8..63 characters", None),
    ("", "log_level", CHOICE, LOG_LEVELS, 0, "info", None, None),
)


def path_of(row):
    """The dotted path a row stands for: "mqtt.port", "modules[]", "modules[].address"."""
    section, name = row[0], row[1]
    if name == "[]":
        return section + "[]"
    return section + "." + name if section else name


def children(section):
    """The rows of a section's keys, in table order (the order problems are found in)."""
    return [row for row in ROWS if row[0] == section and row[1] != "[]"]


def items_of(path):
    """The row each entry of the list at ``path`` is checked by."""
    for row in ROWS:
        if row[0] == path and row[1] == "[]":
            return row
    raise KeyError(path)


# ---------------------------------------------------------------------------------- rules across keys
def _mqtt_port(chk, config):
    mqtt = config["mqtt"]
    if mqtt["port"] is None:
        mqtt["port"] = 8883 if mqtt["tls"] else 1883


def _ca_file_needs_tls(chk, config):
    mqtt = config["mqtt"]
    if mqtt["ca_file"] is not None and not mqtt["tls"]:
        chk.fail("mqtt.ca_file", "is only used with \"tls\": true (set tls, or remove ca_file)")


def _password_needs_user(chk, config):
    mqtt = config["mqtt"]
    if mqtt["password"] is not None and mqtt["user"] is None:
        # MQTT 3.1.1 (3.1.2.9): a password may only be sent together with a user name
        chk.fail("mqtt.password", "is only sent together with a user name (set mqtt.user, or remove "
                 "the password)")


def _pins(chk, config):
    i2c = config["i2c"]
    if (i2c["scl"] is None) != (i2c["sda"] is None):
        missing = "i2c.sda" if i2c["sda"] is None else "i2c.scl"
        chk.fail(missing, "must be given together with %s (or leave both out for the board's "
                 "default pins)" % ("i2c.scl" if missing == "i2c.sda" else "i2c.sda"))
    if i2c["scl"] is not None and i2c["scl"] == i2c["sda"]:
        chk.fail("i2c.sda", "must differ from i2c.scl", i2c["sda"])
    pin = config["drdy_pin"]
    if pin is not None and pin in (i2c["scl"], i2c["sda"]):
        chk.fail("drdy_pin", "is already used by the I2C bus", pin)
    button = config["setup"]["button_pin"]
    if button is not None and button in (i2c["scl"], i2c["sda"]):
        chk.fail("setup.button_pin", "is already used by the I2C bus", button)
    if button is not None and button == pin:
        chk.fail("setup.button_pin", "is already used by drdy_pin", button)


HARDWARE_RULES = (_pins,)
RULES = (_mqtt_port, _ca_file_needs_tls, _password_needs_user, _pins)
