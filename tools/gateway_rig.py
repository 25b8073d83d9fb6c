"""The whole gateway (``gateway.app.Gateway``) in one process on virtual time: simulated modules
on a simulated bus, the journal on the NOR flash model, no network. The modules and the flash
outlive each gateway, so a test or a benchmark can crash a gateway (cancel it: nothing is
committed on the way out, as after a SIGKILL or a watchdog reset) and boot another one on the
same hardware. Runs under CPython and MicroPython (tests/test_gateway_boot.py, bench_survival).

    rig = Rig("/tmp/gw", [("UI1", 0x04, 0x50, loads.Constant([3000.0]))])
    gateway, log = boot(rig, config([{"address": 0x50}]), 150)   # 150 s, then a crash
    journal(rig).totals
"""

import asyncio

from gateway.app import Gateway
from gateway.boards import Board
from gateway.config import LoadResult, parse_config
from norflash import NorFlash
from rbampsim import SimI2C, SimModule, VirtualClock, loads


class ListLog:
    def __init__(self):
        self.lines = []

    def _add(self, level, fmt, *args):
        self.lines.append(level + ": " + (fmt % args if args else fmt))

    def debug(self, fmt, *args):
        self._add("debug", fmt, *args)

    def info(self, fmt, *args):
        self._add("info", fmt, *args)

    def warning(self, fmt, *args):
        self._add("warning", fmt, *args)

    def error(self, fmt, *args):
        self._add("error", fmt, *args)

    def exception(self, fmt, exc):
        self._add("error", "%s: %r" % (fmt, exc))

    def text(self):
        return "\n".join(self.lines)


class MainsCollapse:
    """A load whose mains collapse at ``at_us`` (voltage and power 0) until ``restore()``."""

    def __init__(self, base, at_us=None):
        self.base = base
        self.at_us = at_us
        self.until_us = None

    def collapse(self, at_us):
        self.at_us = at_us
        self.until_us = None

    def restore(self, at_us):
        self.until_us = at_us

    def _down(self, t_us):
        return (self.at_us is not None and t_us >= self.at_us
                and (self.until_us is None or t_us < self.until_us))

    def fill(self, t_us, out):
        self.base.fill(t_us, out)
        if self._down(t_us):
            out.voltage = 0.0
            for ch in range(len(out.power)):
                out.power[ch] = 0.0

    def segment_end(self, t_us):
        end = self.base.segment_end(t_us)
        for edge in (self.at_us, self.until_us):
            if edge is not None and edge > t_us and (end is None or edge < end):
                end = edge
        return end


class SimBoard(Board):
    """A board profile over the simulated hardware of a ``Rig``."""

    name = "sim"

    def __init__(self, rig):
        Board.__init__(self)
        self.rig = rig
        self.clock = rig.clock
        self.data_dir = rig.data_dir

    def i2c(self, cfg):
        return self.rig.bus

    def drdy_pin(self, cfg):
        return self.rig.sims[0].drdy if cfg.get("drdy_pin") is not None else None

    def journal_device(self):
        return self.rig.flash

    def unique_id(self):
        return "b0a4d0c0ffee"

    def watchdog(self, timeout_ms):
        return None

    def web_address(self, cfg):
        return None  # no network on the rig: the web page is tested on its own (tests/test_web_*)

    def reset(self):
        raise SystemExit(3)


class Rig:
    """Modules (``specs``: (variant, version, address, load)) and a journal that outlive gateways."""

    def __init__(self, data_dir, specs, blocks=16):
        self.clock = VirtualClock()
        self.sims = [SimModule(variant, version, addr=addr, clock=self.clock, load=load, seed=i + 1)
                     for i, (variant, version, addr, load) in enumerate(specs)]
        self.bus = SimI2C(self.sims, clock=self.clock)
        self.flash = NorFlash(block_size=4096, block_count=blocks)
        self.data_dir = data_dir
        _fresh_dir(self.data_dir)
        self.clock.advance_ms(300)

    def sim(self, addr):
        for sim in self.sims:
            if sim.addr == addr:
                return sim
        raise KeyError(addr)

    def truth_mwh(self, addr, ch, since=None):
        sim = self.sim(addr)
        if since is None:
            return sim.truth.import_wh(ch) * 1000
        return sim.truth.import_wh_since(since, ch) * 1000


def _fresh_dir(path):
    import os

    try:
        for name in os.listdir(path):
            os.remove(path + "/" + name)
    except OSError:
        os.mkdir(path)


def config(modules, period_s=60, drdy=True, **extra):
    """A parsed config.json without a broker (no network tasks)."""
    raw = {"mqtt": {"host": "unused.invalid"}, "modules": modules, "period_s": period_s,
           "commit": {"growth_wh": 5, "interval_s": 60}}
    if drdy:
        raw["drdy_pin"] = 4
    for key in extra:
        raw[key] = extra[key]
    cfg = parse_config(raw)
    cfg["mqtt"]["host"] = None
    return LoadResult(cfg, True, None, "config.json", False)


def boot(rig, result, seconds, during=None):
    """Run one gateway for ``seconds`` of virtual time (or while ``during(gateway)`` runs), then
    crash it. Returns the gateway and its log."""
    log = ListLog()
    gateway = Gateway(SimBoard(rig), result, log)

    async def main():
        task = asyncio.create_task(gateway.run())
        for _ in range(4):  # let run() set up and its tasks start sleeping: virtual time moves
            await asyncio.sleep(0)  # only when every task sleeps
        if during is not None:
            await during(gateway)
        else:
            await rig.clock.asleep_ms(int(seconds * 1000))
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass  # the crash we asked for
        await asyncio.sleep(0)

    asyncio.run(main())
    return gateway, log


def journal(rig):
    """The journal's newest record, read by a fresh store (as the next boot would)."""
    from gateway.store import EnergyStore

    return EnergyStore(rig.flash).load()


def constant(*watts):
    return loads.Constant(list(watts))
