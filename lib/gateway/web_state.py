"""The /api/state document of the web page (and of each ``event: state`` of /api/events).

    from gateway.web_state import WebState

    state = WebState(gateway)
    doc = state.build()       # a dict, the shape below; no bus access

The live values are those of ``gateway.state_payload()`` (the MQTT state, read by the publisher's
last ``read_live``), renamed with their units; a value the gateway does not know is null::

    {"device_id", "firmware", "uptime_s", "heap_free", "heap_used",
     "time": {"synced": bool, "local": "2026-12-02 06:30:00" or null, "tz": "CET-1CEST,..."},
     "energy_period": "day" | "since_boot",     # "since_boot" until the first time sync
     "wifi": {"mode": "station" | "setup" | "off", "ssid", "rssi", "ip"},
     "mqtt": {"state": "connected" | "connecting" | "disabled", "broker": "host:port" or null},
     "journal": {"records", "last_commit_s", "erases", "health", "commits", "commit_errors",
                 "erases_since_boot"},
     "config": {"in_use": "config.json" | "last_good" | "safe_mode", "error"},
     "modules": [{"key", "address", "label", "variant", "protocol", "status": "ok" | "absent" | "error",
                  "error", "voltage_v", "frequency_hz",
                  "channels": [{"ch": 1, "current_a", "power_w", "pf", "reactive_var",
                                "import_wh": {"total", "today", "yesterday", "month", "last_month"},
                                "export_wh": {...}}]}],
     "log": [the last log lines, oldest first]}

Journal: ``records`` is the newest record's sequence number (records written since the journal
was formatted); ``erases`` per block is derived from it, since the ring erases each block once
per trip over it (an estimate: a layout change or a skipped slot moves on early; no board keeps
a durable erase count), ``erases_since_boot`` is counted; ``last_commit_s`` is how long ago
metering last committed (null before its first commit since boot).
Day and month values come from ``gateway.calendar.channel_view`` (null without a calendar).
"""

from gateway import payloads

LOG_LINES = 20
_PROTOCOLS = {0x03: "1.2", 0x04: "1.3"}
_CALENDAR_PARTS = ("today", "yesterday", "month", "last_month")


class WebState:
    def __init__(self, gateway):
        self.gateway = gateway
        self._tz_text = None
        self._tz_rule = None

    def build(self):
        gateway = self.gateway
        live = gateway.state_payload()
        result = gateway.config_result
        calendar = gateway.calendar
        day = calendar is not None and not calendar.since_boot
        modules = []
        for module in gateway.metering.modules:
            modules.append(self._module(module, live[payloads.MODULES].get(module.key) or {}, calendar))
        return {
            "device_id": gateway.device_id,
            "firmware": gateway.version,
            "uptime_s": gateway.uptime_ms // 1000,
            "heap_free": _heap_free(),
            "heap_used": live["heap_used"],
            "time": self._time(),
            "energy_period": "day" if day else "since_boot",
            "wifi": self._wifi(live),
            "mqtt": self._mqtt(),
            "journal": self._journal(live[payloads.JOURNAL]),
            "config": {"in_use": _in_use(result), "error": result.error},
            "modules": modules,
            "log": gateway.log.recent(LOG_LINES),
        }

    # ------------------------------------------------------------------ parts
    def _time(self):
        gateway = self.gateway
        tz = gateway.config["tz"]
        sync = gateway.timesync
        synced = sync is not None and bool(sync.synced)
        local = None
        if synced:
            from gateway.localtime import format_local, parse_tz

            if tz != self._tz_text:
                self._tz_rule = parse_tz(tz)
                self._tz_text = tz
            local = format_local(sync.utc_now(), self._tz_rule)
        return {"synced": synced, "local": local, "tz": tz}

    def _wifi(self, live):
        gateway = self.gateway
        board = gateway.board
        setup = gateway.setup
        ssid = gateway.config["wifi"]["ssid"]
        if setup is not None and setup.active:
            mode = "setup"
        elif gateway.config_result.safe_mode or board.radio_failed or (ssid is None and board.name != "host"):
            mode = "off"
        else:
            mode = "station"
        return {"mode": mode, "ssid": ssid, "rssi": live[payloads.WIFI_RSSI], "ip": live[payloads.IP]}

    def _mqtt(self):
        gateway = self.gateway
        mqtt = gateway.config["mqtt"]
        link = gateway.link
        if link is None:
            return {"state": "disabled", "broker": None}
        return {"state": "connected" if link.connected else "connecting",
                "broker": "%s:%s" % (mqtt["host"], mqtt["port"])}

    def _journal(self, health):
        metering = self.gateway.metering
        store = metering.store
        out = {"records": None, "last_commit_s": None, "erases": None, "health": health,
               "commits": metering.commits, "commit_errors": metering.commit_errors,
               "erases_since_boot": None}
        if metering.last_commit_ms is not None:
            clock = metering.clock
            out["last_commit_s"] = clock.ticks_diff(clock.ticks_ms(), metering.last_commit_ms) // 1000
        if store is not None:
            out["records"] = store.seq
            out["erases"] = _erases_per_block(store)
            out["erases_since_boot"] = store.erases
        return out

    def _module(self, module, live, calendar):
        dev = module.dev
        error = live.get(payloads.ERROR) or module.error
        if module.ready and not error:
            status = "ok"
        elif module.status in ("unreachable", "starting"):
            status = "absent"
        else:
            status = "error"
        channels = []
        currents = live.get(payloads.CURRENT)
        powers = live.get(payloads.POWER)
        factors = live.get(payloads.POWER_FACTOR)
        reactive = live.get(payloads.REACTIVE_POWER)
        ledger = module.ledger
        for ch in range(module.channels):
            imports = {"total": None}
            exports = {"total": None}
            if ledger is not None:
                imports["total"] = round(ledger.import_mwh(ch) / 1000, 3)
                exports["total"] = round(ledger.export_mwh(ch) / 1000, 3)
            view = calendar.channel_view(module.key, ch) if calendar is not None else None
            for part in _CALENDAR_PARTS:
                imports[part] = view["import"][part] if view is not None else None
                exports[part] = view["export"][part] if view is not None else None
            channels.append({"ch": ch + 1, "current_a": _at(currents, ch), "power_w": _at(powers, ch),
                             "pf": _at(factors, ch), "reactive_var": _at(reactive, ch),
                             "import_wh": imports, "export_wh": exports})
        begun = module.begun
        return {"key": module.key, "address": module.address, "label": module.label,
                "variant": dev.variant if begun else None,
                "protocol": _PROTOCOLS.get(dev.version) if begun else None,
                "status": status, "error": error,
                "voltage_v": live.get(payloads.VOLTAGE), "frequency_hz": live.get(payloads.FREQUENCY),
                "channels": channels}


def _at(values, index):
    return values[index] if values is not None and index < len(values) else None


def _in_use(result):
    if result.source == "file":
        return "config.json"
    if result.source == "last_good":
        return "last_good"
    return "safe_mode"


def _erases_per_block(store):
    """How often each block was erased to be written again: once per trip of the ring over it,
    ``seq // capacity`` full trips, the blocks the current trip has reached once more (the first
    erase, by format or as shipped, is not counted)."""
    capacity = store.capacity
    per_block = store.slots_per_block
    if not capacity or not per_block:
        return None
    trips, into = divmod(store.seq, capacity)
    reached = into // per_block
    return [trips if block <= reached else max(trips - 1, 0) for block in range(store.block_count)]


def _heap_free():
    import gc

    return gc.mem_free() if hasattr(gc, "mem_free") else None
