"""Home Assistant MQTT discovery for the gateway, and the payload shapes its sensors read.

    messages = discovery_messages("homeassistant", "rbamp", device_id, modules,
                                  {"name": "rbamp-gateway", "sw_version": VERSION})
    link.set_discovery(messages)             # [(topic, json str), ...], published retained

``modules``: one dict per module, ``{"address": 0x50, "label": "house" or None, "channels": 1..3,
"has_voltage": bool, "variant": ..., "uid_hex": ..., "fw_version": ...}``; only address, label,
channels and has_voltage shape the sensors (the others are accepted and unused).

One Home Assistant device per gateway (``identifiers: [device_id]``) carries every module's
sensors: voltage (modules with a voltage input), frequency, and per channel current, power,
power factor, reactive power, energy import and energy export. The unique id of a sensor is
``<device_id>_<address as 2 hex digits>_<quantity>[_<channel>]``, e.g. ``rbamp-1a2b3c_50_power_0``:
stable across restarts and unique per gateway, module address and channel (moving a module to
another address makes new sensors). Discovery topics are
``<prefix>/sensor/<device_id>/<address>_<quantity>[_<channel>]/config``.

Payloads use Home Assistant's documented abbreviations and ``~`` (the ``<base>/<device_id>``
topic prefix) to keep the retained messages, and the copy the link holds in RAM, small:
``~`` base topic, ``name``, ``uniq_id`` unique_id, ``stat_t`` state_topic, ``val_tpl``
value_template, ``dev_cla`` device_class, ``stat_cla`` state_class, ``unit_of_meas``
unit_of_measurement, ``sug_dsp_prc`` suggested_display_precision, ``avty_t`` availability_topic,
``dev`` device (``ids`` identifiers, ``name``, ``mdl`` model, ``sw`` sw_version), ``o`` origin
(``name``, ``sw`` sw_version, ``url`` support_url, only when given), ``avty`` availability (a
list of ``{"topic": ...}``; full topics, no ``~``) with ``avty_mode`` availability_mode.

Availability: a sensor is available while both the gateway (``<base>/<id>/availability``, also
its last will) and its module (``<base>/<id>/module/<key>/availability``, retained, "offline"
while the module does not answer) say "online" (``availability_mode: all``).

Payloads the application publishes (keys of modules: ``module_key(address)``, e.g. "0x50"):

state, ``<base>/<id>/state``, QoS 0::

    {"modules": {"0x50": {"status": "ok",          # "ok", "unreachable", "rebooted"
                          "voltage": 231.4,         # V, only with a voltage input
                          "frequency": 50.0,        # Hz
                          "current": [1.234],       # A, one per channel
                          "power": [270.1],         # W, signed: < 0 is export
                          "power_factor": [0.95],   # a ratio in -1..1 (no unit, not %)
                          "reactive_power": [12.0], # var
                          "error": "..."}},         # only when something failed
     ...}                                           # other top-level keys are free

    A module whose values could not be read leaves them out; its sensors then read "None",
    which Home Assistant shows as unknown (the templates default to none instead of failing).

totals, ``<base>/<id>/totals``, retained::

    {"0x50": {"import_wh": [1234.567], "export_wh": [0.0]}}    # Wh, one per channel, never decreasing

period, ``<base>/<id>/period``: ``{"seq": n, "ts": unix s or null, "modules": {...}}`` (not used
by discovery).
"""

import json

# (key in the state payload, name, device_class, unit, state_class, display precision)
MODULE_QUANTITIES = (
    ("voltage", "Voltage", "voltage", "V", "measurement", 1),
    ("frequency", "Frequency", "frequency", "Hz", "measurement", 2),
)
CHANNEL_QUANTITIES = (
    ("current", "Current", "current", "A", "measurement", 3),
    ("power", "Power", "power", "W", "measurement", 1),
    ("power_factor", "Power factor", "power_factor", None, "measurement", 2),
    ("reactive_power", "Reactive power", "reactive_power", "var", "measurement", 1),
)
# (key in the totals payload, name); all device_class energy, Wh, total_increasing
ENERGY_QUANTITIES = (
    ("import_wh", "Energy import"),
    ("export_wh", "Energy export"),
)
ENERGY_UNIT = "Wh"


def module_key(address):
    """The key of a module in the state and totals payloads."""
    return "0x%02x" % address


def _safe_id(text):
    # discovery topic levels and unique ids: letters, digits, '_' and '-' only
    out = []
    for ch in text:
        out.append(ch if ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in "_-") else "_")
    return "".join(out)


