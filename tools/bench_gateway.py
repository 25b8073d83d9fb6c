"""Gateway benchmark: the real gateway (host profile) under a MicroPython interpreter against a real
mosquitto and a paho-mqtt subscriber, as a board runs it (our code frozen into an mpy32 build).

It reports boot-to-first-publish time, the steady-state heap after 1000 DRDY sample cycles (~200 s
of real time: the module's 5 Hz) and the publish latency of state messages and period records.
The gateway runs under tools/bench_gateway_probe.py, which is main.py with timestamped log lines at
the LATCH command, at the hand-over of a period record to the MQTT link and when a state payload is
built; the subscriber timestamps each arrival with the same wall clock.

    .venv/bin/python tools/bench_gateway.py [--interpreter PATH] [--sources] [--samples N] [--write]
"""

import argparse
import bisect
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "tests"), os.path.join(ROOT, "lib")]

from support_e2e import Gateway, Watcher, base_config, wait_until  # noqa: E402
from xrt import broker as xbroker  # noqa: E402

BASE = "rbamp/e2e-gw/"
PERIOD_S = 5
PROBE = "tools/bench_gateway_probe.py"
PLOT_NAME = "gateway_latency"
STEADY_SAMPLES = 1000


def parse_probe(log_text):
    """The probe's lines in a gateway log: {"base": bytes, "hooks": bytes, "latch": [ns],
    "period": {seq: ns}, "state": {samples: [ns, ...]}}."""
    probe = {"base": None, "hooks": None, "latch": [], "period": {}, "state": {}}
    for line in log_text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0] != "bench-probe":
            continue
        kind = fields[1]
        values = [int(x) for x in fields[2:]]
        if kind in ("base", "hooks"):
            probe[kind] = values[0]
        elif kind == "latch":
            probe["latch"].append(values[0])
        elif kind == "period":
            probe["period"][values[1]] = values[0]
        elif kind == "state":
            probe["state"].setdefault(values[1], []).append(values[0])
    return probe


def latencies(probe, states, periods):
    """Publish latencies in ms from the probe's stamps and the arrivals (wall ns).

    states: [(samples, arrival_ns)]; periods: [(seq, arrival_ns)]. A state is matched by its
    sample count (counts seen in more than one payload or message are ambiguous and left out); a
    period record by its seq, and its latch is the last LATCH before the record's hand-over."""
    arrived_per_count = {}
    for samples, arrival in states:
        arrived_per_count.setdefault(samples, []).append(arrival)
    state_ms = []
    for samples, arrivals in arrived_per_count.items():
        built = probe["state"].get(samples, [])
        if len(arrivals) == 1 and len(built) == 1:
            state_ms.append((arrivals[0] - built[0]) / 1e6)
    period_ms, handover_ms = [], []
    latches = sorted(probe["latch"])
    for seq, arrival in periods:
        handed = probe["period"].get(seq)
        if handed is None:
            continue
        before = [t for t in latches if t <= handed]
        if not before:
            continue
        period_ms.append((arrival - before[-1]) / 1e6)
        handover_ms.append((handed - before[-1]) / 1e6)
    return {"state": state_ms, "period": period_ms, "handover": handover_ms}


def _bare_heap(interpreter, env):
    """gc.mem_alloc() of the interpreter with nothing loaded (to size the probe's own share)."""
    out = subprocess.run([interpreter, "-c", "import gc; gc.collect(); print(gc.mem_alloc())"],
                         capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.split()[-1])


class WallClock(threading.Thread):
    """The PC's wall clock against its monotonic clock, sampled every 20 ms while the gateway runs.

    The probe stamps with the wall clock (the gateway's ``time.time_ns()``) and the subscriber
    with the monotonic one; one offset taken at the start would turn a wall clock that is slewed
    or stepped during the run (seen here: 8 s in a minute) into latency. ``to_wall`` converts a
    monotonic stamp with the offset sampled just before it."""

    def __init__(self):
        threading.Thread.__init__(self, daemon=True)
        self.monotonic, self.offset_ns = [], []
        self.stopping = threading.Event()
        self._sample()
        self.start()

    def _sample(self):
        mono = time.monotonic()
        self.offset_ns.append(time.time_ns() - int(mono * 1e9))
        self.monotonic.append(mono)

    def run(self):
        while not self.stopping.wait(0.02):
            self._sample()

    def stop(self):
        self.stopping.set()
        self.join(5)
        self._sample()

    def to_wall(self, mono):
        index = max(0, bisect.bisect_right(self.monotonic, mono) - 1)
        return int(mono * 1e9) + self.offset_ns[index]

    def moved_ms(self):
        """How far the wall clock moved against the monotonic one during the run."""
        return (max(self.offset_ns) - min(self.offset_ns)) / 1e6


