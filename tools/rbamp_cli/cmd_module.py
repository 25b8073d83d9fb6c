"""Commands about who is on the bus and what one module says: ``scan``, ``info``, ``read``."""

from rbamp_cli.errors import CliError
from rbamp_cli.output import hex_addr, number, numbers, rounded
from rbamp_cli.values import CT_MODEL_NAMES

SENSOR_CLASS_TEXT = {0: "unset", 1: "SCT-013", 2: "wired CT", 3: "built-in CT"}
ERROR_TEXT = {0x00: "none", 0xF9: "clone detected", 0xFA: "LUT bad", 0xFB: "flash parameters blank",
              0xFC: "not ready", 0xFD: "sensor overflow", 0xFE: "bad parameter", 0xFF: "unhandled"}
# protocol.md: RESET_CAUSE bit flags PIN/POR/SW/IWDG/WWDG/LPWR
RESET_CAUSE_BITS = ((0x01, "pin"), (0x02, "power-on"), (0x04, "software"), (0x08, "watchdog"),
                    (0x10, "window watchdog"), (0x20, "low power"))


def reset_cause_text(cause):
    names = [name for bit, name in RESET_CAUSE_BITS if cause & bit]
    return " + ".join(names) if names else "unknown (0x%02X)" % cause


def protocol_text(dev):
    return "1.%d" % (dev.version - 1)


def ct_text(code):
    return CT_MODEL_NAMES.get(code, "none" if code == 0 else "code %d" % code)


def identity(dev):
    """What ``scan`` shows per module (a handful of reads)."""
    sensor_class = dev.read_sensor_class()
    return {
        "address": hex_addr(dev.address),
        "variant": dev.variant,
        "protocol": protocol_text(dev),
        "channels": dev.channels,
        "has_voltage": dev.has_voltage,
        "label": dev.read_label(),
        "uid": dev.read_uid().hex(),
        "sensor_class": sensor_class,
        "provisioned": not dev.flash_blank and sensor_class != 0,
    }


def run_scan(args, out, session):
    from rbamp import RbAmpFleet

    fleet = RbAmpFleet(session.bus, clock=session.clock)
    modules = fleet.scan()
    ignored = [{"address": hex_addr(addr), "reason": getattr(fleet.errors[addr], "strerror", None) or str(fleet.errors[addr])}
               for addr in sorted(fleet.errors)]
    if not modules:
        seen = ", ".join(item["address"] for item in ignored)
        raise CliError("no rbAmp module found on %s%s" % (
            session.description, " (other devices: %s)" % seen if seen else ""))
    found = [identity(dev) for dev in modules]
    if out.as_json:
        out.document({"bus": session.description, "modules": found, "ignored": ignored})
        return 0
    out.line("bus: %s" % session.description)
    rows = [[m["address"], m["variant"], "v" + m["protocol"], str(m["channels"]), m["label"] or "-",
             SENSOR_CLASS_TEXT.get(m["sensor_class"], str(m["sensor_class"])),
             "yes" if m["provisioned"] else "no", m["uid"]] for m in found]
    out.table(["address", "variant", "protocol", "ch", "label", "class", "provisioned", "uid"], rows)
    for item in ignored:
        out.line("ignored %s: %s" % (item["address"], item["reason"]))
    out.line("%d rbAmp module(s)" % len(found))
    return 0


