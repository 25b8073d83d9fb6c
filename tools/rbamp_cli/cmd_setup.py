"""Commands that change a module's settings: ``provision`` and ``set-address``.

Every input is checked against the module before the first write, so a mistake (a channel the
variant lacks, CT models on a class that has none) leaves the module untouched.
"""

from rbamp_cli.cmd_module import SENSOR_CLASS_TEXT, ct_text
from rbamp_cli.errors import CliError, UsageError
from rbamp_cli.output import hex_addr

SCT013 = 1


def _settings(dev):
    return {"sensor_class": dev.read_sensor_class(),
            "ct_models": [dev.read_ct_model_ch(ch) for ch in range(dev.channels)],
            "label": dev.read_label()}


def channel_range(dev):
    return "ch1" if dev.channels == 1 else "ch1..ch%d" % dev.channels


def _wanted_ct(dev, bindings):
    """{channel index: code} from ``--ct`` values (numbered from 1); a bare MODEL applies to every
    channel."""
    wanted = {}
    for channel, code in bindings:
        targets = range(dev.channels) if channel is None else [channel - 1]
        for ch in targets:
            if ch >= dev.channels:
                raise CliError("--ct %d=...: this %s has %s; nothing was written" % (
                    ch + 1, dev.variant, channel_range(dev)))
            if wanted.get(ch, code) != code:
                raise UsageError("--ct gives ch%d two different models" % (ch + 1))
            wanted[ch] = code
    return wanted


def _describe(settings):
    cts = ", ".join("ch%d %s" % (ch + 1, ct_text(code)) for ch, code in enumerate(settings["ct_models"]))
    return "class %d (%s); CT %s; label %r" % (settings["sensor_class"],
                                              SENSOR_CLASS_TEXT.get(settings["sensor_class"], "?"), cts,
                                              settings["label"])


def run_provision(args, out, session):
    if args.sensor_class is None and not args.ct and args.label is None:
        raise UsageError("nothing to provision: give --class, --ct and/or --label")
    dev = session.open_device(args.addr)
    before = _settings(dev)
    wanted_ct = _wanted_ct(dev, args.ct)
    target_class = args.sensor_class if args.sensor_class is not None else before["sensor_class"]
    if wanted_ct and target_class != SCT013:
        raise CliError("CT models apply to sensor class 1 (SCT-013); the module's class %s %d (%s): add "
                       "--class sct013; nothing was written" % (
                           "would be" if args.sensor_class is not None else "is", target_class,
                           SENSOR_CLASS_TEXT.get(target_class, "?")))

    changes = []
    if args.sensor_class is not None and dev.set_sensor_class(args.sensor_class):
        changes.append("sensor class %d -> %d" % (before["sensor_class"], args.sensor_class))
    for ch in sorted(wanted_ct):
        old = dev.read_ct_model_ch(ch)  # a class change clears the bindings: compare with now
        if dev.set_ct_model_ch(ch, wanted_ct[ch]):
            changes.append("CT ch%d %s -> %s" % (ch + 1, ct_text(old), ct_text(wanted_ct[ch])))
    if args.label is not None and dev.set_label(args.label):
        changes.append("label %r -> %r" % (before["label"], args.label))
    saved = dev.save_user_config()

    after = _settings(dev)
    mismatches = []
    if args.sensor_class is not None and after["sensor_class"] != args.sensor_class:
        mismatches.append("sensor class reads %d" % after["sensor_class"])
    for ch in sorted(wanted_ct):
        if after["ct_models"][ch] != wanted_ct[ch]:
            mismatches.append("CT ch%d reads %s" % (ch + 1, ct_text(after["ct_models"][ch])))
    if args.label is not None and after["label"] != args.label:
        mismatches.append("label reads %r" % after["label"])
    if mismatches:
        raise CliError("verify failed at %s: %s" % (hex_addr(dev.address), "; ".join(mismatches)))

    if out.as_json:
        out.document({"address": hex_addr(dev.address), "changed": changes, "saved": saved,
                      "verified": True, "before": before, "after": after})
        return 0
    if changes:
        out.line("%s: %s" % (hex_addr(dev.address), "; ".join(changes)))
    else:
        out.line("%s: already provisioned, nothing written" % hex_addr(dev.address))
    if saved:
        out.line("saved to the module's flash")
    out.line("verified: %s" % _describe(after))
    return 0


def run_set_address(args, out, session):
    from rbamp.transport import transport_for

    dev = session.open_device(args.old)
    changed = dev.change_address(args.new)
    answering = transport_for(session.bus).scan()
    if args.new not in answering or (changed and args.old in answering):
        raise CliError("after the change the bus shows %s" % (", ".join(hex_addr(a) for a in answering) or "nothing"))
    if out.as_json:
        out.document({"old": hex_addr(args.old), "new": hex_addr(args.new), "changed": changed,
                      "bus": [hex_addr(a) for a in answering]})
        return 0
    if changed:
        out.line("module %s %s moved to %s; bus now: %s" % (dev.variant, hex_addr(args.old), hex_addr(args.new),
                                                          ", ".join(hex_addr(a) for a in answering)))
    else:
        out.line("module %s is already at %s" % (dev.variant, hex_addr(args.new)))
    return 0
