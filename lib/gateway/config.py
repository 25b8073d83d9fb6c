"""Gateway configuration: config.json read strictly, validated, merged with defaults.

The schema is documented key by key in docs/config.md; ``config.example.json`` is a complete
example. What the application calls::

    from gateway.config import load_config, parse_config, ConfigError, DEFAULTS, redact

    result = load_config("/config.json", "/config.last_good.json")   # never raises for bad content
    result.config      # always usable: the file, else the last good copy, else defaults
    result.safe_mode   # True when only defaults were left: meter and persist, no network
    result.error       # None, or "config.json: mqtt.port: must be an integer in 1..65535 (got '1883x')"

    cfg = parse_config(text_or_dict)   # raises ConfigError; exc.key is the dotted key or None

Rules the messages follow: they name the key and the problem, and never contain a secret. Values
of secret keys are never echoed, and any secret found anywhere in the file is scrubbed from a
message before it is raised (the same password given to a wrong key must not leak either).

The file is parsed by a strict JSON reader of our own instead of the ``json`` module: MicroPython
1.25 (today's stock firmware) accepts a truncated document such as ``{"a": 1`` as complete, so a
config.json caught half-copied would be taken as valid and become the "last good" copy. The reader
also rejects duplicate keys (the first one would be silently lost) and trailing commas, and gives
the same line/column messages on every runtime.
"""

import os

SOURCE_NAME = "config.json"
MAX_FILE_BYTES = 16384  # a config is ~1 KB; a bigger file is a mistake and must not exhaust the heap
MAX_NESTING = 16        # the schema nests 3 deep; bounded recursion keeps a hostile file from crashing
MAX_MODULES = 16
SECRET_KEYS = ("password",)
# A typo'd or foreign key ("pass", "psk", "token") may still hold a secret: such values are scrubbed
# from messages and redacted too, even though validation rejects the key itself.
_SECRET_FRAGMENTS = ("pass", "pasw", "pwd", "psk", "secret", "token")
REDACTED = "***"

LOG_LEVELS = ("debug", "info", "warning", "error")
# Sections that only describe local hardware and bookkeeping: in safe mode they are taken from the
# broken file when they are valid on their own, so metering still reads the modules that exist.
SALVAGEABLE = ("i2c", "drdy_pin", "modules", "period_s", "commit", "mains_loss", "log_level")


class ConfigError(ValueError):
    """A config.json problem. ``key`` is the dotted key ("mqtt.port", "modules[1].address") or None
    when the problem is the file as a whole; ``str(exc)`` is the full message."""

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key


class LoadResult:
    """What ``load_config`` found. ``config`` is always a complete, valid-shaped dict."""

    def __init__(self, config, ok, error, source, safe_mode, warnings=None, salvaged=None):
        self.config = config
        self.ok = ok
        self.error = error
        self.source = source          # "file" | "last_good" | "defaults"
        self.safe_mode = safe_mode
        self.warnings = warnings or []  # non-fatal: last good copy not writable, sections salvaged
        self.salvaged = salvaged or []  # top-level keys taken from a broken file in safe mode

    def __repr__(self):
        # the config holds passwords: a REPL user printing the result must not see them
        return "<LoadResult source=%s ok=%s safe_mode=%s error=%r>" % (
            self.source, self.ok, self.safe_mode, self.error)


def is_secret_key(name):
    lowered = name.lower()
    if lowered in SECRET_KEYS:
        return True
    for fragment in _SECRET_FRAGMENTS:
        if fragment in lowered:
            return True
    return False


def redact(value):
    """Deep copy with the value of every secret key replaced by "***" (unset ones stay null)."""
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            if type(key) is str and is_secret_key(key) and item is not None:
                out[key] = REDACTED
            else:
                out[key] = redact(item)
        return out
    if type(value) is list:
        return [redact(item) for item in value]
    return value


