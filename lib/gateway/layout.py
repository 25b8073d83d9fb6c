"""The energy journal's layout: which module's counters are where, decided from durable facts only.

A module that does not answer at boot (unpowered, a loose wire, late after an outage, another
device at its address) must never change what the journal holds. So a module's channel count
comes from, in this order:

1. ``modules[i].channels`` in config.json, when given (the user's word: it may declare a
   replaced module);
2. the journal's own layout (format version 2 records name each module's address and channels);
3. the module itself, the first time it answers (then it becomes durable through 2).

A module known by none of these is *pending*: it is metered from the moment it answers, and the
journal then gains its counters (nothing else changes). A layout change that drops totals
(config.json removed a module, or declared another channel count at an address) happens only
because the config said so, and the old journal is first kept aside as a file that
``rbamp journal`` reads. A version 1 journal (no layout) is mapped onto the config's modules in
order when the channel counts add up; otherwise it is left untouched (*deferred*) until the
modules that are missing now have answered.

Per module, the journal also keeps 10 bytes of resume data (see ``rbamp.resume``): the module's
RT window length in 10 µs units (u16), its uptime at the last counted latch (u32; ``NO_POINT``:
none, the next begin primes) and the fingerprint of that latch's snapshot (u32).

    known = durable_channels(config["modules"], state)           # before the modules are begun
    plan = plan_layout(config["modules"], state, channels)       # channels: durable + answered
    store.set_layout(plan.layout)
"""

import struct

from gateway.ledger import COUNTERS_PER_CHANNEL, span

RESUME_BYTES = 10
NO_POINT = 0xFFFFFFFF


def pack_resume(buf, index, window_us, uptime_s, fingerprint):
    """Write module ``index``'s resume data into ``buf`` (``RESUME_BYTES`` per module)."""
    units = window_us // 10
    if not 0 < units < 0x10000:
        units = 0
    struct.pack_into("<HHHHH", buf, index * RESUME_BYTES, units, uptime_s & 0xFFFF,
                     (uptime_s >> 16) & 0xFFFF, fingerprint & 0xFFFF, (fingerprint >> 16) & 0xFFFF)


def clear_resume(buf, index):
    """Module ``index`` has no resume point: its next begin primes a new sequence."""
    off = index * RESUME_BYTES
    for i in range(off, off + RESUME_BYTES):
        buf[i] = 0xFF


def unpack_resume(buf, index):
    """``(window_us, uptime_s, fingerprint)`` or None (no point kept for this module)."""
    if buf is None or len(buf) < (index + 1) * RESUME_BYTES:
        return None
    units, up_lo, up_hi, fp_lo, fp_hi = struct.unpack_from("<HHHHH", buf, index * RESUME_BYTES)
    uptime = up_lo | (up_hi << 16)
    if uptime == NO_POINT or units in (0, 0xFFFF):
        return None
    return (units * 10, uptime, fp_lo | (fp_hi << 16))


def _journal_entries(state):
    """address -> (index in the record, channels, counter offset) of a version 2 journal state."""
    entries = {}
    if state is None or state.layout is None:
        return entries
    offset = 0
    for index, (address, channels) in enumerate(state.layout):
        entries[address] = (index, channels, offset)
        offset += span(channels)
    return entries


def durable_channels(config_modules, state):
    """{address: channels} for the config's modules whose count is known without asking them,
    and {address: resume point} for those the journal kept one for with the same count."""
    entries = _journal_entries(state)
    channels = {}
    resume = {}
    for module in config_modules:
        address = module["address"]
        entry = entries.get(address)
        declared = module["channels"]
        if declared:
            channels[address] = declared
        elif entry is not None:
            channels[address] = entry[1]
        if entry is not None and channels.get(address) == entry[1]:
            point = unpack_resume(state.resume, entry[0])
            if point is not None:
                resume[address] = point
    return channels, resume


def journal_totals(state, address, channels):
    """The journal's counters of the module at ``address`` if it holds ``channels`` there."""
    entry = _journal_entries(state).get(address)
    if entry is None or entry[1] != channels:
        return None
    return state.totals[entry[2]:entry[2] + span(channels)]


