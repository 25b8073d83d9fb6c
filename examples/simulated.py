"""What the examples run on with ``--sim``: one simulated module instead of hardware.

The examples import this only when asked for the simulator, from a checkout of the repository
(it finds the driver in ``lib/`` and the simulator in ``tools/`` beside this folder) or where
``pip install`` put both. Runs on CPython and MicroPython's unix port alike.

    bus, module = simulated.bus_of("smbus", ["--sim", "UI2@1.2", "--sim-clock", "virtual"])
"""

import sys

USAGE = "--sim [VARIANT[@1.2|@1.3]] [--sim-clock real|virtual]"
_VERSIONS = {"1.2": 0x03, "1.3": 0x04}


def add_checkout_paths():
    """``lib`` and ``tools`` of the checkout this file is in, when the packages are not installed."""
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    root = here + "/.."
    for folder in (root + "/lib", root + "/tools"):
        if folder not in sys.path:
            sys.path.append(folder)


def options(argv):
    """(variant, protocol byte, virtual clock?) from ``--sim [SPEC]`` and ``--sim-clock``, or None
    when ``--sim`` is not there. Raises ValueError with a line for the user."""
    if "--sim" not in argv:
        return None
    at = argv.index("--sim")
    spec = argv[at + 1] if at + 1 < len(argv) and not argv[at + 1].startswith("--") else "UI2"
    variant, _, version = spec.upper().partition("@")
    if variant not in ("UI1", "UI2", "UI3", "I1", "I2", "I3"):
        raise ValueError("unknown variant %r: UI1, UI2, UI3, I1, I2 or I3 (%s)" % (variant, USAGE))
    if (version or "1.3") not in _VERSIONS:
        raise ValueError("unknown protocol version %r: 1.2 or 1.3 (%s)" % (version, USAGE))
    clock = "real"
    if "--sim-clock" in argv:
        at = argv.index("--sim-clock")
        clock = argv[at + 1] if at + 1 < len(argv) else ""
        if clock not in ("real", "virtual"):
            raise ValueError("--sim-clock is real or virtual (%s)" % USAGE)
    return variant, _VERSIONS[version or "1.3"], clock == "virtual"


def bus_of(kind, argv):
    """A simulated bus (``kind`` "smbus": an smbus2.SMBus look-alike, "i2c": a machine.I2C one)
    with one module at 0x50 measuring a household (solar export on ch2), and the module."""
    variant, version, virtual = options(argv)
    add_checkout_paths()
    from rbampsim import RealClock, SimI2C, SimModule, SimSMBus, VirtualClock, loads

    clock = VirtualClock() if virtual else RealClock()
    module = SimModule(variant=variant, version=version, addr=0x50, clock=clock,
                       load=loads.Household(start_hour=11.0))
    bus = (SimSMBus if kind == "smbus" else SimI2C)([module], freq=50000, clock=clock)
    clock.sleep_ms(300)  # the module just powered up (stable after about 250 ms)
    return bus, module
