"""Home Assistant MQTT discovery for the gateway: the sensors' configs, and the removal of configs
of entities that no longer exist.

    announced = AnnouncedConfigs(board.path("discovery_topics"), log)
    messages = discovery_messages("homeassistant", "rbamp", device_id, modules,
                                  {"name": "rbamp-gateway", "sw_version": VERSION})
    messages = announced.with_removals(messages, kept_topics("homeassistant", device_id, modules))
    link.set_discovery(messages, announced.published)   # published retained; see below

``modules``: one dict per module, ``{"address": 0x50, "label": "house" or None, "channels": 1..3,
"has_voltage": bool, "begun": bool, "variant": ..., "uid_hex": ..., "fw_version": ...}``; only
address, label, channels, has_voltage and begun shape the entities (the others are accepted and
unused). A module that has not begun at this boot (``"begun": False``) gets only its status
sensor: the sensors an earlier boot announced for it stay as they are (``kept_topics``).

One Home Assistant device per gateway (``identifiers: [device_id]``, manufacturer "rbAmp",
model "rbAmp gateway") carries every module's sensors: voltage (modules with a voltage input),
frequency, and per channel current, power, power factor, reactive power, energy import and energy
export (lifetime, ``total_increasing``); with ``day_totals`` also energy import and export today
and yesterday (``total`` with ``last_reset`` from the energy_day payload). Its name is the device
id alone: Home Assistant makes entity ids from the device name and the entity name, so
``rbamp-1a2b3c`` and "house Power ch1" give ``sensor.rbamp_1a2b3c_house_power_ch1`` (a name
"rbAmp rbamp-1a2b3c" gave ``sensor.rbamp_rbamp_...``).
Channels are numbered from 1 in names (``ch1``, ``ch2``; no number on a one-channel module), as
everywhere a person reads them; unique ids and topics keep the 0-based index they always had.

Diagnostic entities (``entity_category: diagnostic``, shown apart on the device page): per module
its status ("ok", "unreachable", ...), and for the gateway its uptime, Wi-Fi signal, IP address,
firmware version, energy journal health, safe mode and config error (two problem binary sensors;
the config error's text is an attribute). They read the gateway's diagnostics in the state payload
and need only the gateway to be online, so a module's status shows "unreachable" rather than
going unavailable with the module's sensors.

The unique id of an entity is ``<device_id>_<address as 2 hex digits>_<quantity>[_<channel>]``,
e.g. ``rbamp-1a2b3c_50_power_0``, or ``<device_id>_<diagnostic>`` for the gateway's own (e.g.
``rbamp-1a2b3c_uptime``): stable across restarts and unique per gateway, module address and
channel (moving a module to another address makes new sensors). Discovery topics are
``<prefix>/<component>/<device_id>/<the unique id without the device id>/config``.

Payloads use Home Assistant's documented abbreviations and ``~`` (the ``<base>/<device_id>``
topic prefix) to keep the retained messages, and the copy the link holds in RAM, small:
``~`` base topic, ``name``, ``uniq_id`` unique_id, ``stat_t`` state_topic, ``val_tpl``
value_template, ``dev_cla`` device_class, ``stat_cla`` state_class, ``unit_of_meas``
unit_of_measurement, ``sug_dsp_prc`` suggested_display_precision, ``ent_cat`` entity_category,
``json_attr_t`` / ``json_attr_tpl`` json_attributes_topic / _template, ``lrst_val_tpl``
last_reset_value_template, ``dev`` device (``ids``
identifiers, ``name``, ``mf`` manufacturer, ``mdl`` model, ``sw`` sw_version), ``o`` origin
(``name``, ``sw`` sw_version, ``url`` support_url, only when given), ``avty`` availability (a
list of ``{"topic": ...}``; full topics, no ``~``) with ``avty_mode`` availability_mode.

Availability: a measuring sensor is available while both the gateway (``<base>/<id>/availability``,
also its last will) and its module (``<base>/<id>/module/<key>/availability``, retained, "offline"
while the module does not answer) say "online" (``availability_mode: all``); a diagnostic entity
while the gateway does.

Removal (``AnnouncedConfigs``): every config topic announced is remembered in a small file on the
board; a topic remembered but no longer announced (a module removed from config.json, another
channel count, a changed device_id or discovery prefix) gets an empty retained message, which
makes Home Assistant delete the entity and the broker drop the retained config. A topic is
forgotten only after the link reports the removal published.

The templates read the state and totals payloads of gateway.payloads (their keys are defined
there). The arguments come from the validated config.json (prefix, base_topic) and from metering's
modules; they are not checked again here. Only the device id, which may come from a file on the
board, is checked (gateway.payloads.topic_prefix).
"""

import json

from gateway import payloads
from gateway.payloads import (CONFIG_ERROR, CURRENT, EXPORT_WH, FIRMWARE, FREQUENCY, IMPORT_WH, IP,
                              JOURNAL, MODULES, POWER, POWER_FACTOR, REACTIVE_POWER, SAFE_MODE, STATUS,
                              UPTIME_MS, VOLTAGE, WIFI_RSSI, module_key)

