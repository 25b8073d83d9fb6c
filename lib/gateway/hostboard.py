"""The host profile: the gateway on a PC under MicroPython's unix port (``make run``, tests).

A simulated UI2 module with a realistic household load runs in real time on a simulated I2C bus
(``tools/rbampsim``, on the path only on a PC), the journal is a file-backed flash image and the
network is the host's. Environment: ``RBAMP_DATA`` (data folder, default ``.run``),
``RBAMP_SIM`` (``UI2@1.3`` style: variant and protocol), ``RBAMP_SIM_SEED``.
"""

import os

from gateway.boards import Board

_TICK_MS = 10


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
        clock = RealClock()
        self.sim_clock = clock
        for i, module_cfg in enumerate(cfg["modules"]):
            self.modules.append(SimModule(variant, protocol, addr=module_cfg["address"], clock=clock,
                                          load=loads.Household(seed=seed + i), seed=seed + i))
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
        """Keep the simulated modules' 200 ms windows (and DRDY pulses) on time in real time."""
        clock = self.clock
        while True:
            for module in self.modules:
                module.sync()
            await clock.asleep_ms(_TICK_MS)
