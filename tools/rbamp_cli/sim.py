"""``--sim``: simulated modules on a simulated smbus2 bus (the path a real ``--bus`` takes).

Addresses: a module given as ``UI2@1.3:0x52`` sits there; the others take the free addresses from
0x50 upwards in the order given. Every module gets its own copy of the ``--load`` profile (a
household's seed is advanced per module so their days differ). Clock: ``real`` runs the modules
in wall-clock time (a person watching ``watch`` or ``period``); ``virtual`` moves time only when
the command waits, so a 60 s period takes no real time at all (tests, demos).
"""

from rbamp_cli.buses import SIM_BOOT_MS, Session
from rbamp_cli.errors import CliError
from rbamp_cli.values import FIRST_SIM_ADDRESS, LoadSpec


def _assign_addresses(specs):
    taken = {}
    for index, spec in enumerate(specs):
        if spec.addr is not None:
            if spec.addr in taken:
                raise CliError("--sim: two modules at 0x%02X" % spec.addr)
            taken[spec.addr] = index
    addresses = []
    candidate = FIRST_SIM_ADDRESS
    for spec in specs:
        if spec.addr is not None:
            addresses.append(spec.addr)
            continue
        while candidate in taken:
            candidate += 1
        if candidate > 0x77:
            raise CliError("--sim: no free address left for %s" % spec.variant)
        taken[candidate] = len(addresses)
        addresses.append(candidate)
    return addresses


def make_load(spec, index):
    from rbampsim import loads

    if spec.kind == "constant":
        return loads.Constant(spec.powers)
    if spec.kind == "noisy":
        return loads.Noisy(loads.Constant(spec.powers), spec.sigma, seed=index + 1)
    return loads.Household(seed=spec.seed + index, start_hour=spec.start_hour)


def describe_load(spec):
    if spec.kind == "constant":
        return "constant %s W" % ", ".join("%g" % p for p in spec.powers)
    if spec.kind == "noisy":
        return "%s W with %g W noise" % (", ".join("%g" % p for p in spec.powers), spec.sigma)
    return "household (seed %d, from %g h; solar export on ch2)" % (spec.seed, spec.start_hour)


def build(spec_lists, load, freq, clock_kind):
    from rbampsim import RealClock, SimModule, SimSMBus, VirtualClock

    specs = [spec for specs in spec_lists for spec in specs]
    load = load if load is not None else LoadSpec("household")
    addresses = _assign_addresses(specs)
    virtual = clock_kind == "virtual"
    clock = VirtualClock() if virtual else RealClock()
    modules = []
    for index, spec in enumerate(specs):
        modules.append(SimModule(variant=spec.variant, version=spec.protocol, addr=addresses[index], clock=clock,
                                 load=make_load(load, index), seed=index + 1))
    bus = SimSMBus(modules, freq=freq, clock=clock)
    clock.sleep_ms(SIM_BOOT_MS)  # the modules just powered up
    names = ", ".join("%s v1.%d at 0x%02X" % (m.variant, m.version - 1, m.addr) for m in modules)
    description = "simulator: %s; load %s; %s clock; %d Hz" % (names, describe_load(load),
                                                              "virtual" if virtual else "real-time", freq)
    return Session(bus, clock, description, freq, modules, virtual)