MANUFACTURER = "rbAmp"
MODEL = "rbAmp gateway"
SENSOR = "sensor"
BINARY_SENSOR = "binary_sensor"
DIAGNOSTIC = "diagnostic"
REMOVED = ""  # an empty retained config: Home Assistant deletes the entity

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
# today's and yesterday's energy (the energy_day payload): (key, name, key of its last_reset);
# device_class energy, state_class total, Wh. The lifetime sensors above stay the Energy
# dashboard's source.
DAY_QUANTITIES = (
    (payloads.TODAY_IMPORT_WH, "Energy import today", payloads.DAY_START),
    (payloads.TODAY_EXPORT_WH, "Energy export today", payloads.DAY_START),
    (payloads.YESTERDAY_IMPORT_WH, "Energy import yesterday", payloads.YESTERDAY_START),
    (payloads.YESTERDAY_EXPORT_WH, "Energy export yesterday", payloads.YESTERDAY_START),
)

_VALUE = "{{ value_json.%s | default(none) }}"
_PROBLEM = "{{ 'ON' if value_json.%s else 'OFF' }}"  # a binary sensor's default payloads
# the gateway's diagnostics: (object id, component, name, template, other fields)
GATEWAY_DIAGNOSTICS = (
    ("uptime", SENSOR, "Uptime", "{{ value_json.%s // 1000 }}" % UPTIME_MS,
     {"dev_cla": "duration", "unit_of_meas": "s", "sug_dsp_prc": 0}),
    ("wifi_rssi", SENSOR, "Wi-Fi signal", _VALUE % WIFI_RSSI,
     {"dev_cla": "signal_strength", "unit_of_meas": "dBm", "stat_cla": "measurement"}),
    ("ip", SENSOR, "IP address", _VALUE % IP, {}),
    ("firmware", SENSOR, "Firmware", _VALUE % FIRMWARE, {}),
    ("journal", SENSOR, "Energy journal", _VALUE % JOURNAL, {}),
    ("safe_mode", BINARY_SENSOR, "Safe mode", _PROBLEM % SAFE_MODE, {"dev_cla": "problem"}),
    ("config_error", BINARY_SENSOR, "Config error", _PROBLEM % CONFIG_ERROR,
     {"dev_cla": "problem", "json_attr_t": "~/" + payloads.STATE,
      "json_attr_tpl": "{{ {'error': value_json.%s} | tojson }}" % CONFIG_ERROR}),
)


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


def channel_suffix(ch, channels):
    """The channel in a name: ch1, ch2 ... (people count channels from 1), after a space; nothing
    on a one-channel module."""
    return " ch%d" % (ch + 1) if channels > 1 else ""


def discovery_messages(prefix, base_topic, device_id, modules, origin, day_totals=False):
    """[(config topic, JSON payload str), ...] for every entity of the gateway and its modules.
    ``day_totals``: also today's and yesterday's energy per channel (the gateway can know the
    date: NTP on, or the PC's clock)."""
    tilde = payloads.topic_prefix(base_topic, device_id)[:-1]
    origin_block = _origin_block(origin)
    node = _safe_id(device_id)
    device = {"ids": [device_id], "name": device_id, "mf": MANUFACTURER, "mdl": MODEL}
    if "sw" in origin_block:
        device["sw"] = origin_block["sw"]
    common = {"~": tilde, "avty_mode": "all", "dev": device, "o": origin_block}
    gateway_only = [{"topic": "%s/%s" % (tilde, payloads.AVAILABILITY)}]
    messages = []

    def add(component, object_id, name, topic_suffix, template, fields, availability):
        payload = {"name": name, "uniq_id": node + "_" + object_id, "stat_t": "~/" + topic_suffix,
                   "val_tpl": template}
        payload.update(fields)
        payload.update(common)
        payload["avty"] = availability
        messages.append((payloads.discovery_topic(prefix, node, object_id, component),
                         json.dumps(payload, separators=(",", ":"))))

    def measured(device_class, unit, state_class, precision):
        fields = {"dev_cla": device_class, "stat_cla": state_class, "sug_dsp_prc": precision}
        if unit is not None:
            fields["unit_of_meas"] = unit
        return fields

    for object_id, component, name, template, fields in GATEWAY_DIAGNOSTICS:
        diagnostic = {"ent_cat": DIAGNOSTIC}
        diagnostic.update(fields)
        add(component, object_id, name, payloads.STATE, template, diagnostic, gateway_only)
    for module in modules:
        address = module["address"]
        key = module_key(address)
        label = module.get("label") or ("module " + key)
        hex_id = "%02x" % address
        add(SENSOR, hex_id + "_" + STATUS, label + " Status", payloads.STATE,
            "{{ value_json.%s['%s'].%s | default(none) }}" % (MODULES, key, STATUS),
            {"ent_cat": DIAGNOSTIC}, gateway_only)
        if not module.get("begun", True):
            continue
        channels = module["channels"]
        availability = [gateway_only[0], {"topic": "%s/%s" % (tilde, payloads.module_availability(key))}]
        for field, name, device_class, unit, state_class, precision in MODULE_QUANTITIES:
            if field == VOLTAGE and not module.get("has_voltage", True):
                continue
            template = "{{ value_json.%s['%s'].%s | default(none) }}" % (MODULES, key, field)
            add(SENSOR, "%s_%s" % (hex_id, field), "%s %s" % (label, name), payloads.STATE, template,
                measured(device_class, unit, state_class, precision), availability)
        for ch in range(channels):
            suffix = channel_suffix(ch, channels)
            for field, name, device_class, unit, state_class, precision in CHANNEL_QUANTITIES:
                template = "{{ (value_json.%s['%s'].%s | default([none] * %d))[%d] }}" % (
                    MODULES, key, field, channels, ch)
                add(SENSOR, "%s_%s_%d" % (hex_id, field, ch), "%s %s%s" % (label, name, suffix),
                    payloads.STATE, template, measured(device_class, unit, state_class, precision),
                    availability)
            for field, name in ENERGY_QUANTITIES:
                template = "{{ (value_json['%s'].%s | default([none] * %d))[%d] }}" % (key, field, channels, ch)
                add(SENSOR, "%s_%s_%d" % (hex_id, field, ch), "%s %s%s" % (label, name, suffix),
                    payloads.TOTALS, template, measured("energy", ENERGY_UNIT, "total_increasing", 1),
                    availability)
            if not day_totals:
                continue
            for field, name, reset_key in DAY_QUANTITIES:
                template = "{{ (value_json.%s['%s'].%s | default([none] * %d))[%d] }}" % (
                    MODULES, key, field, channels, ch)
                fields = measured("energy", ENERGY_UNIT, "total", 1)
                fields["lrst_val_tpl"] = "{{ value_json.%s }}" % reset_key
                add(SENSOR, "%s_%s_%d" % (hex_id, field, ch), "%s %s%s" % (label, name, suffix),
                    payloads.ENERGY_DAY, template, fields, availability)
    return messages


