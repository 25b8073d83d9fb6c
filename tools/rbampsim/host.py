"""The simulated modules of one data folder: what the simulator server (and, in a frozen build,
the host profile itself) keeps for a gateway on a PC.

``SimHost`` builds the modules from the environment (``RBAMP_SIM`` ``UI2@1.3`` style: variant and
protocol; ``RBAMP_SIM_SEED``; ``RBAMP_SIM_HOUR``, the time of day the household load starts at),
obeys the commands written to ``DATA/sim_control`` and writes the exact ground truth to
``DATA/sim_truth.json``. It runs on CPython and on MicroPython::

    host = SimHost.from_env("/tmp/gw", RealClock(), os.getenv)
    host.ensure([0x50])            # the gateway's modules[].address, in config order
    host.obey_file()               # "unplug 0x50" written before the gateway starts, ...
    host.bus.readfrom_mem(0x50, 0x46, 4)
    host.write_truth()

``sim_control`` holds one command a line; the file is consumed when read:

    unplug 0x50       the module loses power and leaves the bus (ENODEV)
    plug 0x50         power back: a cold boot (answers after ~10 ms, RT data after ~60 ms)
    reboot 0x50       a power cycle now
    mains 0x50 off    the mains collapses: the module stays powered and answers, but measures
                      0 V and 0 W on every channel (also ``mains 0x50 0``)
    mains 0x50 on     the mains is back (also ``mains 0x50 1``)
"""

import json
import os

from rbampsim import loads
from rbampsim import registers as R
from rbampsim.bus import SimI2C
from rbampsim.module import SimModule

CONTROL_FILE = "sim_control"
TRUTH_FILE = "sim_truth.json"
DEFAULT_ADDRESS = 0x50


class MainsSwitch:
    """A load whose mains can collapse: while off, every window reads 0 V and 0 W.

    The module commits its windows lazily, so the switch must be flipped only right after the
    module was synced (``SimHost.apply`` does): the windows before the flip keep the old state."""

    def __init__(self, base):
        self.base = base
        self.on = True

    def fill(self, t_us, out):
        self.base.fill(t_us, out)
        if not self.on:
            out.voltage = 0.0
            for ch in range(len(out.power)):
                out.power[ch] = 0.0

    def segment_end(self, t_us):
        return self.base.segment_end(t_us)


def parse_spec(spec):
    """``UI2@1.3`` -> ("UI2", 0x04); a clear ValueError for anything else."""
    variant, _, version = (spec or "UI2@1.3").partition("@")
    if variant not in R.VARIANTS:
        raise ValueError("RBAMP_SIM=%r: unknown variant %r (UI1, UI2, UI3, I1, I2, I3)" % (spec, variant))
    if version in ("", "1.3"):
        return variant, R.VERSION_V13
    if version == "1.2":
        return variant, R.VERSION_V12
    raise ValueError("RBAMP_SIM=%r: protocol must be 1.2 or 1.3" % (spec,))


def addresses_from_config(path):
    """The ``modules[].address`` of a config.json, in order; None when it cannot be read (the
    gateway then says which modules it wants when it connects)."""
    try:
        with open(path) as f:
            config = json.loads(f.read())
        return [int(module["address"]) for module in config["modules"]]
    except Exception:  # missing, not JSON, wrong shape: the gateway's own view decides
        return None