def _check_topic_part(name, value):
    if not isinstance(value, str) or not value:
        raise ValueError("%s must be a non-empty str, got %r" % (name, value))
    if "+" in value or "#" in value:
        raise ValueError("%s must not contain MQTT wildcards: %r" % (name, value))


def _check_module(index, module):
    if not isinstance(module, dict):
        raise ValueError("modules[%d] must be a dict, got %r" % (index, module))
    address = module.get("address")
    if not isinstance(address, int) or not 0x08 <= address <= 0x77:
        raise ValueError("modules[%d].address must be an int in 0x08..0x77, got %r" % (index, address))
    channels = module.get("channels")
    if not isinstance(channels, int) or not 1 <= channels <= 8:
        raise ValueError("modules[%d].channels must be an int in 1..8, got %r" % (index, channels))
    label = module.get("label")
    if label is not None and not isinstance(label, str):
        raise ValueError("modules[%d].label must be a str or null, got %r" % (index, label))


def _origin_block(origin):
    if not isinstance(origin, dict) or not isinstance(origin.get("name"), str) or not origin["name"]:
        raise ValueError("origin must be a dict with a non-empty 'name', got %r" % (origin,))
    block = {"name": origin["name"]}
    if origin.get("sw_version") is not None:
        block["sw"] = str(origin["sw_version"])
    if origin.get("support_url"):
        block["url"] = origin["support_url"]
    return block


def discovery_messages(prefix, base_topic, device_id, modules, origin):
    """[(config topic, JSON payload str), ...] for every sensor of every module."""
    _check_topic_part("prefix", prefix)
    _check_topic_part("base_topic", base_topic)
    _check_topic_part("device_id", device_id)
    if not isinstance(modules, (list, tuple)):
        raise ValueError("modules must be a list, got %r" % (modules,))
    seen = {}
    for index, module in enumerate(modules):
        _check_module(index, module)
        if module["address"] in seen:
            raise ValueError("modules[%d]: address 0x%02x is listed twice" % (index, module["address"]))
        seen[module["address"]] = True
    origin_block = _origin_block(origin)
    node = _safe_id(device_id)
    device = {"ids": [device_id], "name": "rbAmp " + device_id, "mdl": "rbAmp gateway"}
    if "sw" in origin_block:
        device["sw"] = origin_block["sw"]
    tilde = base_topic + "/" + device_id
    common = {"~": tilde, "avty_mode": "all", "dev": device, "o": origin_block}
    messages = []
    availability = []

    def add(object_id, name, topic_suffix, template, device_class, unit, state_class, precision):
        payload = {"name": name, "uniq_id": node + "_" + object_id, "stat_t": "~/" + topic_suffix,
                   "val_tpl": template, "dev_cla": device_class, "stat_cla": state_class,
                   "sug_dsp_prc": precision}
        if unit is not None:
            payload["unit_of_meas"] = unit
        payload.update(common)
        payload["avty"] = availability
        topic = "%s/sensor/%s/%s/config" % (prefix, node, object_id)
        messages.append((topic, json.dumps(payload, separators=(",", ":"))))

    for module in modules:
        address = module["address"]
        key = module_key(address)
        label = module.get("label") or ("module " + key)
        channels = module["channels"]
        hex_id = "%02x" % address
        availability = [{"topic": tilde + "/availability"},
                        {"topic": "%s/module/%s/availability" % (tilde, key)}]
        for field, name, device_class, unit, state_class, precision in MODULE_QUANTITIES:
            if field == "voltage" and not module.get("has_voltage", True):
                continue
            template = "{{ value_json.modules['%s'].%s | default(none) }}" % (key, field)
            add("%s_%s" % (hex_id, field), "%s %s" % (label, name), "state", template,
                device_class, unit, state_class, precision)
        for ch in range(channels):
            suffix = " ch%d" % (ch + 1) if channels > 1 else ""
            for field, name, device_class, unit, state_class, precision in CHANNEL_QUANTITIES:
                template = "{{ (value_json.modules['%s'].%s | default([none] * %d))[%d] }}" % (
                    key, field, channels, ch)
                add("%s_%s_%d" % (hex_id, field, ch), "%s %s%s" % (label, name, suffix), "state",
                    template, device_class, unit, state_class, precision)
            for field, name in ENERGY_QUANTITIES:
                template = "{{ (value_json['%s'].%s | default([none] * %d))[%d] }}" % (key, field, channels, ch)
                add("%s_%s_%d" % (hex_id, field, ch), "%s %s%s" % (label, name, suffix), "totals",
                    template, "energy", ENERGY_UNIT, "total_increasing", 1)
    return messages
