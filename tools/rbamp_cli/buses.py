"""Opening what the commands talk to: a Linux I2C bus through smbus2, or simulated modules.

A ``Session`` holds the bus, the clock every wait goes through (the system clock on a real bus,
the simulator's real-time or virtual clock with ``--sim``) and, with ``--sim``, the simulated
modules so commands can show the simulator's exact ground truth beside what the driver measured.
"""

import glob

from rbamp_cli.errors import CliError

SIM_BOOT_MS = 250  # protocol.md "Cold boot": a module is stable ~250 ms after power-up
_RT_READ_BYTES = 3 + 56  # address+register, repeated start+address, the 56-byte RT block


class Session:
    def __init__(self, bus, clock, description, freq, sim_modules=(), virtual=False):
        self.bus = bus
        self.clock = clock
        self.description = description
        self.freq = freq
        self.sim_modules = list(sim_modules)
        self.virtual = virtual

    @property
    def is_sim(self):
        return bool(self.sim_modules)

    def sim_module(self, addr):
        for module in self.sim_modules:
            if module.addr == addr:
                return module
        return None

    def close(self):
        close = getattr(self.bus, "close", None)
        if close is not None:
            close()

    def open_device(self, addr):
        """The module at ``addr``, identified and ready (``RbAmp.begin()``)."""
        from rbamp import RbAmp

        dev = RbAmp(self.bus, addr, clock=self.clock)
        dev.begin()
        return dev

    def rt_read_ms(self):
        """Bus time of one 56-byte RT burst at ``freq`` (9 bits a byte, start/stop, repeated start)."""
        return (_RT_READ_BYTES * 9 + 3) * 1000.0 / self.freq


def open_session(args):
    if args.sim:
        from rbamp_cli.sim import build

        return build(args.sim, args.load, args.freq, args.sim_clock)
    return open_linux_bus(args.bus, args.freq)


def _existing_buses():
    found = sorted(glob.glob("/dev/i2c-*"), key=lambda p: (len(p), p))
    return ", ".join(found) if found else "none"


def open_linux_bus(number, freq):
    """``smbus2.SMBus(number)``. The bus speed is the kernel's (device tree / module option);
    ``freq`` only feeds bus-time estimates."""
    try:
        import smbus2
    except ImportError:
        raise CliError("--bus needs the smbus2 package, which is not installed: pip install 'rbamp[smbus]'")
    path = "/dev/i2c-%d" % number
    try:
        bus = smbus2.SMBus(number)
    except FileNotFoundError:
        raise CliError("%s does not exist (I2C buses here: %s); enable I2C (raspi-config on a Raspberry "
                       "Pi, or load i2c-dev) or pick another --bus" % (path, _existing_buses()))
    except PermissionError:
        raise CliError("no permission to open %s: add your user to the i2c group (then log in again) "
                       "or run as root" % path)
    except OSError as exc:
        raise CliError("cannot open %s: %s" % (path, exc.strerror or exc))
    from rbamp.clock import SYSTEM_CLOCK

    return Session(bus, SYSTEM_CLOCK, "%s (speed set by the kernel; estimates assume %d Hz)" % (path, freq), freq)
