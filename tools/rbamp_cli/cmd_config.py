"""``config validate PATH`` and ``config create PATH``: a gateway config.json checked by the
gateway's own code (``gateway.config.load_config``), so the CLI and the board never disagree."""

import argparse
import json
import os

from rbamp_cli import values
from rbamp_cli.errors import CliError
from rbamp_cli.output import hex_addr

CREATE_DESCRIPTION = """\
Write a config.json from options (no questions asked: it runs unattended). Only what you give is
written; every other key keeps the gateway's default (docs/config.md). The file is checked with
the gateway's own rules before and after it is written. An existing file is kept unless --force.
Passwords on a command line end up in the shell history: prefer the environment variables
RBAMP_WIFI_PASSWORD and RBAMP_MQTT_PASSWORD.

  rbamp config create config.json --wifi-ssid home --broker 192.168.1.10 \\
      --module 0x50:mains:sct013:3,6 --scl 22 --sda 21 --drdy-pin 4"""


def module_entry(text):
    """``ADDR[:LABEL[:CLASS[:CT,CT,...]]]`` -> a config.json module entry (checked again later)."""
    parts = text.split(":")
    if len(parts) > 4:
        raise argparse.ArgumentTypeError("%r: write ADDR[:LABEL[:CLASS[:CT,CT]]], e.g. 0x50:mains:sct013:3,6"
                                                % text)
    entry = {"address": hex_addr(values.address(parts[0]))}
    if len(parts) > 1 and parts[1]:
        entry["label"] = values.label(parts[1])
    if len(parts) > 2 and parts[2]:
        entry["sensor_class"] = values.sensor_class(parts[2])
    if len(parts) > 3 and parts[3]:
        codes = parts[3].split(",")
        if len(codes) > 3:
            raise argparse.ArgumentTypeError("%r: %d CT models given, but a module has at most 3 channels "
                                             "(one model per channel, ch1 first)" % (text, len(codes)))
        entry["ct_models"] = [values.ct_model(code) for code in codes]
    return entry


def broker(text):
    """``HOST`` or ``HOST:PORT`` (an IPv6 address without a port keeps its colons)."""
    host, sep, port = text.rpartition(":")
    if sep and host and host.count(":") == 0 and port.isdigit():
        return host, int(port)
    return text, None


def add_create_options(parser):
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--broker", type=broker, required=True, metavar="HOST[:PORT]", help="MQTT broker")
    parser.add_argument("--device-id", metavar="ID", help="names the gateway in topics (a-z, 0-9, _ -)")
    parser.add_argument("--wifi-ssid", metavar="SSID")
    parser.add_argument("--wifi-password", metavar="PASSWORD", help="or set RBAMP_WIFI_PASSWORD")
    parser.add_argument("--hostname", metavar="NAME", help="the board's DHCP host name")
    parser.add_argument("--mqtt-user", metavar="USER")
    parser.add_argument("--mqtt-password", metavar="PASSWORD", help="or set RBAMP_MQTT_PASSWORD")
    parser.add_argument("--tls", action="store_true", help="connect to the broker with TLS")
    parser.add_argument("--base-topic", metavar="TOPIC")
    parser.add_argument("--module", dest="modules", type=module_entry, action="append", default=[],
                        metavar="ADDR[:LABEL[:CLASS[:CT,..]]]", help="a module (repeatable; default 0x50)")
    parser.add_argument("--i2c-bus", type=int, metavar="N", help="I2C controller id on the board")
    parser.add_argument("--scl", type=int, metavar="GPIO")
    parser.add_argument("--sda", type=int, metavar="GPIO")
    parser.add_argument("--i2c-freq", type=int, metavar="HZ", help="bus clock (gateway default 50000)")
    parser.add_argument("--drdy-pin", type=int, metavar="GPIO")
    parser.add_argument("--period", type=int, metavar="S", help="seconds between period latches")
    parser.add_argument("--log-level", metavar="LEVEL")


def _section(pairs):
    section = {key: value for key, value in pairs if value is not None}
    return section or None


def _document(args):
    host, port = args.broker
    wifi_password = args.wifi_password or os.environ.get("RBAMP_WIFI_PASSWORD") or None
    mqtt_password = args.mqtt_password or os.environ.get("RBAMP_MQTT_PASSWORD") or None
    document = {}
    if args.device_id is not None:
        document["device_id"] = args.device_id
    wifi = _section((("ssid", args.wifi_ssid), ("password", wifi_password), ("hostname", args.hostname)))
    if wifi:
        document["wifi"] = wifi
    document["mqtt"] = _section((("host", host), ("port", port), ("user", args.mqtt_user),
                                 ("password", mqtt_password), ("tls", True if args.tls else None),
                                 ("base_topic", args.base_topic)))
    i2c = _section((("bus", args.i2c_bus), ("scl", args.scl), ("sda", args.sda), ("freq", args.i2c_freq)))
    if i2c:
        document["i2c"] = i2c
    if args.drdy_pin is not None:
        document["drdy_pin"] = args.drdy_pin
    document["modules"] = args.modules or [{"address": "0x50"}]
    if args.period is not None:
        document["period_s"] = args.period
    if args.log_level is not None:
        document["log_level"] = args.log_level
    return document


def _summary(config):
    mqtt = config["mqtt"]
    modules = ", ".join(hex_addr(m["address"]) + (" %s" % m["label"] if m["label"] else "") for m in config["modules"])
    return "broker %s:%d%s, Wi-Fi %s, module(s) %s, period %d s" % (
        mqtt["host"], mqtt["port"], " (TLS)" if mqtt["tls"] else "",
        repr(config["wifi"]["ssid"]) if config["wifi"]["ssid"] else "not set", modules, config["period_s"])


def _write_new(path, text, force):
    """Owner-only permissions: the file holds passwords. Without ``force`` an existing file is kept."""
    if not force:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CliError("%s already exists: use --force to overwrite it" % path)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def run_create(args, out, session):
    from gateway.config import load_config, parse_config, redact

    document = _document(args)
    parse_config(document, os.path.basename(args.path))  # ConfigError names the key; nothing written
    _write_new(args.path, json.dumps(document, indent=2) + "\n", args.force)
    result = load_config(args.path)
    if not result.ok:  # the same rules read the file back; a failure here is a bug, say so plainly
        raise CliError("the written file does not validate: %s" % result.error)
    if out.as_json:
        out.document(redact(document))
        return 0
    out.line("wrote %s (valid): %s" % (args.path, _summary(result.config)))
    return 0


def run_validate(args, out, session):
    from gateway.config import load_config, redact

    result = load_config(args.path)  # no last-good path: nothing is written
    if out.as_json:
        out.document({"path": args.path, "valid": result.ok, "error": result.error,
                      "config": redact(result.config) if result.ok else None})
        return 0 if result.ok else 1
    if not result.ok:
        raise CliError(result.error)
    out.line("%s is valid: %s" % (args.path, _summary(result.config)))
    for warning in result.warnings:
        out.line("note: %s" % warning)
    return 0
