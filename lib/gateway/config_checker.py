"""The one checker of config.json: walks a decoded document against gateway.config_schema's table.

    from gateway.config_checker import ConfigError, validate, build_defaults

    cfg = validate(raw, "config.json")   # a dict with every key of the table; raises ConfigError
    fresh = build_defaults()             # what a missing config.json amounts to (no mqtt.host)

Every problem goes through ``Checker.fail``, which words the message the same way everywhere:
``<file>: <dotted key>: <problem> (got <value>)``. The value is shown short, containers by kind
only (they may hold secrets), a secret key's value by kind only, and any secret found anywhere in
the document is scrubbed from the key and the shown value. An unknown key gets the closest known
name of its section ("did you mean 'port'?"), else the keys of that name elsewhere ("did you mean
'mqtt.port'?").
"""

from gateway.config_schema import (
    BOOL,
    CHOICE,
    INT,
    LIST,
    NAME,
    NUMBER,
    REQUIRED,
    ROWS,
    RULES,
    SECTION,
    TEXT,
    children,
    items_of,
    path_of,
)
from gateway.config_secrets import REDACTED, is_secret_key, secret_values

_NOT_GIVEN = object()
_INF = float("inf")


class ConfigError(ValueError):
    """A config.json problem. ``key`` is the dotted key ("mqtt.port", "modules[1].address") or None
    when the problem is the file as a whole; ``str(exc)`` is the full message."""

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key


def copy(value):
    if type(value) is dict:
        return {key: copy(item) for key, item in value.items()}
    if type(value) is list:
        return [copy(item) for item in value]
    return value


def kind_of(value):
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
    """A wrong value as the message shows it: short, and containers by kind only."""
    if type(value) is str:
        if len(value) > 24:
            return repr(value[:24] + "...")
        return repr(value)
    if type(value) in (int, float):
        return repr(value)
    if type(value) is list:
        return "a list of %d" % len(value)  # a list too long or too short: say how long
    return kind_of(value)


def _number_text(value):
    if type(value) is int:
        return "%d" % value
    return "%g" % value


def _quote(value):
    return "'%s'" % value if type(value) is str else "%s" % value


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


def _known_elsewhere(name, section):
    """Keys of other sections named exactly ``name`` (a key put in the wrong section: "port" at
    the top level means "mqtt.port")."""
    lowered = name.lower()
    return [path_of(row) for row in ROWS if row[1] == lowered != "[]" and row[0] != section]


class Checker:
    """Walks a decoded document against the table; every failure goes through ``fail``."""

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
                message += " (got %s)" % kind_of(value)
            else:
                message += " (got %s)" % self.scrub(_shown(value))
        raise ConfigError(message, shown_key)

    def scrub(self, text):
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def section(self, key, path, raw):
        """The section at table path ``path`` (shown as ``key``): every key, defaults filled in."""
        if raw is None:
            raw = {}
        if type(raw) is not dict:
            # kind only: whatever stands where a section belongs may be a pasted secret
            self.fail(key, "must be an object {...} (got %s)" % kind_of(raw))
        rows = children(path)
        self._unknown_keys(key, path, raw, [row[1] for row in rows])
        out = {}
        for row in rows:
            name = row[1]
            out[name] = self.entry(key + "." + name if key else name, row, raw, name)
        return out

    def entry(self, key, row, raw, name):
        value = raw.get(name)
        if row[2] == SECTION:
            return self.section(key, path_of(row), value)
        if value is None:
            if row[5] is REQUIRED:
                if name in raw:
                    self.fail(key, "must be set", None)
                self.fail(key, "required key missing")
            return copy(row[5])
        return self.value(key, row, value)

    def value(self, key, row, value):
        """A set value checked by its row: its kind, bounds and named check; normalised."""
        _section, _name, kind, low, high, _default, rule, check = row
        if kind == INT:
            if type(value) is not int or value < low or value > high:
                self.fail(key, rule or "must be an integer in %d..%d" % (low, high), value)
        elif kind == NUMBER:
            if high == _INF:
                wording = "must be a number >= %s" % _number_text(low)
            else:
                wording = "must be a number in %s..%s" % (_number_text(low), _number_text(high))
            if type(value) not in (int, float) or value != value or value in (_INF, -_INF):
                self.fail(key, wording, value)  # 1e999 reads as infinity: not a number in range
            if value < low or value > high:
                self.fail(key, wording, value)
        elif kind == BOOL:
            if type(value) is not bool:
                self.fail(key, "must be true or false", value)
        elif kind == TEXT or kind == NAME:
            value = self._text(key, value, low, high, kind == NAME)
        elif kind == CHOICE:
            if type(value) is str:
                value = value.lower()
            if type(value) is not str or value not in low:
                self.fail(key, "must be one of %s" % ", ".join(_quote(a) for a in low), value)
        elif kind == LIST:
            value = self._list(key, path_of(row), value, low, high, rule)
        elif kind == SECTION:
            value = self.section(key, path_of(row), value)
        if check is not None and value is not None:
            value = check(self, key, value)
        return value

    def _text(self, key, value, low, high, required):
        if type(value) is not str:
            self.fail(key, "must be a string", value)
        if value == "":
            if required:
                self.fail(key, "must not be empty", "")
            return None  # an empty optional string means "not set", like null
        size = len(value.encode("utf-8"))
        if size < low or size > high:
            self.fail(key, "must be a string of %d..%d bytes" % (low, high), value)
        for char in value:
            if ord(char) < 0x20 or ord(char) == 0x7F:
                self.fail(key, "must not contain control characters", value)
        return value

    def _list(self, key, path, value, low, high, rule):
        if type(value) is not list or not low <= len(value) <= high:
            self.fail(key, rule, value)
        item_row = items_of(path)
        out = []
        for index in range(len(value)):
            out.append(self.value("%s[%d]" % (key, index), item_row, value[index]))
        return out

    def _unknown_keys(self, key, path, raw, names):
        strays = [name if type(name) is str else repr(name) for name in raw if name not in names]
        if not strays:
            return
        strays.sort()
        stray = strays[0]
        problem = "unknown key"
        suggestion = _close_match(stray, names)
        if suggestion is not None:
            problem += " (did you mean '%s'?)" % suggestion
        else:
            elsewhere = _known_elsewhere(stray, path)
            if elsewhere:
                problem += " (did you mean %s?)" % " or ".join("'%s'" % p for p in elsewhere)
        self.fail(key + "." + stray if key else stray, problem)


def validate(raw, source):
    """``raw`` (a decoded document) checked and normalised, every default filled in."""
    if type(raw) is not dict:
        raise ConfigError("%s: must be a JSON object {...} (got %s)" % (source, kind_of(raw)))
    chk = Checker(source, secret_values(raw))
    config = chk.section("", "", raw)
    for rule in RULES:
        rule(chk, config)
    return config


def build_defaults():
    """A fresh config of defaults only (``mqtt.host`` null: no network)."""
    config = {}
    for row in children(""):
        if row[2] == SECTION:
            config[row[1]] = {field[1]: (None if field[5] is REQUIRED else copy(field[5]))
                              for field in children(row[1])}
        else:
            config[row[1]] = copy(row[5])
    config["mqtt"]["port"] = 1883  # the default without TLS
    return config
