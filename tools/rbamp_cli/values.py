"""Parsers of single option values. Each raises ``argparse.ArgumentTypeError`` with one clear line,
which argparse turns into a usage error (exit code 2) naming the option."""

import argparse
import math

VARIANTS = ("UI1", "UI2", "UI3", "I1", "I2", "I3")
PROTOCOLS = {"1.2": 0x03, "1.3": 0x04}
FIRST_SIM_ADDRESS = 0x50
SENSOR_CLASS_NAMES = {"unset": 0, "sct013": 1, "sct-013": 1, "wired": 2, "wired-ct": 2, "builtin": 3,
                      "builtin-ct": 3, "built-in": 3}
# protocol.md "CT models": code -> SCT-013 model and its rated current
CT_MODEL_NAMES = {1: "SCT-013-005", 2: "SCT-013-010", 3: "SCT-013-030", 4: "SCT-013-050",
                  5: "SCT-013-100", 6: "SCT-013-020", 7: "SCT-013-060"}


def address(text):
    """An I2C address: ``0x50``, ``80`` or ``0o120``; 0x08..0x77 (the 7-bit range that is not reserved)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an I2C address (write 0x50 or 80)" % text)
    if not 0x08 <= value <= 0x77:
        raise argparse.ArgumentTypeError("address %s is out of range: I2C addresses are 0x08..0x77" % text)
    return value


def bus_number(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a bus number (1 for /dev/i2c-1)" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("bus number must be 0 or more")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more, got %d" % value)
    return value


def positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % text)
    if not value > 0 or value > 86400 * 366:
        raise argparse.ArgumentTypeError("must be more than 0 s and at most a year, got %s" % text)
    return value


def frequency(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a frequency in Hz (e.g. 100000)" % text)
    if not 10000 <= value <= 400000:
        raise argparse.ArgumentTypeError("bus frequency must be 10000..400000 Hz, got %d" % value)
    return value


class SimSpec:
    """One simulated module: variant, protocol byte, address (None: next free one)."""

    def __init__(self, variant, protocol, addr):
        self.variant = variant
        self.protocol = protocol
        self.addr = addr

    def __repr__(self):
        return "SimSpec(%s, 0x%02X, %r)" % (self.variant, self.protocol, self.addr)


def sim_specs(text):
    """``VARIANT[@VERSION][:ADDRESS]``, comma-separated for several modules: ``UI2@1.3,I1@1.2:0x52``."""
    specs = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise argparse.ArgumentTypeError("empty module in %r (write UI2@1.3 or UI2@1.3,UI1@1.2)" % text)
        body, _, addr_text = part.partition(":")
        variant, _, version = body.partition("@")
        variant = variant.upper()
        if variant not in VARIANTS:
            raise argparse.ArgumentTypeError("unknown variant %r: one of %s" % (body.partition("@")[0],
                                                                               ", ".join(VARIANTS)))
        version = version or "1.3"
        if version not in PROTOCOLS:
            raise argparse.ArgumentTypeError("unknown protocol version %r for %s: 1.2 or 1.3" % (version, variant))
        addr = address(addr_text) if addr_text else None
        specs.append(SimSpec(variant, PROTOCOLS[version], addr))
    return specs


class LoadSpec:
    """What the simulated modules measure: ``kind`` is constant, household or noisy."""

    def __init__(self, kind, powers=(), seed=1, sigma=0.0, start_hour=7.0):
        self.kind = kind
        self.powers = list(powers)
        self.seed = seed
        self.sigma = sigma
        self.start_hour = start_hour


def _watts_list(text, spec):
    try:
        powers = [float(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("%r: powers are numbers in W, comma-separated per channel" % spec)
    if not 1 <= len(powers) <= 3:
        raise argparse.ArgumentTypeError("%r: give 1..3 powers (one per channel)" % spec)
    for p in powers:
        if math.isnan(p) or abs(p) > 100000:
            raise argparse.ArgumentTypeError("%r: power %s W is not plausible (|P| <= 100 kW)" % (spec, p))
    return powers


def load_spec(text):
    """``constant:W[,W,W]`` (per channel; negative is export; missing channels 0 W),
    ``household[:SEED[:START_HOUR]]`` (house on ch1, solar export on ch2),
    ``noisy:SIGMA:W[,W,W]`` (constant plus Gaussian noise of SIGMA W per 200 ms window)."""
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    if kind == "constant":
        if not rest:
            raise argparse.ArgumentTypeError("constant needs powers: constant:1000 or constant:1000,-300")
        return LoadSpec("constant", _watts_list(rest, text))
    if kind == "household":
        seed_text, _, hour_text = rest.partition(":")
        try:
            seed = int(seed_text) if seed_text else 1
            hour = float(hour_text) if hour_text else 7.0
        except ValueError:
            raise argparse.ArgumentTypeError("%r: write household, household:SEED or household:SEED:HOUR" % text)
        if not 0 <= hour < 24:
            raise argparse.ArgumentTypeError("%r: the start hour must be 0..24" % text)
        return LoadSpec("household", seed=seed, start_hour=hour)
    if kind == "noisy":
        sigma_text, _, powers_text = rest.partition(":")
        try:
            sigma = float(sigma_text)
        except ValueError:
            raise argparse.ArgumentTypeError("%r: write noisy:SIGMA:W[,W,W], e.g. noisy:20:1000" % text)
        if not 0 <= sigma <= 10000:
            raise argparse.ArgumentTypeError("%r: sigma must be 0..10000 W" % text)
        return LoadSpec("noisy", _watts_list(powers_text, text), sigma=sigma)
    raise argparse.ArgumentTypeError("unknown load %r: constant:W[,W,W], household[:SEED[:HOUR]] or "
                                     "noisy:SIGMA:W[,W,W]" % text)


def sensor_class(text):
    """0..3 or a name: unset, sct013, wired, builtin."""
    lowered = text.lower()
    if lowered in SENSOR_CLASS_NAMES:
        return SENSOR_CLASS_NAMES[lowered]
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 3:
        raise argparse.ArgumentTypeError("sensor class %r: 0/unset, 1/sct013, 2/wired, 3/builtin" % text)
    return value


def ct_model(text):
    """A CT model: its code 1..7 (a single digit), or its rated current as a name
    (SCT-013-030, 030, 30A): 5 is code 5 (the 100 A model), 5A is the 5 A model (code 1)."""
    upper = text.strip().upper()
    if upper.isdigit() and len(upper) == 1 and 1 <= int(upper) <= 7:
        return int(upper)
    amps = upper
    for prefix in ("SCT-013-", "SCT013-", "SCT013"):
        if amps.startswith(prefix):
            amps = amps[len(prefix):]
            break
    amps = amps.removesuffix("A")
    if amps.isdigit():
        for code, name in CT_MODEL_NAMES.items():
            if int(name[-3:]) == int(amps):
                return code
    raise argparse.ArgumentTypeError("CT model %r: a code 1..7 or a name like SCT-013-030 (%s)" % (
        text, ", ".join("%d=%s" % item for item in sorted(CT_MODEL_NAMES.items()))))


def ct_binding(text):
    """``CH=MODEL`` binds one channel, numbered from 1 as Home Assistant names them (``ch2=`` is
    ``2=``); a bare ``MODEL`` binds every channel (channel None). Whether the module has that
    channel is checked against the module itself."""
    channel_text, sep, model_text = text.partition("=")
    if not sep:
        return (None, ct_model(text))
    digits = channel_text.strip().lower().removeprefix("ch")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError("%r: write CH=MODEL, e.g. 1=SCT-013-030 or 2=3" % text)
    channel = int(digits)
    if channel < 1:
        raise argparse.ArgumentTypeError("%r: channels are numbered from 1 (ch1, ch2, ch3, as in Home "
                                         "Assistant)" % text)
    return (channel, ct_model(model_text))


def label(text):
    data = text.encode("utf-8", "replace")
    if len(data) > 8 or any(not 0x20 <= b < 0x7F for b in data):
        raise argparse.ArgumentTypeError("label %r: up to 8 printable ASCII characters" % text)
    return text


def group_id(text):
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError("group %r: 0..255 (0 addresses every module)" % text)
    return value
