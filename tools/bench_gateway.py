"""Gateway benchmark: the real main.py (host profile) under a MicroPython interpreter against a
real broker; reports boot-to-first-publish time, publish latency of period records and the
steady-state heap after 1000 DRDY sample cycles (~200 s of real time: the module's 5 Hz).

    .venv/bin/python tools/bench_gateway.py [--interpreter .cache/mpy32/micropython-32-plain] [--write]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "tests")]

from support_e2e import Gateway, Watcher, base_config  # noqa: E402
from xrt import broker as xbroker  # noqa: E402

BASE = "rbamp/e2e-gw/"


def measure(interpreter, samples_target, frozen):
    work = tempfile.mkdtemp(prefix="rbamp-bench-gw-")
    broker = xbroker.Broker(os.path.join(work, "broker"))
    broker.start()
    os.environ["XRT_MPY64"] = interpreter  # support_e2e starts the gateway with this interpreter
    watcher = Watcher(broker.port)
    config = base_config(broker.port, period_s=10)
    started = time.monotonic()
    env = {"MICROPYPATH": ".frozen"} if frozen else {}  # frozen: nothing may come from lib/
    gateway = Gateway(os.path.join(work, "gw"), config=config, env=env).start()
    try:
        watcher.wait_for(lambda: watcher.on(BASE + "state"), 60, "first state")
        first_publish_s = watcher.on(BASE + "state")[0][3] - started
        heap = []
        deadline = time.monotonic() + samples_target / 5 * 1.5 + 60
        while time.monotonic() < deadline:
            states = watcher.json_on(BASE + "state")
            if states and states[-1]["samples"] >= samples_target:
                break
            time.sleep(1)
        for state in watcher.json_on(BASE + "state"):
            if state.get("heap_used") is not None:
                heap.append((state["samples"], state["heap_used"]))
        latencies = []
        for topic, payload, retain, arrived in watcher.on(BASE + "period"):
            record = json.loads(payload)
            if record.get("ts"):
                latencies.append(time.time() - (time.monotonic() - arrived) - record["ts"])
        return {"first_publish_s": first_publish_s, "heap": heap, "latencies": latencies,
                "samples": watcher.json_on(BASE + "state")[-1]["samples"],
                "uptime_ms": watcher.json_on(BASE + "state")[-1]["uptime_ms"]}
    finally:
        gateway.stop()
        watcher.stop()
        broker.stop()
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
    import subprocess

    env = dict(os.environ, MICROPYPATH=".frozen" if frozen else ".frozen:%s/lib:%s/tools" % (ROOT, ROOT))
    out = subprocess.run([interpreter, "-c", SIM_SHARE_SNIPPET], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.split()[-1])


def report(interpreter, result, frozen):
    heap = result["heap"]
    late = [h for s, h in heap if s >= 1000] or [h for s, h in heap[-5:]]
    lat = sorted(result["latencies"])
    lines = [
        "Measured with `make bench-gateway` (tools/bench_gateway.py): the real main.py, host profile "
        "(simulated UI2 in real time), mosquitto on loopback, interpreter `%s`%s." % (
            os.path.relpath(interpreter, ROOT),
            " with rbamp, gateway, umqtt and the simulator frozen in (firmware/host_manifest.py), as on a board"
            if frozen else " loading .py sources"),
        "",
        "| figure | value |",
        "|---|---|",
        "| boot to first state publish | %.2f s |" % result["first_publish_s"],
        "| samples / expected at 5 Hz | %d / %d (%.1f %%) |" % (
            result["samples"], result["uptime_ms"] // 200, 100.0 * result["samples"] / max(1, result["uptime_ms"] // 200)),
        "| heap in use after gc, steady state (>= 1000 samples) | %d .. %d bytes |" % (min(late), max(late)),
        "| heap in use after gc, first state | %d bytes |" % heap[0][1],
        "| of which the simulated module and bus (absent on a board) | %d bytes |" % simulator_share(interpreter, frozen),
        "| period record: arrival minus its `ts` (median / max; `ts` has 1 s resolution, so these are upper bounds) | %s |" % (
            "%.0f / %.0f ms" % (lat[len(lat) // 2] * 1000, lat[-1] * 1000) if lat else "n/a"),
        "",
        "Target: steady-state heap <= 48 KB on mpy32. Heap is `gc.mem_alloc()` right after "
        "`gc.collect()`, reported by the gateway in its state payload; on the unix port it also "
        "holds the simulated module, its load profile and the host profile, which a board does not "
        "carry. Loading .py sources instead of frozen bytecode adds about 170 KB of code objects.",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--interpreter", default=os.path.join(ROOT, ".cache/mpy32/micropython-32-frozen"))
    parser.add_argument("--sources", action="store_true", help="the interpreter loads lib/ from .py files")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    frozen = not args.sources
    result = measure(args.interpreter, args.samples, frozen)
    text = report(args.interpreter, result, frozen)
    print(text)
    if args.write:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        content = open(path).read()
        begin = content.index("<!-- gateway:begin -->") + len("<!-- gateway:begin -->")
        end = content.index("<!-- gateway:end -->")
        open(path, "w").write(content[:begin] + "\n" + text + "\n" + content[end:])


if __name__ == "__main__":
    main()
