"""The simulated rbAmp modules for the emulated Pico W (tools/picow/run.mjs), in a child process.

The runner owns time: every request carries the emulated time in microseconds, and the modules'
``VirtualClock`` is advanced to it before the request is served, so register contents, DRDY
pulses, NACK bursts and reboots happen at the emulated instants the firmware sees. Requests and
replies are one JSON object per line over two FIFOs (the runner reads its replies synchronously,
from inside the I2C controller's hooks).

Requests (``op``):
  connect  {t, addr, read}  address phase; reply {ack, data?}: a read gets the next 256 register
           bytes the module would send (the controller takes as many as it clocks)
  write    {t, addr, data}  the data bytes of a write transaction (hex), delivered at its stop
  tick     {t}              just advance (DRDY alarms, the end of the run)
  truth    {t}              ground truth and fault counters per module
Every reply carries ``drdy``: falling edges since the last reply (``pulses``, us), the wired-AND
level of the modules' DRDY outputs, and ``next``, the next time the modules want to be looked at.

Module spec (``--sim``): ``VARIANT@VERSION:ADDR[:P0,P1,...]``, e.g. ``UI2@1.3:0x50:1000,-300``
(constant load in W per channel). Events (``--event``): ``SECONDS:KIND:ADDR[:ARG[:ARG]]`` with
KIND unplug, plug, reboot, power-cycle, nack (a burst: ARG seconds long, ARG2 fail rate, default
0.67), nack-rate (ARG), ghost (on; ARG 0 turns it off), stuck / unstuck (the whole bus, ADDR
ignored).
"""

import argparse
import json
import os
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "lib")]

from rbampsim import SimI2C, SimModule, SimPin, VirtualClock, loads  # noqa: E402

VERSIONS = {"1.2": 0x03, "1.3": 0x04}
READ_WINDOW = 256


def parse_sim(spec, seed):
    head, _, rest = spec.partition(":")
    variant, _, version = head.partition("@")
    parts = rest.split(":") if rest else []
    addr = int(parts[0], 0) if parts and parts[0] else 0x50
    powers = [float(p) for p in parts[1].split(",")] if len(parts) > 1 and parts[1] else None
    return variant.upper(), VERSIONS[version or "1.3"], addr, powers, seed


def parse_event(spec):
    parts = spec.split(":")
    if len(parts) < 2:
        raise ValueError("event %r: SECONDS:KIND[:ADDR[:ARG...]]" % spec)
    t_us = int(float(parts[0]) * 1000000)
    addr = int(parts[2], 0) if len(parts) > 2 and parts[2] else None
    return t_us, parts[1], addr, parts[3:]