def secret_values(raw):
    """Every non-empty string held by a secret-looking key anywhere in ``raw`` (for log masking)."""
    found = []
    _collect_secrets(raw, found, 0)
    return found


def _collect_secrets(value, found, depth):
    if depth > MAX_NESTING:
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is str and is_secret_key(key) and type(item) is str and item:
                if item not in found:
                    found.append(item)
            else:
                _collect_secrets(item, found, depth + 1)
    elif type(value) is list:
        for item in value:
            _collect_secrets(item, found, depth + 1)


def _copy(value):
    if type(value) is dict:
        return {key: _copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy(item) for item in value]
    return value


# ---------------------------------------------------------------------------------- strict JSON
_WHITESPACE = b" \t\r\n"
_DIGITS = b"0123456789"
_ESCAPES = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x62: "\b", 0x66: "\f", 0x6E: "\n", 0x72: "\r", 0x74: "\t"}


class _JsonReader:
    """RFC 8259 JSON over bytes (bytes index in O(1) on MicroPython; str does not)."""

    def __init__(self, data, source):
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, problem, pos=None, key=None):
        if pos is None:
            pos = self.pos
        if pos >= len(self.data):
            problem = "unexpected end of file (is it incomplete, or still being copied?)"
        line = self.data.count(b"\n", 0, pos) + 1
        column = pos - (self.data.rfind(b"\n", 0, pos) + 1) + 1
        where = "line %d column %d" % (line, column)
        if key is not None:
            raise ConfigError("%s: %s: %s (%s)" % (self.source, key, problem, where), key)
        raise ConfigError("%s: not valid JSON: %s at %s" % (self.source, problem, where))

    def skip_space(self):
        data = self.data
        pos = self.pos
        end = len(data)
        while pos < end and data[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    def document(self):
        self.skip_space()
        value = self.value("", 0)
        self.skip_space()
        if self.pos != len(self.data):
            self.fail("unexpected text after the end of the document")
        return value

    def value(self, path, depth):
        if depth > MAX_NESTING:
            self.fail("nested too deeply")
        if self.pos >= len(self.data):
            self.fail("")
        char = self.data[self.pos]
        if char == 0x7B:  # {
            return self.object(path, depth)
        if char == 0x5B:  # [
            return self.array(path, depth)
        if char == 0x22:  # "
            return self.string()
        if char == 0x2D or char in _DIGITS:
            return self.number()
        for word, result in ((b"true", True), (b"false", False), (b"null", None)):
            if self.data[self.pos:self.pos + len(word)] == word:
                self.pos += len(word)
                return result
        if self.data[self.pos:self.pos + 3] in (b"NaN", b"Inf"):
            self.fail("NaN and Infinity are not JSON numbers")
        self.fail("expected a value (a string needs double quotes)")

    def object(self, path, depth):
        self.pos += 1
        out = {}
        self.skip_space()
        if self.pos < len(self.data) and self.data[self.pos] == 0x7D:
            self.pos += 1
            return out
        while True:
            self.skip_space()
            if self.pos >= len(self.data) or self.data[self.pos] != 0x22:
                if self.pos < len(self.data) and self.data[self.pos] == 0x7D:
                    self.fail("trailing comma before '}'")
                self.fail("expected a key in double quotes")
            key_pos = self.pos
            key = self.string()
            child = path + "." + key if path else key
            if key in out:
                self.fail("appears twice", key_pos, child)
            self.skip_space()
            self.expect(0x3A, "expected ':' after a key")
            self.skip_space()
            out[key] = self.value(child, depth + 1)
            self.skip_space()
            if self.pos < len(self.data) and self.data[self.pos] == 0x2C:
                self.pos += 1
                continue
            self.expect(0x7D, "expected ',' or '}'")
            return out

    def array(self, path, depth):
        self.pos += 1
        out = []
        self.skip_space()
        if self.pos < len(self.data) and self.data[self.pos] == 0x5D:
            self.pos += 1
            return out
        while True:
            self.skip_space()
            if self.pos < len(self.data) and self.data[self.pos] == 0x5D:
                self.fail("trailing comma before ']'")
            out.append(self.value("%s[%d]" % (path, len(out)), depth + 1))
            self.skip_space()
            if self.pos < len(self.data) and self.data[self.pos] == 0x2C:
                self.pos += 1
                continue
            self.expect(0x5D, "expected ',' or ']'")
            return out

    def expect(self, char, problem):
        if self.pos >= len(self.data) or self.data[self.pos] != char:
            self.fail(problem)
        self.pos += 1

    def string(self):
        data = self.data
        start = self.pos + 1
        pos = start
        end = len(data)
        pieces = None
        while True:
            if pos >= end:
                self.fail("", end)
            char = data[pos]
            if char == 0x22:
                break
            if char < 0x20:
                self.fail("control character inside a string (write \\n, \\t)", pos)
            if char == 0x5C:
                if pieces is None:
                    pieces = []
                pieces.append(self.decode(data[start:pos], start))
                pos, text = self.escape(pos)
                pieces.append(text)
                start = pos
                continue
            pos += 1
        self.pos = pos + 1
        tail = self.decode(data[start:pos], start)
        if pieces is None:
            return tail
        pieces.append(tail)
        return "".join(pieces)

    def escape(self, pos):
        data = self.data
        if pos + 1 >= len(data):
            self.fail("", len(data))
        kind = data[pos + 1]
        if kind in _ESCAPES:
            return pos + 2, _ESCAPES[kind]
        if kind != 0x75:  # u
            self.fail("unknown escape in a string", pos)
        code = self.hex4(pos + 2)
        pos += 6
        if 0xD800 <= code < 0xDC00:
            # a UTF-16 surrogate pair spells one character outside the BMP
            if data[pos:pos + 2] != b"\\u":
                self.fail("unpaired surrogate in a \\u escape", pos)
            low = self.hex4(pos + 2)
            if not 0xDC00 <= low < 0xE000:
                self.fail("unpaired surrogate in a \\u escape", pos)
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            pos += 6
        elif 0xDC00 <= code < 0xE000:
            self.fail("unpaired surrogate in a \\u escape", pos - 6)
        return pos, chr(code)

    def hex4(self, pos):
        digits = self.data[pos:pos + 4]
        if len(digits) < 4:
            self.fail("", len(self.data))
        code = 0
        for char in digits:
            if 0x30 <= char <= 0x39:
                code = code * 16 + char - 0x30
            elif 0x61 <= char <= 0x66 or 0x41 <= char <= 0x46:
                code = code * 16 + (char | 0x20) - 0x57
            else:
                self.fail("bad \\u escape", pos)
        return code

    def decode(self, raw, pos):
        try:
            return raw.decode("utf-8")
        except UnicodeError:
            self.fail("text is not valid UTF-8", pos)

    def number(self):
        data = self.data
        start = self.pos
        pos = start
        end = len(data)
        if data[pos] == 0x2D:
            pos += 1
        digits_start = pos
        while pos < end and data[pos] in _DIGITS:
            pos += 1
        if pos == digits_start:
            self.fail("expected digits", pos)
        if data[digits_start] == 0x30 and pos - digits_start > 1:
            self.fail("numbers cannot have leading zeros (JSON has no octal or hex)", digits_start)
        is_float = False
        if pos < end and data[pos] == 0x2E:
            pos += 1
            fraction_start = pos
            while pos < end and data[pos] in _DIGITS:
                pos += 1
            if pos == fraction_start:
                self.fail("expected digits after '.'", pos)
            is_float = True
        if pos < end and data[pos] in b"eE":
            pos += 1
            if pos < end and data[pos] in b"+-":
                pos += 1
            exponent_start = pos
            while pos < end and data[pos] in _DIGITS:
                pos += 1
            if pos == exponent_start:
                self.fail("expected digits in the exponent", pos)
            is_float = True
        if pos < end and data[pos] == 0x78 and data[start:pos] in (b"0", b"-0"):
            self.fail("JSON has no hex numbers (write the address as a string, \"0x50\")", start)
        self.pos = pos
        text = data[start:pos]
        return float(text) if is_float else int(text)


def parse_json(text, source=SOURCE_NAME):
    """The strict reader on its own: str or bytes in, Python values out; raises ConfigError."""
    if type(text) is str:
        text = text.encode("utf-8")
    elif type(text) is not bytes:
        text = bytes(text)
    if text[:3] == b"\xef\xbb\xbf":
        # Windows editors save UTF-8 with a byte-order mark; it carries no meaning
        text = text[3:]
    return _JsonReader(text, source).document()


# ---------------------------------------------------------------------------------- validation
_REQUIRED = object()
_NOT_GIVEN = object()
_INF = float("inf")
_DEVICE_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_HOSTNAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"


def _kind(value):
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "a list"
    if type(value) is dict:
        return "an object"
    if type(value) in (int, float):
        return "a number"
    return "a %s" % type(value).__name__


def _shown(value):
    """A wrong value as the message shows it: short, and containers by kind only (they may hold
    secrets)."""
    if type(value) is str:
        if len(value) > 24:
            return repr(value[:24] + "...")
        return repr(value)
    if type(value) is bool or value is None:
        return _kind(value)
    if type(value) in (int, float):
        return repr(value)
    return _kind(value)


def _number_text(value):
    if type(value) is int:
        return "%d" % value
    return "%g" % value


def _edit_distance(a, b):
    """Optimal string alignment distance: a swap of two neighbours counts once ("hots" -> "host")."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
        if len(rows) > 2:
            rows.pop(0)
    return rows[-1][len(b)]


def _close_match(name, candidates):
    lowered = name.lower()
    best = None
    best_distance = 99
    for candidate in candidates:
        distance = _edit_distance(lowered, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    allowed = 1 if len(name) <= 4 else 2
    return best if best_distance <= allowed else None


class _Checker:
    """Walks a decoded document against the schema; every failure goes through ``fail``."""

    def __init__(self, source, secrets):
        self.source = source
        self.secrets = secrets

    def fail(self, key, problem, value=_NOT_GIVEN):
        # only the key and the shown value come from the file; scrubbing just those keeps a short
        # password such as "1" from mangling the rest of the message
        shown_key = self.scrub(key)
        message = "%s: %s: %s" % (self.source, shown_key, problem)
        if value is not _NOT_GIVEN:
            if is_secret_key(key.split(".")[-1]):
                message += " (got %s)" % _kind(value)
            else:
                message += " (got %s)" % self.scrub(_shown(value))
        raise ConfigError(message, shown_key)

    def scrub(self, text):
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    # scalar checks; each returns the normalised value
    def integer(self, key, value, low, high, text=None):
        if type(value) is not int or value < low or value > high:
            self.fail(key, text or "must be an integer in %d..%d" % (low, high), value)
        return value

    def number(self, key, value, low, high):
        if high == _INF:
            rule = "must be a number >= %s" % _number_text(low)
        else:
            rule = "must be a number in %s..%s" % (_number_text(low), _number_text(high))
        if type(value) not in (int, float) or value != value or value in (_INF, -_INF):
            self.fail(key, rule, value)
        if value < low or value > high:
            self.fail(key, rule, value)
        return value

    def boolean(self, key, value):
        if type(value) is not bool:
            self.fail(key, "must be true or false", value)
        return value

    def text(self, key, value, low, high, what="a string"):
        if type(value) is not str:
            self.fail(key, "must be %s" % what, value)
        if value == "":
            return None  # an empty optional string means "not set", like null
        size = len(value.encode("utf-8"))
        if size < low or size > high:
            self.fail(key, "must be %s of %d..%d bytes" % (what, low, high), value)
        for char in value:
            if ord(char) < 0x20 or ord(char) == 0x7F:
                self.fail(key, "must not contain control characters", value)
        return value

    def choice(self, key, value, allowed):
        if value not in allowed or type(value) is bool:
            self.fail(key, "must be one of %s" % ", ".join(_quote(a) for a in allowed), value)
        return value

    def object(self, key, value):
        if type(value) is not dict:
            # kind only: whatever stands where a section belongs may be a pasted secret
            self.fail(key, "must be an object {...} (got %s)" % _kind(value))
        return value

    def unknown_keys(self, path, raw, names):
        strays = [name if type(name) is str else repr(name) for name in raw if name not in names]
        if not strays:
            return
        strays.sort()
        stray = strays[0]
        key = path + "." + stray if path else stray
        problem = "unknown key"
        suggestion = _close_match(stray, names)
        if suggestion is not None:
            problem += " (did you mean '%s'?)" % suggestion
        else:
            elsewhere = _known_elsewhere(stray, path)
            if elsewhere:
                problem += " (did you mean %s?)" % " or ".join("'%s'" % p for p in elsewhere)
        self.fail(key, problem)

    def section(self, path, raw, fields):
        if raw is None:
            raw = {}
        self.object(path, raw)
        self.unknown_keys(path, raw, [field[0] for field in fields])
        out = {}
        for name, default, check in fields:
            key = path + "." + name if path else name
            out[name] = self.entry(key, raw, name, default, check)
        return out

    def entry(self, key, raw, name, default, check):
        value = raw.get(name)
        if type(check) is tuple:
            return self.section(key, value, check)
        if value is None:
            if default is _REQUIRED:
                if name in raw:
                    self.fail(key, "must be set", None)
                self.fail(key, "required key missing")
            return _copy(default)
        return check(self, key, value)


def _quote(value):
    return "'%s'" % value if type(value) is str else "%s" % value


# field checks: (checker, dotted key, raw value) -> normalised value
def _device_id(chk, key, value):
    value = chk.text(key, value, 1, 32)
    if value is not None:
        for char in value:
            if char not in _DEVICE_ID_CHARS:
                chk.fail(key, "may only contain a-z, 0-9, '_' and '-'", value)
    return value


def _ssid(chk, key, value):
    return chk.text(key, value, 1, 32)


def _wifi_password(chk, key, value):
    return chk.text(key, value, 1, 64)


def _hostname(chk, key, value):
    value = chk.text(key, value, 1, 32)
    if value is not None:
        for char in value:
            if char not in _HOSTNAME_CHARS:
                chk.fail(key, "may only contain letters, digits and '-'", value)
        if value[0] == "-" or value[-1] == "-":
            chk.fail(key, "must not start or end with '-'", value)
    return value


def _host(chk: "_Checker", key, value):
    value = chk.text(key, value, 1, 253)
    if value is None:
        chk.fail(key, "must not be empty", "")
    if "://" in value:
        chk.fail(key, "give the host name or IP address only, without a scheme like 'mqtt://'", value)
    for char in value:
        if char in " \t/":
            chk.fail(key, "must be a host name or IP address (no spaces or '/')", value)
    if value.count(":") == 1:
        chk.fail(key, "give the port in the 'port' key, not after ':'", value)
    return value


def _port(chk, key, value):
    return chk.integer(key, value, 1, 65535)


def _optional_text(chk, key, value):
    return chk.text(key, value, 1, 256)


def _secret(chk, key, value):
    return chk.text(key, value, 1, 256)


def _boolean(chk, key, value):
    return chk.boolean(key, value)


def _path(chk, key, value):
    return chk.text(key, value, 1, 128)


def _client_id(chk, key, value):
    value = chk.text(key, value, 1, 64)
    if value is not None and (" " in value or "+" in value or "#" in value):
        chk.fail(key, "must not contain spaces, '+' or '#'", value)
    return value


def _topic(chk: "_Checker", key, value):
    value = chk.text(key, value, 1, 64)
    if value is None:
        chk.fail(key, "must not be empty", "")
    if "+" in value or "#" in value:
        chk.fail(key, "must not contain the MQTT wildcards '+' or '#'", value)
    if value[0] == "/" or value[-1] == "/":
        chk.fail(key, "must not start or end with '/'", value)
    if "//" in value:
        chk.fail(key, "must not contain an empty level ('//')", value)
    if value[0] == "$":
        chk.fail(key, "must not start with '$' (reserved for the broker)", value)
    return value


def _keepalive(chk, key, value):
    return chk.integer(key, value, 10, 3600)


def _qos(chk, key, value):
    return chk.integer(key, value, 0, 1, "must be 0 or 1")


def _timeout(chk, key, value):
    return chk.number(key, value, 0.5, 30)


def _bus(chk, key, value):
    return chk.integer(key, value, 0, 3)


def _pin(chk, key, value):
    return chk.integer(key, value, 0, 63, "must be a GPIO number in 0..63")


def _frequency(chk, key, value):
    # protocol.md: the module does not support 400 kHz and ESP32 already NACKs ~20 % at 100 kHz
    return chk.integer(key, value, 10000, 100000, "must be an integer in 10000..100000 Hz (the rbAmp "
                       "module does not support 400 kHz; 50000 is recommended)")


def _address(chk, key, value):
    rule = "must be an I2C address in 0x08..0x77 (a number, or a hex string like \"0x50\")"
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
        chk.fail(key, rule, value)  # the value as written, not as converted
    return number


def _label(chk, key, value):
    value = chk.text(key, value, 1, 8)
    if value is not None:
        for char in value:
            if not 0x20 <= ord(char) <= 0x7E:
                chk.fail(key, "must be printable ASCII (8 characters at most)", value)
    return value


def _sensor_class(chk, key, value):
    return chk.integer(key, value, 0, 3, "must be 0 (unset), 1 (SCT-013), 2 (wired CT) or 3 (built-in CT)")


def _ct_models(chk, key, value):
    if type(value) is not list or not 1 <= len(value) <= 3:
        chk.fail(key, "must be a list of 1..3 CT model codes, one per channel", value)
    for index in range(len(value)):
        chk.integer("%s[%d]" % (key, index), value[index], 1, 7,
                    "must be a CT model code in 1..7")
    return list(value)


def _channels(chk, key, value):
    return chk.integer(key, value, 1, 3, "must be the module's number of current channels, 1..3 "
                       "(UI1/I1: 1, UI2/I2: 2, UI3/I3: 3)")


_MODULE_FIELDS = (
    ("address", _REQUIRED, _address),
    ("channels", None, _channels),
    ("label", None, _label),
    ("sensor_class", None, _sensor_class),
    ("ct_models", None, _ct_models),
)


def _modules(chk, key, value):
    if type(value) is not list or not 1 <= len(value) <= MAX_MODULES:
        chk.fail(key, "must be a list of 1..%d modules" % MAX_MODULES, value)
    out = []
    seen = {}
    for index in range(len(value)):
        path = "%s[%d]" % (key, index)
        module = chk.section(path, value[index], _MODULE_FIELDS)
        address = module["address"]
        if address in seen:
            chk.fail(path + ".address", "0x%02x is already used by %s[%d]" % (address, key, seen[address]))
        seen[address] = index
        out.append(module)
    return out


def _period(chk, key, value):
    return chk.integer(key, value, 1, 3600)


def _publish_interval(chk, key, value):
    return chk.number(key, value, 1, 3600)


def _power_change(chk, key, value):
    return chk.number(key, value, 0, _INF)


def _growth(chk, key, value):
    return chk.number(key, value, 0.001, 1000)


def _commit_interval(chk, key, value):
    return chk.integer(key, value, 1, 86400)


def _mains_loss_voltage(chk, key, value):
    return chk.number(key, value, 0, 400)


def _ntp_host(chk, key, value):
    return _host(chk, key, value)


def _log_level(chk, key, value):
    if type(value) is str:
        value = value.lower()
    return chk.choice(key, value, LOG_LEVELS)


_WIFI = (
    ("ssid", None, _ssid),
    ("password", None, _wifi_password),
    ("hostname", None, _hostname),
)
_MQTT = (
    ("host", _REQUIRED, _host),
    ("port", None, _port),  # null: 1883, or 8883 with tls (see _finish)
    ("user", None, _optional_text),
    ("password", None, _secret),
    ("tls", False, _boolean),
    ("ca_file", None, _path),
    ("client_id", None, _client_id),
    ("base_topic", "rbamp", _topic),
    ("keepalive", 60, _keepalive),
    ("qos", 1, _qos),
    ("timeout_s", 5, _timeout),
)
_I2C = (
    ("bus", 0, _bus),
    ("scl", None, _pin),
    ("sda", None, _pin),
    ("freq", 50000, _frequency),
)
_PUBLISH = (
    ("interval_s", 10, _publish_interval),
    ("power_change_w", 50, _power_change),
)
_COMMIT = (
    ("growth_wh", 5, _growth),
    ("interval_s", 60, _commit_interval),
)
_HOMEASSISTANT = (
    ("discovery", True, _boolean),
    ("prefix", "homeassistant", _topic),
)
_MAINS_LOSS = (
    ("voltage_v", 150, _mains_loss_voltage),
)
_NTP = (
    ("enabled", True, _boolean),
    ("host", "pool.ntp.org", _ntp_host),
)
_DEFAULT_MODULES = [{"address": 0x50, "channels": None, "label": None, "sensor_class": None,
                     "ct_models": None}]
SCHEMA = (
    ("device_id", None, _device_id),
    ("wifi", None, _WIFI),
    ("mqtt", None, _MQTT),
    ("i2c", None, _I2C),
    ("drdy_pin", None, _pin),
    ("modules", _DEFAULT_MODULES, _modules),
    ("period_s", 60, _period),
    ("publish", None, _PUBLISH),
    ("commit", None, _COMMIT),
    ("mains_loss", None, _MAINS_LOSS),
    ("homeassistant", None, _HOMEASSISTANT),
    ("ntp", None, _NTP),
    ("log_level", "info", _log_level),
)


def _known_elsewhere(name, path):
    """Dotted keys elsewhere in the schema whose last part is exactly ``name`` (a key put in the
    wrong section: "port" at the top level means "mqtt.port")."""
    lowered = name.lower()
    found = []
    for top, _default, check in SCHEMA:
        if top == lowered and path:
            found.append(top)
        if isinstance(check, tuple):
            for field in check:
                if field[0] == lowered and top != path:
                    found.append(top + "." + field[0])
    for field in _MODULE_FIELDS:
        if field[0] == lowered and not path.startswith("modules["):
            found.append("modules[]." + field[0])
    return found


def _finish(chk, config):
    """Rules that span keys."""
    mqtt = config["mqtt"]
    if mqtt["port"] is None:
        mqtt["port"] = 8883 if mqtt["tls"] else 1883
    if mqtt["ca_file"] is not None and not mqtt["tls"]:
        chk.fail("mqtt.ca_file", "is only used with \"tls\": true (set tls, or remove ca_file)")
    _finish_pins(chk, config)


def _finish_pins(chk, config):
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


def _build_defaults():
    config = {}
    for name, default, check in SCHEMA:
        if isinstance(check, tuple):
            config[name] = {field[0]: (None if field[1] is _REQUIRED else _copy(field[1])) for field in check}
        else:
            config[name] = _copy(default)
    config["mqtt"]["port"] = 1883
    return config


DEFAULTS = _build_defaults()


def _validate(raw, source):
    chk = _Checker(source, secret_values(raw))
    if type(raw) is not dict:
        raise ConfigError("%s: must be a JSON object {...} (got %s)" % (source, _kind(raw)))
    config = chk.section("", raw, SCHEMA)
    _finish(chk, config)
    return config


def parse_config(text_or_dict, source=SOURCE_NAME):
    """Validated, normalised config with every default filled in; raises ConfigError.

    Accepts the file's text (str or bytes) or an already decoded dict. Normalisation: hex address
    strings become ints, empty optional strings become null, log_level is lower-cased, and
    mqtt.port is resolved (1883, or 8883 with tls)."""
    if type(text_or_dict) is dict:
        return _validate(text_or_dict, source)
    return _validate(parse_json(text_or_dict, source), source)


def _salvage(raw, source):
    """Defaults, plus each hardware section of a broken file that is valid by itself."""
    config = _build_defaults()  # a fresh copy of DEFAULTS
    taken = []
    if type(raw) is not dict:
        return config, taken
    chk = _Checker(source, secret_values(raw))
    for name, default, check in SCHEMA:
        if name not in SALVAGEABLE or raw.get(name) is None:
            continue
        try:
            config[name] = chk.entry(name, raw, name, default, check)
            taken.append(name)
        except ConfigError:
            pass
    try:
        _finish_pins(chk, config)
    except ConfigError:
        # conflicting pins: the board's defaults are safer than half of the file's choice
        config["i2c"] = _copy(DEFAULTS["i2c"])
        config["drdy_pin"] = None
        taken = [name for name in taken if name not in ("i2c", "drdy_pin")]
    return config, taken


# ---------------------------------------------------------------------------------- files
def _basename(path):
    return path.rsplit("/", 1)[-1] or path


def _read(path, source):
    """The file's bytes; ConfigError when it is missing, unreadable or too big."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        if exc.args and exc.args[0] == 2:  # ENOENT
            raise ConfigError("%s not found" % source)
        raise ConfigError("%s: cannot be read (%s)" % (source, exc))
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError("%s: larger than %d bytes" % (source, MAX_FILE_BYTES))
    return data


def _read_or_none(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None


def _write_atomically(path, data):
    """Readers see the old copy or the new one, never a mix: write beside it, then rename over."""
    temporary = path + ".tmp"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            if hasattr(os, "fsync"):  # CPython: the rename must not reach the disk before the data
                handle.flush()
                os.fsync(handle.fileno())
        os.rename(temporary, path)
    except OSError:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise


def load_config(path, last_good_path=None):
    """The config to run with, and what happened on the way. Never raises for bad content.

    ``path`` valid: used, and copied to ``last_good_path`` when that copy differs. ``path`` bad or
    missing: the last good copy if it is valid (safe_mode False), else defaults with safe_mode
    True (metering and persisting only, no network); ``error`` says what is wrong with ``path``."""
    source = _basename(path)
    warnings = []
    raw = None
    try:
        data = _read(path, source)
        raw = parse_json(data, source)
        config = _validate(raw, source)
    except ConfigError as exc:
        error = str(exc)
    else:
        if last_good_path and _read_or_none(last_good_path) != data:
            try:
                _write_atomically(last_good_path, data)
            except OSError as exc:
                warnings.append("could not keep a last good copy in %s (%s)" % (last_good_path, exc))
        return LoadResult(config, True, None, "file", False, warnings)

    if last_good_path:
        good_source = _basename(last_good_path)
        try:
            config = parse_config(_read(last_good_path, good_source), good_source)
        except ConfigError as exc:
            warnings.append("no usable last good config: %s" % exc)
        else:
            return LoadResult(config, False, error, "last_good", False, warnings)

    config, salvaged = _salvage(raw, source)
    if salvaged:
        warnings.append("safe mode keeps these valid sections of %s: %s" % (source, ", ".join(salvaged)))
    return LoadResult(config, False, error, "defaults", True, warnings, salvaged)
