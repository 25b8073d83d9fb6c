"""Gateway configuration: config.json read strictly, validated, merged with defaults, with a last
good copy and a safe mode to fall back on.

The schema is documented key by key in docs/config.md; ``config.example.json`` is a complete
example. What the application calls::

    from gateway.config import load_config, parse_config, ConfigError, DEFAULTS, redact

    result = load_config("/config.json", "/config.last_good.json")   # never raises for bad content
    result.config      # always usable: the file, else the last good copy, else defaults
    result.safe_mode   # True when only defaults were left: meter and persist, no network
    result.error       # None, or "config.json: mqtt.port: must be an integer in 1..65535 (got '1883x')"

    cfg = parse_config(text_or_dict)   # raises ConfigError; exc.key is the dotted key or None

The parts, each with one job:

- ``gateway.jsonstrict``: the strict JSON reader (and why the ``json`` module will not do);
- ``gateway.config_schema``: the schema as a table, one row per key, and the rules across keys;
  its docstring lists what the validated dict guarantees, so downstream code need not re-check;
- ``gateway.config_checker``: the one checker that walks the table and words every message;
- ``gateway.config_secrets``: which keys are secrets, ``redact`` and ``secret_values``;
- this module: the file, its last good copy, safe mode's salvage, and the names above re-exported.

Rules the messages follow: they name the key and the problem, and never contain a secret. Values
of secret keys are never echoed, and any secret found anywhere in the file is scrubbed from a
message before it is raised (the same password given to a wrong key must not leak either).
"""

import os

from gateway.config_checker import Checker, ConfigError, build_defaults, copy, validate
from gateway.config_result import LoadResult
from gateway.config_schema import HARDWARE_RULES, LOG_LEVELS, MAX_MODULES, children
from gateway.config_secrets import REDACTED, SECRET_KEYS, is_secret_key, redact, secret_values
from gateway.jsonstrict import MAX_NESTING, JsonError
from gateway.jsonstrict import parse_json as _parse_json

__all__ = ("ConfigError", "LoadResult", "DEFAULTS", "load_config", "parse_config", "parse_json",
           "redact", "secret_values", "is_secret_key", "SECRET_KEYS", "REDACTED", "LOG_LEVELS",
           "MAX_MODULES", "MAX_NESTING", "MAX_FILE_BYTES", "SALVAGEABLE", "SOURCE_NAME", "write_atomically")

SOURCE_NAME = "config.json"
MAX_FILE_BYTES = 16384  # a config is ~1 KB; a bigger file is a mistake and must not exhaust the heap
# Sections that only describe local hardware and bookkeeping: in safe mode they are taken from the
# broken file when they are valid on their own, so metering still reads the modules that exist.
SALVAGEABLE = ("i2c", "drdy_pin", "modules", "period_s", "commit", "mains_loss", "log_level")

DEFAULTS = build_defaults()


def parse_json(text, source=SOURCE_NAME):
    """The strict reader (gateway.jsonstrict) raising ConfigError, as everything here does."""
    try:
        return _parse_json(text, source)
    except JsonError as exc:
        raise ConfigError(str(exc), exc.key)


def parse_config(text_or_dict, source=SOURCE_NAME):
    """Validated, normalised config with every default filled in; raises ConfigError.

    Accepts the file's text (str or bytes) or an already decoded dict. Normalisation: hex address
    strings become ints, empty optional strings become null, log_level is lower-cased, and
    mqtt.port is resolved (1883, or 8883 with tls)."""
    if type(text_or_dict) is dict:
        return validate(text_or_dict, source)
    return validate(parse_json(text_or_dict, source), source)


def _salvage(raw, source):
    """Defaults, plus each hardware section of a broken file that is valid by itself."""
    config = build_defaults()
    taken = []
    if type(raw) is not dict:
        return config, taken
    chk = Checker(source, secret_values(raw))
    for row in children(""):
        name = row[1]
        if name not in SALVAGEABLE or raw.get(name) is None:
            continue
        try:
            config[name] = chk.entry(name, row, raw, name)
        except ConfigError:
            continue  # the section keeps its default; load_config reports the file's first problem
        taken.append(name)
    try:
        for rule in HARDWARE_RULES:
            rule(chk, config)
    except ConfigError:
        # conflicting pins: the board's defaults are safer than half of the file's choice
        config["i2c"] = copy(DEFAULTS["i2c"])
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


def write_atomically(path, data):
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


_write_atomically = write_atomically  # the name of earlier versions


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
        config = validate(raw, source)
    except ConfigError as exc:
        error = str(exc)
    else:
        if last_good_path and _read_or_none(last_good_path) != data:
            try:
                write_atomically(last_good_path, data)
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