class Bridge:
    def __init__(self, sims, events, freq):
        self.clock = VirtualClock(period_bits=62)
        self.modules = []
        for index, spec in enumerate(sims):
            variant, version, addr, powers, seed = parse_sim(spec, index + 1)
            module = SimModule(variant=variant, version=version, addr=addr, clock=self.clock, seed=seed)
            if powers is not None:
                channels = module.channels
                module.load = loads.Constant((powers + [0.0] * channels)[:channels])
            # A handler makes the module schedule a deadline per RT window, so every DRDY pulse
            # happens (and is reported) at its own instant.
            module.drdy.irq(self._pulse, SimPin.IRQ_FALLING)
            self.modules.append(module)
        self.bus = SimI2C(self.modules, freq=freq, clock=self.clock, advance_clock=False)
        self.events = []
        for spec in events:
            t_us, kind, addr, args = parse_event(spec)
            module = self._module(addr) if kind not in ("stuck", "unstuck") else None
            if kind == "reboot":
                module.reboot_at(t_us)  # the simulator's own schedule: a watchdog reset of the module
            elif kind == "nack":
                duration = int(float(args[0]) * 1000000) if args else 1000000
                rate = float(args[1]) if len(args) > 1 else 0.67
                module.faults.add_emi_burst(t_us, duration, rate)
            else:
                self.events.append((t_us, kind, module, args))
        self.events.sort(key=lambda e: e[0])
        self.pulses = []
        self.current = None  # the module addressed by the transaction in progress
        self.log = []

    def _module(self, addr):
        for module in self.modules:
            if module.addr == addr or addr is None:
                return module
        raise ValueError("no simulated module at 0x%02x" % addr)

    def _pulse(self, pin):
        self.pulses.append(self.clock.now_us())

    def advance(self, t_us):
        clock = self.clock
        while self.events and self.events[0][0] <= t_us:
            at, kind, module, args = self.events.pop(0)
            if at > clock.now_us():
                clock.advance_us(at - clock.now_us())
            self._apply(kind, module, args)
        now = clock.now_us()
        # advance_us(0) still fires listeners due right now: a deadline at exactly this instant
        # (asked for by the runner's DRDY alarm) must not be reported as due again and again
        clock.advance_us(t_us - now if t_us > now else 0)
        for module in self.modules:
            module.sync()

    def _apply(self, kind, module, args):
        self.log.append((self.clock.now_us(), kind, module.addr if module else None))
        if kind == "unplug":
            module.unplug()
        elif kind == "plug":
            module.plug()
        elif kind == "power-cycle":
            module.power_cycle()
        elif kind == "nack-rate":
            module.faults.nack_rate = float(args[0]) if args else 0.1
        elif kind == "ghost":
            module.faults.ghost = not args or args[0] not in ("0", "off")
        elif kind == "stuck":
            self.bus.faults.stuck = True
        elif kind == "unstuck":
            self.bus.faults.stuck = False
        else:
            raise ValueError("unknown event kind %r" % kind)

    def drdy(self):
        clock = self.clock
        level = 1
        nxt = None
        for module in self.modules:
            level &= module.drdy.value()
            deadline = getattr(module, "deadline", None)
            if deadline is not None and module.present:
                at = clock.now_us() + max(0, clock.ticks_diff(deadline, clock.ticks_us()))
                nxt = at if nxt is None or at < nxt else nxt
        if self.events and (nxt is None or self.events[0][0] < nxt):
            nxt = self.events[0][0]
        pulses = self.pulses
        self.pulses = []
        return {"pulses": pulses, "level": level, "next": nxt if nxt is not None else -1}

    # -- requests -----------------------------------------------------------------------------
    def connect(self, addr, read):
        self.current = None
        if addr == 0:
            listening = any(m.answers() and m.active_fleet for m in self.modules)
            self.current = "gc" if listening else None
            return {"ack": 1 if listening else 0}
        try:
            module = self.bus._target(addr)
        except OSError:
            return {"ack": 0}
        self.current = module
        reply = {"ack": 1}
        if read:
            buf = bytearray(READ_WINDOW)
            module.read_into(module.pointer, buf, True)
            reply["data"] = buf.hex()
            self.bus.stats.add(1, 0)
        return reply

    def write(self, addr, data):
        module = self.current
        if module == "gc":
            try:
                self.bus._general_call(data)
            except OSError:
                pass
            return {}
        if module is None or not data:
            return {}
        module.pointer = data[0]
        if len(data) >= 2:
            module.write(data[0], data, 1)
        self.bus.stats.add(len(data), 0)
        return {}

    def truth(self):
        modules = []
        for module in self.modules:
            truth = module.truth
            modules.append({
                "address": module.addr,
                "variant": module.variant,
                "channels": module.channels,
                "import_wh": [truth.import_wh(ch) for ch in range(module.channels)],
                "export_wh": [truth.export_wh(ch) for ch in range(module.channels)],
                "boots": module.boots,
                "present": module.present,
                "injected_nacks": module.faults.injected_nacks,
                "ghost_reads": module.faults.ghost_reads,
                "drdy_pulses": module.drdy.pulses,
            })
        return {"modules": modules, "t_us": self.clock.now_us(), "transactions": self.bus.stats.transactions,
                "nacks": self.bus.stats.nacks, "events": self.log}

    def serve(self, request):
        op = request["op"]
        if "t" in request:
            self.advance(int(request["t"]))
        if op == "connect":
            reply = self.connect(request["addr"], request.get("read"))
        elif op == "write":
            reply = self.write(request["addr"], bytes.fromhex(request.get("data", "")))
        elif op == "tick":
            reply = {}
        elif op == "truth":
            reply = {"truth": self.truth()}
        else:
            raise ValueError("unknown request %r" % op)
        reply["drdy"] = self.drdy()
        return reply


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requests", help="FIFO the runner writes requests to")
    parser.add_argument("replies", help="FIFO this process writes replies to")
    parser.add_argument("--sim", action="append", default=[])
    parser.add_argument("--event", action="append", default=[])
    parser.add_argument("--freq", type=int, default=50000)
    args = parser.parse_args()
    # Same order as the runner opens them, so neither side blocks for ever in open().
    requests = open(args.requests, "r", encoding="ascii")
    replies = open(args.replies, "w", encoding="ascii")
    try:
        bridge = Bridge(args.sim, args.event, args.freq)
    except Exception:
        replies.write(json.dumps({"fatal": traceback.format_exc()}) + "\n")
        replies.flush()
        raise
    for line in requests:
        try:
            reply = bridge.serve(json.loads(line))
        except Exception:
            reply = {"fatal": traceback.format_exc()}
        replies.write(json.dumps(reply, separators=(",", ":")) + "\n")
        replies.flush()
        if "fatal" in reply:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