def keep_journal_modules(config_modules, state):
    """The modules to run with when the config is not the user's own valid config.json (a last
    good copy, or defaults in safe mode): such a config must not change the journal, so the
    journal's modules are added to it, with the journal's channel counts."""
    if state is None or state.layout is None:
        return list(config_modules)
    counts = {}
    for address, channels in state.layout:
        counts[address] = channels
    out = []
    for module in config_modules:
        module = dict(module)
        if module["address"] in counts:
            module["channels"] = counts.pop(module["address"])
        out.append(module)
    for address, channels in state.layout:
        if address in counts:
            out.append({"address": address, "channels": channels, "label": None, "sensor_class": None,
                        "ct_models": None})
    return out


class LayoutPlan:
    def __init__(self):
        self.layout = []      # [(address, channels)] of the modules known now, config order
        self.totals = {}      # address -> [import, export, ...] counters carried over
        self.resume = {}      # address -> resume point carried over (None: none)
        self.pending = []     # addresses whose channel count is not known yet
        self.dropped = []     # why totals leave the live journal (then it is kept aside first)
        self.deferred = None  # why the journal must stay untouched for now, or None
        self.changed = False  # the journal's newest record has another layout

    def counters(self):
        out = []
        for address, channels in self.layout:
            out.extend(self.totals.get(address) or [0] * span(channels))
        return out


def _key(address):
    return "0x%02x" % address


def plan_layout(config_modules, state, channels):
    """The live layout from the config, the journal state (None: empty) and ``channels``
    ({address: count} of every module known now: durable or answered at this boot)."""
    plan = LayoutPlan()
    for module in config_modules:
        address = module["address"]
        if address in channels:
            plan.layout.append((address, channels[address]))
        else:
            plan.pending.append(address)
    if state is None:
        plan.changed = bool(plan.layout)
        return plan
    if state.layout is None:
        _plan_from_v1(plan, state)
        return plan
    entries = _journal_entries(state)
    wanted = {}
    for address, count in plan.layout:
        wanted[address] = count
    for address, (index, count, offset) in entries.items():
        if address not in wanted:
            if address in plan.pending:
                # config still lists it, it just has not answered: its totals must stay
                plan.layout.append((address, count))
                plan.pending.remove(address)
                wanted[address] = count
            else:
                plan.dropped.append("module %s is no longer in config.json" % _key(address))
                continue
        if wanted[address] != count:
            plan.dropped.append("config.json declares %d channel(s) for module %s, the journal "
                                "holds %d" % (wanted[address], _key(address), count))
            continue
        plan.totals[address] = state.totals[offset:offset + span(count)]
        plan.resume[address] = unpack_resume(state.resume, index)
    plan.layout = _config_order(config_modules, plan.layout)
    plan.changed = plan.layout != [(a, c) for a, c in state.layout]
    return plan


def _config_order(config_modules, layout):
    counts = {}
    for address, count in layout:
        counts[address] = count
    return [(m["address"], counts[m["address"]]) for m in config_modules if m["address"] in counts]


def _plan_from_v1(plan, state):
    """A version 1 journal: its counters belonged to the modules that answered when it was
    written, in config order; only a count that adds up tells which those were."""
    known = 0
    for entry in plan.layout:
        known += entry[1]
    if span(known) == len(state.totals):
        offset = 0
        for address, count in plan.layout:
            plan.totals[address] = state.totals[offset:offset + span(count)]
            offset += span(count)
        plan.changed = True
        return
    if plan.pending:
        plan.deferred = ("the journal (format 1, %d channel(s)) cannot be assigned to the modules "
                         "yet: %s not answered; it is left as it is until they have"
                         % (len(state.totals) // COUNTERS_PER_CHANNEL, ", ".join(_key(a) for a in plan.pending)))
        return
    plan.dropped.append("the journal (format 1) holds %d channel(s), config.json's modules have %d"
                        % (len(state.totals) // COUNTERS_PER_CHANNEL, known))
    plan.changed = True