class SimHost:
    def __init__(self, data_dir, clock, spec="UI2@1.3", seed=1, hour=7.0, freq=50000):
        self.variant, self.protocol = parse_spec(spec)
        self.data_dir = data_dir
        self.clock = clock
        self.seed = seed
        self.hour = hour
        self.modules = []
        self.switches = []  # the MainsSwitch of each module, same order
        self.bus = SimI2C([], freq=freq, clock=clock)

    @classmethod
    def from_env(cls, data_dir, clock, getenv, freq=50000):
        try:
            seed = int(getenv("RBAMP_SIM_SEED") or "1")
            hour = float(getenv("RBAMP_SIM_HOUR") or "7")
        except ValueError as exc:
            raise ValueError("RBAMP_SIM_SEED must be an integer and RBAMP_SIM_HOUR a number: %s" % exc)
        return cls(data_dir, clock, getenv("RBAMP_SIM") or "UI2@1.3", seed, hour, freq)

    def path(self, name):
        return self.data_dir + "/" + name

    def module_at(self, addr):
        for module in self.modules:
            if module.addr == addr:
                return module
        return None

    def ensure(self, addresses):
        """A module at every address not simulated yet; the n-th module created gets seed+n."""
        for addr in addresses:
            if self._created_at(addr):
                continue
            i = len(self.modules)
            switch = MainsSwitch(loads.Household(seed=self.seed + i, start_hour=self.hour))
            module = SimModule(self.variant, self.protocol, addr=addr, clock=self.clock, load=switch,
                               seed=self.seed + i)
            module.created_addr = addr
            self.modules.append(module)
            self.switches.append(switch)
            self.bus.add(module)

    def _created_at(self, addr):
        # A module that moved to another address (address change) still counts as the one created
        # for its first address: a gateway that connects again must not get a second one there.
        for module in self.modules:
            if module.created_addr == addr or module.addr == addr:
                return True
        return False

    def sync(self):
        for module in self.modules:
            module.sync()

    # ------------------------------------------------------------------ commands
    def apply(self, line):
        """One command (see the module docstring); ValueError says what is wrong with it."""
        words = line.split()
        if not words or words[0].startswith("#"):
            return
        verb = words[0]
        arity = 3 if verb == "mains" else 2
        if verb not in ("unplug", "plug", "reboot", "mains") or len(words) != arity:
            raise ValueError("sim_control: %r is not a command (unplug ADDR, plug ADDR, reboot ADDR, "
                             "mains ADDR on|off)" % line)
        try:
            addr = int(words[1], 0)
        except ValueError:
            raise ValueError("sim_control: %r: %r is not an address (e.g. 0x50)" % (line, words[1]))
        module = self.module_at(addr)
        if module is None:
            raise ValueError("sim_control: %r: no simulated module at 0x%02x (simulated: %s)"
                             % (line, addr, ", ".join("0x%02x" % m.addr for m in self.modules) or "none"))
        if verb == "unplug":
            module.unplug()
        elif verb == "plug":
            module.plug()
        elif verb == "reboot":
            module.power_cycle()
        else:
            state = words[2].lower()
            if state not in ("on", "off", "1", "0"):
                raise ValueError("sim_control: %r: mains takes on or off" % line)
            module.sync()  # windows until now keep the old mains state
            self.switches[self.modules.index(module)].on = state in ("on", "1")

    def obey_file(self):
        """Apply and consume ``sim_control``. Returns the error messages of bad lines (the good
        ones are applied all the same): a typo in a test must not stop the simulated hardware."""
        path = self.path(CONTROL_FILE)
        try:
            with open(path) as f:
                text = f.read()
            os.remove(path)
        except OSError:
            return []  # no commands pending
        errors = []
        for line in text.split("\n"):
            try:
                self.apply(line)
            except ValueError as exc:
                errors.append(str(exc))
        return errors

    # ------------------------------------------------------------------ ground truth
    def truth(self):
        """Per module (``"0x50"``): exact import/export per channel (Wh as floats, and the exact
        integer micro-watt-hours), whether it is plugged in and has mains, how often it booted,
        its uptime and the windows accumulated since its last period latch."""
        out = {}
        for i, module in enumerate(self.modules):
            truth = module.truth  # commits every window completed by now
            channels = range(module.channels)
            uptime = module.read_reg(R.UPTIME_S, 4)
            out["0x%02x" % module.addr] = {
                "import_wh": [truth.import_wh(ch) for ch in channels],
                "export_wh": [truth.export_wh(ch) for ch in channels],
                "import_uwh": [truth.import_uwh(ch) for ch in channels],
                "export_uwh": [truth.export_uwh(ch) for ch in channels],
                "present": module.present,
                "mains": self.switches[i].on,
                "boots": module.boots,
                "uptime_s": uptime[0] | (uptime[1] << 8) | (uptime[2] << 16) | (uptime[3] << 24),
                "period_windows": module._acc_count,
            }
        return out

    def write_truth(self):
        path = self.path(TRUTH_FILE)
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps(self.truth()))
        os.rename(path + ".tmp", path)
