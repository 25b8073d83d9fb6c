"""`make run`'s live view: what a subscriber receives from this gateway, as a table.

It subscribes to this gateway's own topics only (``<base>/<device_id>/#`` and the Home Assistant
discovery configs of its node), never to ``<base>/#``: a broker shared with other gateways, or
holding retained values of an earlier device id, must not lend their values to this one.

    view = LiveView("127.0.0.1", 1883, config, device_id_source,   # config: the validated dict
                    web_note="http://127.0.0.1:8080/")
    view.render(["a line of the gateway log", ...])                 # the screen, as text
    view.stop()

``device_id_source`` is a callable giving the device id once it is known (config.json's, or the
one the gateway kept in its data folder at its first boot), else None; the view subscribes when
it first has one and again when it changes.
"""

import json
import threading

from gateway import payloads

PERIODS_SHOWN = 3
DISCOVERY_WIDTH = 100


def _number(value, digits):
    """A reading as text; '-' when it is missing. -0.0 shows as 0.0 (it is no measurement)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return "%.*f" % (digits, value + 0.0)


def _channel_value(values, index, digits):
    if not isinstance(values, list) or index >= len(values):
        return "-"
    return _number(values[index], digits)


def _duration(ms):
    if not isinstance(ms, int):
        return "-"
    seconds = ms // 1000
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def _clock(ts):
    if not isinstance(ts, int):
        return "no clock"
    return "%02d:%02d:%02d" % (ts // 3600 % 24, ts // 60 % 60, ts % 60)  # UTC


def _decoded(payload):
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")


class LiveView:
    """Subscribes like any consumer would and keeps the latest of this gateway's messages."""

    def __init__(self, host, port, config, device_id_source, broker_note="", config_note="", web_note="off",
                 setup_note=""):
        import paho.mqtt.client as mqtt

        self.host = host
        self.port = port
        self.broker_note = broker_note
        self.config_note = config_note
        self.web_note = web_note  # the page's URL, or why there is none
        self.setup_note = setup_note  # where setup mode's page and DNS are, when it was asked for
        self.base = config["mqtt"]["base_topic"]
        self.ha_prefix = config["homeassistant"]["prefix"]
        self.labels = {payloads.module_key(m["address"]): m.get("label") for m in config["modules"]}
        self.device_id_source = device_id_source
        self.device_id = None
        self.topics = []
        self.lock = threading.Lock()
        self._clear()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rbamp-live-view")
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.connect(host, port, 30)  # raises OSError when no broker listens there
        self.client.loop_start()

    def _clear(self):
        self.latest = {}  # topic suffix under <base>/<device_id>/ -> decoded payload
        self.periods = []
        self.discovery = {}  # discovery config topic -> True while its retained config is there

    def _topics_of(self, device_id):
        # a device id is one plain topic level and its own discovery node; any component (sensor,
        # binary_sensor, ...): <prefix>/<component>/<node>/<object id>/config
        return [payloads.topic_prefix(self.base, device_id) + "#", "%s/+/%s/+/config" % (self.ha_prefix, device_id)]

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        with self.lock:
            topics = list(self.topics)
        for topic in topics:
            client.subscribe(topic)

    def _follow_device(self):
        """Subscribe to the gateway's topics once its device id is known (again if it changed)."""
        device_id = self.device_id_source()
        if device_id is None or device_id == self.device_id:
            return
        with self.lock:
            old = self.topics
            self.device_id = device_id
            self.topics = self._topics_of(device_id)
            self._clear()
        for topic in old:
            self.client.unsubscribe(topic)
        for topic in self.topics:
            self.client.subscribe(topic)

    def _on_message(self, client, userdata, msg):
        with self.lock:
            if self.device_id is None:
                return
            own = payloads.topic_prefix(self.base, self.device_id)
            if msg.topic.startswith(own):
                suffix = msg.topic[len(own):]
                value = _decoded(msg.payload)
                if suffix == payloads.PERIOD:
                    self.periods = (self.periods + [value])[-PERIODS_SHOWN:]
                else:
                    self.latest[suffix] = value
            elif msg.topic.startswith(self.ha_prefix + "/"):
                if msg.payload:
                    self.discovery[msg.topic] = True
                else:  # an empty retained config removes the entity
                    self.discovery.pop(msg.topic, None)

    def watch_command(self):
        """A ready command line that shows what this view shows, raw."""
        topics = self.topics or [self.base + "/<device_id>/#"]
        return "mosquitto_sub -h %s -p %d -v %s" % (self.host, self.port,
                                                    " ".join("-t '%s'" % t for t in topics))

    def render(self, log_tail):
        self._follow_device()
        with self.lock:
            lines = ["rbAmp gateway on this PC (host profile) -- Ctrl-C to stop", ""]
            lines.extend(self._header())
            lines.append("")
            lines.extend(self._modules())
            lines.extend(self._periods())
            lines.extend(self._discovery())
        lines.append("")
        lines.append("gateway log:")
        lines.extend("  " + line for line in log_tail)
        return "\n".join(lines)

    def _header(self):
        device = self.device_id or "(device id not known yet)"
        availability = self.latest.get(payloads.AVAILABILITY, "no availability yet")
        state = self.latest.get(payloads.STATE)
        lines = ["device    %s  %s" % (device, availability)]
        if isinstance(state, dict):
            heap = state.get("heap_used")
            lines[0] += "  uptime %s  samples %s  periods %s  heap %s" % (
                _duration(state.get("uptime_ms")), state.get("samples", "-"), state.get("periods", "-"),
                "%d kB" % (heap // 1024) if isinstance(heap, int) else "-")
            if state.get("safe_mode"):
                lines.append("SAFE MODE: metering and persisting only")
            if state.get("config_error"):
                lines.append("config    %s" % state["config_error"])
        if self.config_note:
            lines.append("config    " + self.config_note)
        lines.append("broker    %s:%d%s" % (self.host, self.port, self.broker_note))
        lines.append("watch     " + self.watch_command())
        lines.append("web page  " + self.web_note)
        if self.setup_note:
            lines.append("setup     " + self.setup_note)
        return lines

    def _modules(self):
        state = self.latest.get(payloads.STATE)
        readings = state.get(payloads.MODULES) if isinstance(state, dict) else None
        totals = self.latest.get(payloads.TOTALS)
        lines = []
        for key in sorted(self.labels):
            reading = readings.get(key) if isinstance(readings, dict) else None
            reading = reading if isinstance(reading, dict) else {}
            energy = totals.get(key) if isinstance(totals, dict) else None
            energy = energy if isinstance(energy, dict) else {}
            label = self.labels[key]
            head = "module %s%s  %s  status %s  U %s V  f %s Hz" % (
                key, " (%s)" % label if label else "",
                self.latest.get(payloads.module_availability(key), "-"), reading.get(payloads.STATUS, "-"),
                _number(reading.get(payloads.VOLTAGE), 1), _number(reading.get(payloads.FREQUENCY), 2))
            lines.append(head)
            if reading.get(payloads.ERROR):
                lines.append("  error: %s" % reading[payloads.ERROR])
            lines.append("  %-7s %9s %9s %6s %13s %13s" % ("channel", "I (A)", "P (W)", "PF",
                                                           "import (Wh)", "export (Wh)"))
            count = max([len(v) for v in (reading.get(payloads.CURRENT), energy.get(payloads.IMPORT_WH))
                         if isinstance(v, list)] or [0])
            for ch in range(count):
                lines.append("  %-7s %9s %9s %6s %13s %13s" % (
                    "ch%d" % (ch + 1), _channel_value(reading.get(payloads.CURRENT), ch, 3),
                    _channel_value(reading.get(payloads.POWER), ch, 1),
                    _channel_value(reading.get(payloads.POWER_FACTOR), ch, 2),
                    _channel_value(energy.get(payloads.IMPORT_WH), ch, 3),
                    _channel_value(energy.get(payloads.EXPORT_WH), ch, 3)))
            lines.append("")
        return lines

    def _periods(self):
        lines = ["latest periods"]
        if not self.periods:
            return lines + ["  none yet", ""]
        lines.append("  %-6s %-9s %-6s %-6s %-16s %-16s %s" % ("seq", "time UTC", "module", "valid",
                                                              "avg P (W)", "import (Wh)", "export (Wh)"))
        for record in self.periods:
            if not isinstance(record, dict):
                lines.append("  (not a period record: %s)" % str(record)[:80])
                continue
            modules = record.get(payloads.MODULES)
            for key in sorted(modules) if isinstance(modules, dict) else []:
                entry = modules[key] if isinstance(modules[key], dict) else {}

                def joined(name, digits, entry=entry):
                    values = entry.get(name)
                    return " / ".join(_number(v, digits) for v in values) if isinstance(values, list) else "-"

                lines.append("  %-6s %-9s %-6s %-6s %-16s %-16s %s" % (
                    record.get(payloads.SEQ, "-"), _clock(record.get(payloads.TS)), key,
                    "yes" if entry.get(payloads.VALID) else "no", joined(payloads.AVG_P, 1),
                    joined(payloads.IMPORT_WH, 3), joined(payloads.EXPORT_WH, 3)))
        return lines + [""]

    def _discovery(self):
        topics = sorted(self.discovery)
        if not topics:
            return ["Home Assistant discovery: no configs yet"]
        lines = ["Home Assistant discovery: %d retained configs" % len(topics)]
        groups = {}
        for topic in topics:
            head, object_id = topic[:-len("/config")].rsplit("/", 1)
            groups.setdefault(head, []).append(object_id)
        for head in sorted(groups):
            lines.append("  %s/<id>/config, <id> in:" % head)
            line = "   "
            for object_id in groups[head]:
                if len(line) + len(object_id) + 1 > DISCOVERY_WIDTH:
                    lines.append(line)
                    line = "   "
                line += " " + object_id
            lines.append(line)
        return lines

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()