def run_info(args, out, session):
    dev = session.open_device(args.addr)
    sensor_class = dev.read_sensor_class()
    ct_models = [dev.read_ct_model_ch(ch) for ch in range(dev.channels)]
    thresholds = dev.read_thresholds()
    last_error = dev.read_last_error()
    reset_cause = dev.read_reset_cause()
    info = {
        "address": hex_addr(dev.address),
        "variant": dev.variant,
        "protocol": protocol_text(dev),
        "channels": dev.channels,
        "has_voltage": dev.has_voltage,
        "tier": dev.tier,
        "capability": "0x%04X" % dev.capability,
        "uid": dev.read_uid().hex(),
        "label": dev.read_label(),
        "sensor_class": sensor_class,
        "sensor_class_name": SENSOR_CLASS_TEXT.get(sensor_class, "unknown"),
        "ct_models": ct_models,
        "ct_model_names": [ct_text(code) for code in ct_models],
        "flash_blank": dev.flash_blank,
        "provisioned": not dev.flash_blank and sensor_class != 0,
        "uptime_s": dev.read_uptime_s(),
        "reset_cause": reset_cause,
        "reset_cause_name": reset_cause_text(reset_cause),
        "last_error": last_error,
        "last_error_name": ERROR_TEXT.get(last_error, "unknown"),
        "event_flags": "0x%02X" % dev.read_event_flags(),
        "current_threshold_a": thresholds[0],
        "power_threshold_w": thresholds[1],
    }
    if out.as_json:
        out.document(info)
        return 0
    out.line("rbAmp %s at %s, protocol v%s, %d channel(s)%s, tier %d, capability %s" % (
        info["variant"], info["address"], info["protocol"], info["channels"],
        " with voltage" if info["has_voltage"] else ", current only", info["tier"], info["capability"]))
    out.line("uid          %s" % info["uid"])
    out.line("label        %s" % (repr(info["label"]) if info["label"] else "(none)"))
    out.line("sensor class %d (%s)" % (sensor_class, info["sensor_class_name"]))
    for ch, code in enumerate(ct_models):
        out.line("CT ch%d       %s" % (ch + 1, ct_text(code)))
    out.line("provisioned  %s%s" % ("yes" if info["provisioned"] else "no",
                                    " (module flash is blank)" if dev.flash_blank else ""))
    out.line("uptime       %d s (last reset: %s)" % (info["uptime_s"], info["reset_cause_name"]))
    out.line("last error   0x%02X (%s), event flags %s" % (last_error, info["last_error_name"], info["event_flags"]))
    out.line("thresholds   current %s, power %s" % (
        "off" if thresholds[0] is None else "%g A" % thresholds[0],
        "off" if thresholds[1] is None else "%g W" % thresholds[1]))
    return 0


def run_read(args, out, session):
    dev = session.open_device(args.addr)
    snap = dev.read_all()
    frequency = dev.read_frequency()
    reactive = [dev.read_reactive_power(ch) for ch in range(dev.channels)]
    channels = []
    for ch in range(dev.channels):
        channels.append({
            "channel": ch + 1,  # ch1.. as Home Assistant names them
            "current": rounded(snap.current[ch]),
            "current_peak": rounded(snap.current_peak[ch]),
            "power": rounded(snap.power[ch], 2),
            "power_factor": rounded(snap.power_factor[ch]),
            "reactive_power": rounded(reactive[ch], 2),
        })
    result = {
        "address": hex_addr(dev.address),
        "variant": dev.variant,
        "protocol": protocol_text(dev),
        "voltage": rounded(snap.voltage, 2) if dev.has_voltage else None,
        "voltage_peak": rounded(snap.voltage_peak, 2) if dev.has_voltage else None,
        "frequency": rounded(frequency, 3),
        "channels": channels,
        "bus_time_ms": rounded(session.rt_read_ms(), 2),
    }
    if out.as_json:
        out.document(result)
        return 0
    out.line("rbAmp %s at %s (protocol v%s)" % (dev.variant, result["address"], result["protocol"]))
    if dev.has_voltage:
        out.line("voltage %.1f V (peak %.1f V), frequency %.2f Hz" % (snap.voltage, snap.voltage_peak, frequency))
    else:
        out.line("current-only module: no voltage, power reads 0; frequency %.2f Hz" % frequency)
    rows = [[str(c["channel"]), "%.3f" % c["current"], "%.3f" % c["current_peak"], number("%.1f", c["power"]),
             "%.3f" % c["power_factor"], number("%.1f", c["reactive_power"])] for c in channels]
    out.table(["ch", "current A", "peak A", "power W", "PF", "reactive var"], rows)
    out.line("total power %s W; the RT block is one %.1f ms burst at %d Hz" % (
        numbers([snap.total_power()]), result["bus_time_ms"], session.freq))
    return 0
