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

The templates read the state and totals payloads of gateway.payloads (their keys are defined
there). The arguments come from the validated config.json (prefix, base_topic) and from metering's
modules; they are not checked again here. Only the device id, which may come from a file on the
board, is checked (gateway.payloads.topic_prefix).
"""

import json

from gateway import payloads
from gateway.payloads import (CURRENT, EXPORT_WH, FREQUENCY, IMPORT_WH, POWER, POWER_FACTOR,
                              REACTIVE_POWER, VOLTAGE, module_key)

# (key in the state payload, name, device_class, unit, state_class, display precision)
MODULE_QUANTITIES = (
    (VOLTAGE, "Voltage", "voltage", "V", "measurement", 1),
    (FREQUENCY, "Frequency", "frequency", "Hz", "measurement", 2),
)
CHANNEL_QUANTITIES = (
    (CURRENT, "Current", "current", "A", "measurement", 3),
    (POWER, "Power", "power", "W", "measurement", 1),
    (POWER_FACTOR, "Power factor", "power_factor", None, "measurement", 2),
    (REACTIVE_POWER, "Reactive power", "reactive_power", "var", "measurement", 1),
)
# (key in the totals payload, name); all device_class energy, Wh, total_increasing
ENERGY_QUANTITIES = (
    (IMPORT_WH, "Energy import"),
    (EXPORT_WH, "Energy export"),
)
ENERGY_UNIT = "Wh"


def _safe_id(text):
    # discovery topic levels and unique ids: letters, digits, '_' and '-' only
    out = []
    for ch in text:
        out.append(ch if ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in "_-") else "_")
    return "".join(out)


def _origin_block(origin):
    block = {"name": origin["name"]}
    if origin.get("sw_version") is not None:
        block["sw"] = str(origin["sw_version"])
    if origin.get("support_url"):
        block["url"] = origin["support_url"]
    return block


def discovery_messages(prefix, base_topic, device_id, modules, origin):
    """[(config topic, JSON payload str), ...] for every sensor of every module."""
    tilde = payloads.topic_prefix(base_topic, device_id)[:-1]
    origin_block = _origin_block(origin)
    node = _safe_id(device_id)
    device = {"ids": [device_id], "name": "rbAmp " + device_id, "mdl": "rbAmp gateway"}
    if "sw" in origin_block:
        device["sw"] = origin_block["sw"]
    common = {"~": tilde, "avty_mode": "all", "dev": device, "o": origin_block}
    gateway_availability = {"topic": "%s/%s" % (tilde, payloads.AVAILABILITY)}
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
        messages.append((payloads.discovery_topic(prefix, node, object_id),
                         json.dumps(payload, separators=(",", ":"))))

    for module in modules:
        address = module["address"]
        key = module_key(address)
        label = module.get("label") or ("module " + key)
        channels = module["channels"]
        hex_id = "%02x" % address
        availability = [gateway_availability,
                        {"topic": "%s/%s" % (tilde, payloads.module_availability(key))}]
        for field, name, device_class, unit, state_class, precision in MODULE_QUANTITIES:
            if field == VOLTAGE and not module.get("has_voltage", True):
                continue
            template = "{{ value_json.%s['%s'].%s | default(none) }}" % (payloads.MODULES, key, field)
            add("%s_%s" % (hex_id, field), "%s %s" % (label, name), payloads.STATE, template,
                device_class, unit, state_class, precision)
        for ch in range(channels):
            suffix = " ch%d" % (ch + 1) if channels > 1 else ""
            for field, name, device_class, unit, state_class, precision in CHANNEL_QUANTITIES:
                template = "{{ (value_json.%s['%s'].%s | default([none] * %d))[%d] }}" % (
                    payloads.MODULES, key, field, channels, ch)
                add("%s_%s_%d" % (hex_id, field, ch), "%s %s%s" % (label, name, suffix), payloads.STATE,
                    template, device_class, unit, state_class, precision)
            for field, name in ENERGY_QUANTITIES:
                template = "{{ (value_json['%s'].%s | default([none] * %d))[%d] }}" % (key, field, channels, ch)
                add("%s_%s_%d" % (hex_id, field, ch), "%s %s%s" % (label, name, suffix), payloads.TOTALS,
                    template, "energy", ENERGY_UNIT, "total_increasing", 1)
    return messages
