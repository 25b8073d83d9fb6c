"""The host profile: the gateway on a PC under MicroPython's unix port (``make run``, tests).

A simulated UI2 module with a realistic household load runs in real time on a simulated I2C bus
(``tools/rbampsim``, on the path only on a PC), the journal is a file-backed flash image and the
network is the host's. Environment: ``RBAMP_DATA`` (data folder, default ``.run``),
``RBAMP_SIM`` (``UI2@1.3`` style: variant and protocol), ``RBAMP_SIM_SEED``,
``RBAMP_SIM_HOUR`` (the simulated time of day the household load starts at, default 7).

Tests drive the simulated hardware from outside the process through two files in the data
folder: commands written to ``sim_control`` (``unplug 0x50``, ``plug 0x50``, ``reboot 0x50``,
one per line; the file is consumed) and the simulators' exact ground truth, rewritten to
``sim_truth.json`` every second.
"""

import json
import os

from gateway.boards import Board

_TICK_MS = 10
_CONTROL_EVERY = 100  # ticks: once a second


class HostBoard(Board):
    name = "host"

    def __init__(self):
        Board.__init__(self)
        self.data_dir = os.getenv("RBAMP_DATA") or ".run"
        try:
            os.mkdir(self.data_dir)
        except OSError:
            pass  # already there
        self.sim_clock = None
        self.modules = []
        self._bus = None
        self.resets = 0

    def _simulate(self, cfg):
        from rbampsim import RealClock, SimI2C, SimModule, loads

        spec = os.getenv("RBAMP_SIM") or "UI2@1.3"
        variant, _, version = spec.partition("@")
        protocol = 0x03 if version == "1.2" else 0x04
        seed = int(os.getenv("RBAMP_SIM_SEED") or "1")
        hour = float(os.getenv("RBAMP_SIM_HOUR") or "7")
        clock = RealClock()
        self.sim_clock = clock
        for i, module_cfg in enumerate(cfg["modules"]):
            self.modules.append(SimModule(variant, protocol, addr=module_cfg["address"], clock=clock,
                                          load=loads.Household(seed=seed + i, start_hour=hour), seed=seed + i))
        self._bus = SimI2C(self.modules, freq=cfg["i2c"]["freq"], clock=clock)
        self.clock = clock

    def i2c(self, cfg):
        if self._bus is None:
            self._simulate(cfg)
        return self._bus

    def drdy_pin(self, cfg):
        if self._bus is None:
            self._simulate(cfg)
        return self.modules[0].drdy if self.modules else None

    def unique_id(self):
        return "host%04x" % (os.getpid() & 0xFFFF) if hasattr(os, "getpid") else "host"

    async def network_up(self, cfg, log):
        return True

    def network_ok(self):
        return True

    def watchdog(self, timeout_ms):
        return None

    def reset(self):
        self.resets += 1
        raise SystemExit(3)

    async def background(self):
        """Keep the simulated modules' 200 ms windows (and DRDY pulses) on time in real time;
        once a second obey ``sim_control`` and publish ``sim_truth.json``."""
        clock = self.clock
        ticks = 0
        while True:
            for module in self.modules:
                module.sync()
            ticks += 1
            if ticks >= _CONTROL_EVERY:
                ticks = 0
                self._obey_control()
                self._write_truth()
            await clock.asleep_ms(_TICK_MS)

    def _module_at(self, text):
        addr = int(text, 0)
        for module in self.modules:
            if module.addr == addr:
                return module
        raise ValueError("no simulated module at %s" % text)

    def _obey_control(self):
        path = self.path("sim_control")
        try:
            with open(path) as f:
                lines = f.read().split("\n")
            os.remove(path)
        except OSError:
            return  # no commands pending
        for line in lines:
            words = line.split()
            if len(words) != 2:
                continue
            module = self._module_at(words[1])
            if words[0] == "unplug":
                module.unplug()
            elif words[0] == "plug":
                module.plug()
            elif words[0] == "reboot":
                module.power_cycle()
            else:
                raise ValueError("unknown sim_control command %r" % line)

    def _write_truth(self):
        out = {}
        for module in self.modules:
            truth = module.truth
            out["0x%02x" % module.addr] = {
                "import_wh": [truth.import_wh(ch) for ch in range(module.channels)],
                "export_wh": [truth.export_wh(ch) for ch in range(module.channels)],
                "present": module.present,
            }
        path = self.path("sim_truth.json")
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps(out))
        os.rename(path + ".tmp", path)
