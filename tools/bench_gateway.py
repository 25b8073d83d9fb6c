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


def measure(interpreter, samples_target):
    work = tempfile.mkdtemp(prefix="rbamp-bench-gw-")
    broker = xbroker.Broker(os.path.join(work, "broker"))
    broker.start()
    os.environ["XRT_MPY64"] = interpreter  # support_e2e starts the gateway with this interpreter
    watcher = Watcher(broker.port)
    config = base_config(broker.port, period_s=10)
    started = time.monotonic()
    gateway = Gateway(os.path.join(work, "gw"), config=config).start()
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


def report(interpreter, result):
    heap = result["heap"]
    late = [h for s, h in heap if s >= 1000] or [h for s, h in heap[-5:]]
    lat = sorted(result["latencies"])
    lines = [
        "Measured with `make bench-gateway` (tools/bench_gateway.py): the real main.py, host profile "
        "(simulated UI2 in real time), mosquitto on loopback, interpreter `%s`." % os.path.relpath(interpreter, ROOT),
        "",
        "| figure | value |",
        "|---|---|",
        "| boot to first state publish | %.2f s |" % result["first_publish_s"],
        "| samples / expected at 5 Hz | %d / %d (%.1f %%) |" % (
            result["samples"], result["uptime_ms"] // 200, 100.0 * result["samples"] / max(1, result["uptime_ms"] // 200)),
        "| heap in use after gc, steady state (>= 1000 samples) | %d .. %d bytes |" % (min(late), max(late)),
        "| heap in use after gc, first state | %d bytes |" % heap[0][1],
        "| period record publish latency (median / max) | %s |" % (
            "%.0f / %.0f ms" % (lat[len(lat) // 2] * 1000, lat[-1] * 1000) if lat else "n/a"),
        "",
        "Target: steady-state heap <= 48 KB on mpy32. Heap is `gc.mem_alloc()` right after "
        "`gc.collect()`, reported by the gateway in its state payload; on the unix port it includes "
        "the simulator and the host profile, which a board does not carry.",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--interpreter", default=os.environ.get("XRT_MPY32") or os.path.join(ROOT, ".cache/mpy32/micropython-32-plain"))
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    result = measure(args.interpreter, args.samples)
    text = report(args.interpreter, result)
    print(text)
    if args.write:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        content = open(path).read()
        begin = content.index("<!-- gateway:begin -->") + len("<!-- gateway:begin -->")
        end = content.index("<!-- gateway:end -->")
        open(path, "w").write(content[:begin] + "\n" + text + "\n" + content[end:])


if __name__ == "__main__":
    main()