def kept_topics(prefix, device_id, modules):
    """Topic prefixes whose announced configs stay although not announced now: the sensors of a
    module that has not begun at this boot (it may answer later, with its sensors as they were)."""
    node = _safe_id(device_id)
    kept = []
    for module in modules:
        if not module.get("begun", True):
            kept.append(payloads.discovery_topic(prefix, node, "%02x_" % module["address"], SENSOR)[:-len("/config")])
    return kept


def _is_config_topic(topic):
    # a line of the file that could not be a config topic we published (a damaged file) is
    # never used: publishing to a topic with a wildcard would end the broker session
    if not topic.endswith("/config") or "+" in topic or "#" in topic:
        return False
    for char in topic:
        if char < " " or char > "~":
            return False
    return True


class AnnouncedConfigs:
    """The discovery config topics this gateway announced, one a line in a small file, so that
    configs of entities that no longer exist are removed (see the module docstring).

    ``with_removals()`` remembers what is about to be announced before anything is published (a
    reset in between leaves the file knowing more, never less); ``published()``, called by the
    link after a complete round, forgets the topics whose removal went out. A file that cannot be
    read counts as empty (nothing is removed); one that cannot be written is logged and the
    removals are published again at the next round."""

    def __init__(self, path, log):
        self.path = path
        self.log = log

    def topics(self):
        """The remembered topics, in file order (none if there is no file yet)."""
        try:
            with open(self.path) as handle:
                text = handle.read()
        except OSError:
            return []  # nothing announced yet from this board
        found = []
        for line in text.split("\n"):
            line = line.strip()
            if line and line not in found and _is_config_topic(line):
                found.append(line)
        return found

    def _write(self, topics):
        import os

        temporary = self.path + ".tmp"
        try:
            with open(temporary, "w") as handle:
                handle.write("".join(topic + "\n" for topic in topics))
            try:
                os.rename(temporary, self.path)
            except OSError:
                os.remove(self.path)  # FAT does not rename over an existing file
                os.rename(temporary, self.path)
        except OSError as exc:
            self.log.warning("discovery: could not keep the announced topics in %s (%s)", self.path, exc)

    def with_removals(self, messages, kept=()):
        """``messages`` followed by ``(topic, REMOVED)`` for every remembered topic not among them
        and not starting with one of ``kept``."""
        remembered = self.topics()
        current = [topic for topic, _ in messages]
        out = list(messages)
        added = False
        for topic in current:
            if topic not in remembered:
                remembered.append(topic)
                added = True
        for topic in remembered:
            if topic in current:
                continue
            keep = False
            for start in kept:
                if topic.startswith(start):
                    keep = True
            if not keep:
                out.append((topic, REMOVED))
        if added:
            self._write(remembered)
        return out

    def published(self, messages):
        """The link published ``messages`` (bytes or str pairs): forget the topics removed."""
        removed = []
        for topic, payload in messages:
            if not payload:
                removed.append(topic.decode() if isinstance(topic, bytes) else topic)
        if not removed:
            return
        remembered = self.topics()
        left = [topic for topic in remembered if topic not in removed]
        if len(left) != len(remembered):
            self._write(left)