def free_port():
    """A TCP port free on the loopback interface right now (for the gateway's web page)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gateway_env(frozen, web_port):
    """The gateway's environment: frozen, nothing may come from lib/ (microdot is frozen too);
    from sources, the support path plus microdot's. The web page listens on ``web_port`` (never
    the PC's default 8080, where `make run` may be serving)."""
    env = {"RBAMP_WEB_PORT": str(web_port)}
    if frozen:
        env["MICROPYPATH"] = ".frozen"
    else:
        env["MICROPYPATH"] = os.pathsep.join(
            [".frozen"] + [os.path.join(ROOT, d) for d in ("lib", "tools", ".cache/umqtt", ".cache/weblib")])
    return env


def measure(interpreter, samples_target, frozen, config_overrides=None, beside=None):
    """Run the gateway until its state reports ``samples_target`` samples.

    ``config_overrides``: config.json keys replaced in the benchmark's config (e.g. ``{"web":
    {"enabled": False}}``). ``beside``: called with the web page's port once the first state
    arrived; returns a handle whose ``stop()`` (called once the samples are in, before the
    gateway stops) returns what it saw, kept in the result as "beside" (tools/bench_web.py opens
    the page this way)."""
    work = tempfile.mkdtemp(prefix="rbamp-bench-gw-")
    broker = xbroker.Broker(os.path.join(work, "broker"))
    broker.start()
    os.environ["XRT_MPY64"] = interpreter  # support_e2e starts the gateway with this interpreter
    watcher = Watcher(broker.port)
    # Watcher stamps arrivals with time.monotonic(); this turns them into the probe's wall clock.
    wall = WallClock()
    config = base_config(broker.port, period_s=PERIOD_S, **(config_overrides or {}))
    web_port = free_port()
    env = gateway_env(frozen, web_port)
    started = time.monotonic()
    # the probe wraps the simulator's methods: the modules must live in the gateway's interpreter
    gateway = Gateway(os.path.join(work, "gw"), config=config, env=env, script=PROBE,
                      simulator="inproc").start()
    beside_handle, beside_result = None, None
    try:
        wait_until(lambda: watcher.on(BASE + "state"), 60, "first state")
        first_publish_s = watcher.on(BASE + "state")[0][3] - started
        if beside is not None:
            beside_handle = beside(web_port)

        def enough_samples():
            states = watcher.json_on(BASE + "state")
            return states and states[-1]["samples"] >= samples_target

        wait_until(enough_samples, samples_target / 5 * 1.5 + 60, "%d samples" % samples_target)
    finally:
        try:
            if beside_handle is not None:
                beside_result = beside_handle.stop()
        finally:
            gateway.stop()
            watcher.stop()
            broker.stop()
            wall.stop()
    try:
        state_messages = watcher.on(BASE + "state")
        states = [json.loads(m[1]) for m in state_messages]
        heap = [(s["samples"], s["heap_used"]) for s in states if s.get("heap_used") is not None]
        arrivals = [(json.loads(m[1])["samples"], wall.to_wall(m[3]))
                    for m in state_messages]
        periods = [(json.loads(m[1])["seq"], wall.to_wall(m[3]))
                   for m in watcher.on(BASE + "period")]
        probe = parse_probe(gateway.log())
        bare_env = dict(os.environ, **env)
        probe_bytes = probe["base"] - _bare_heap(interpreter, bare_env) + probe["hooks"]
        return {"first_publish_s": first_publish_s, "heap": heap, "probe_bytes": probe_bytes,
                "latency": latencies(probe, arrivals, periods),
                "samples": states[-1]["samples"], "uptime_ms": states[-1]["uptime_ms"],
                "web_port": web_port, "beside": beside_result, "log": gateway.log(),
                "wall_clock_moved_ms": wall.moved_ms()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


SIM_SHARE_SNIPPET = """
import gc
gc.collect(); b = gc.mem_alloc()
from rbampsim import RealClock, SimI2C, SimModule, loads
c = RealClock(); m = SimModule('UI2', 4, addr=0x50, clock=c, load=loads.Household(seed=1))
bus = SimI2C([m], clock=c); m.sync()
gc.collect(); print(gc.mem_alloc() - b)
"""


def simulator_share(interpreter, frozen):
    """Heap the simulated module and its bus take in the same interpreter (not on a board)."""
    env = dict(os.environ, MICROPYPATH=".frozen" if frozen else ".frozen:%s/lib:%s/tools" % (ROOT, ROOT))
    out = subprocess.run([interpreter, "-c", SIM_SHARE_SNIPPET], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.split()[-1])


def percentile(values, fraction):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def _latency_row(label, values):
    if not values:
        return "| %s | n/a |" % label
    return "| %s | %.1f / %.1f / %.1f ms (n = %d) |" % (
        label, percentile(values, 0.5), percentile(values, 0.95), max(values), len(values))


def runtime_name(interpreter):
    return "mpy32" if "32" in os.path.basename(interpreter) else os.path.basename(interpreter)


def plot_latency(latency, runtime):
    from benchreport import pyplot, save_plot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key, title, colour in ((axes[0], "state", "state: payload built -> subscriber", "#4575b4"),
                                   (axes[1], "period", "period record: LATCH -> subscriber", "#d73027")):
        values = latency[key]
        if values:
            ax.hist(values, bins=30, color=colour)
            ax.axvline(percentile(values, 0.5), color="black", linewidth=1, label="median")
            ax.axvline(percentile(values, 0.95), color="black", linestyle="--", linewidth=1, label="p95")
            ax.legend(fontsize="small")
        ax.set_title("%s (n = %d)" % (title, len(values)))
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("messages")
    fig.suptitle("Gateway publish latency on %s (frozen build), mosquitto on loopback, paho subscriber"
                 % runtime)
    return save_plot(fig, PLOT_NAME)


def report(interpreter, result, frozen, plot=None):
    heap = result["heap"]
    late = [h for s, h in heap if s >= STEADY_SAMPLES]
    steady = "steady state (>= %d samples)" % STEADY_SAMPLES
    if not late:
        late = [h for s, h in heap[-5:]]
        steady = "last 5 states (fewer than %d samples: not yet steady)" % STEADY_SAMPLES
    lat = result["latency"]
    expected = result["uptime_ms"] // 200
    simulator = simulator_share(interpreter, frozen)
    lines = [
        "Measured with `make bench-gateway` (tools/bench_gateway.py) on **%s**: the real gateway, "
        "host profile (simulated UI2 in real time), `period_s` %d, mosquitto on loopback, a paho "
        "subscriber, interpreter `%s`%s." % (
            runtime_name(interpreter), PERIOD_S, os.path.relpath(interpreter, ROOT),
            " with rbamp, gateway, umqtt and the simulator frozen in (firmware/host_manifest.py), as on a board"
            if frozen else " loading .py sources"),
        "",
        "| figure | value |",
        "|---|---|",
        "| boot to first state publish (process start to arrival at the subscriber) | %.2f s |"
        % result["first_publish_s"],
        "| samples / expected at 5 Hz | %d / %d (%.1f %%) |" % (
            result["samples"], expected, 100.0 * result["samples"] / max(1, expected)),
        "| heap in use after gc, %s | %d .. %d bytes |" % (steady, min(late), max(late)),
        "| heap in use after gc, first state | %d bytes |" % heap[0][1],
        "| of which the simulated module and bus (absent on a board) | %d bytes |" % simulator,
        "| of which the benchmark's probe (absent on a board) | %d bytes |" % result["probe_bytes"],
        "| the gateway without those two, steady state | %d bytes |" % (
            max(late) - simulator - result["probe_bytes"]),
        _latency_row("publish latency, state: payload built to arrival (median / p95 / max)", lat["state"]),
        _latency_row("publish latency, period record: LATCH to arrival (median / p95 / max)", lat["period"]),
        _latency_row("of which LATCH to hand-over to the MQTT link (median / p95 / max)", lat["handover"]),
        "",
        "Target: the gateway's steady-state heap <= 48 KB (the row \"the gateway without those "
        "two\"; on this unix build it still includes the PC's host profile and what the unix port "
        "keeps that a board port does not, so the figure that decides is the RP2040 section's). "
        "Heap is `gc.mem_alloc()` right after `gc.collect()`, reported by the gateway in its state "
        "payload. Loading .py sources instead of frozen bytecode adds about 170 KB of code objects.",
        "",
        "Publish latency is wall-clock time on one PC, from a stamp the gateway process prints "
        "(tools/bench_gateway_probe.py wraps the methods; `time.time_ns()`) to paho's `on_message` "
        "in the subscriber, through mosquitto on loopback. State (QoS 0): from the moment the "
        "publisher builds the payload from the live values it has Metering read (after every round "
        "of 5 Hz samples it checks whether one is due) to its arrival; a payload replaced by a newer one before the link sent it is "
        "not counted. Period record (QoS 1): from the LATCH_PERIOD command on the simulated "
        "bus to the record's arrival; it includes the 50 ms settle the protocol requires before the "
        "snapshot is read, the read, the backlog's RAM stage (a record acknowledged within 5 s is never written to flash) and the MQTT round. "
        "The MQTT link does not poll: a publish call wakes the idle link at once (an "
        "`asyncio.Event` in lib/gateway/mqtt_link.py) and a reader task wakes it when the broker's "
        "answer arrives (asyncio's own poll of the socket, lib/gateway/mqtt_wire.py); a state "
        "handed over while the link awaits a PUBACK (totals, a period record) goes out right after it.",
    ]
    if plot:
        lines += ["", "![publish latency histograms](%s)" % plot]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interpreter", default=os.path.join(ROOT, ".cache/mpy32/micropython-32-frozen"))
    parser.add_argument("--sources", action="store_true", help="the interpreter loads lib/ from .py files")
    parser.add_argument("--samples", type=int, default=STEADY_SAMPLES)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if not os.path.exists(args.interpreter):
        parser.error("no interpreter at %s (make bench-gateway builds it)" % args.interpreter)
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    frozen = not args.sources
    result = measure(args.interpreter, args.samples, frozen)
    plot = plot_latency(result["latency"], runtime_name(args.interpreter)) if args.write else None
    text = report(args.interpreter, result, frozen, plot)
    print(text)
    if args.write:
        from benchreport import replace_section

        replace_section("gateway", text)


if __name__ == "__main__":
    main()
