"""Web page benchmark: what the gateway's web page costs in heap, page load time and metering
latency (issue #16), written to the "Web page" section of BENCHMARKS.md.

    .venv/bin/python tools/bench_web.py [--interpreter PATH] [--sources] [--samples N] [--loads N]
                                        [--no-host] [--no-rp2040] [--json F] [--reuse F] [--write]

On the PC, the real gateway as tools/bench_gateway.py runs it (host profile, simulated UI2 in real
time, mosquitto on loopback, the probe that stamps state payloads and period records), by default
on the mpy32 build with our code and microdot frozen in, four times:

1. the web page off (``web.enabled: false``): the baseline;
2. the web server on and idle (nobody connected);
3. a page open: a client doing what the page does in a browser, one live stream
   (``GET /api/events``) and ``GET /api/state`` every 5 s (``PageOpen``);
4. page loads: ``GET /``, then the first ``GET /api/state``, then ``GET /api/events`` up to its
   first event, N times, 2 s apart (``page_load``; tools/bench_web_client.py is the client).

Runs 1-3 give the steady heap (the ``heap_used`` the gateway puts in its MQTT state, after
``gc.collect()``) and the publish latencies bench_gateway measures (state: payload built to
arrival; period record: LATCH to arrival), so the three can be compared row by row.

On the emulated RP2040 (our Pico W image in rp2040js, tools/picow): the chip has no Wi-Fi there
(the CYW43 is not emulated), so no socket from outside reaches it. ``measure_rp2040`` runs the
gateway as the image starts it twice, with the web page off and on (its server then listens on
lwIP, nobody connected), and in the second run hands requests to the gateway's own server through
its connection handler (the guard, then microdot's ``app.handle_request(reader, writer)``) with
in-memory streams, printing the heap at each step (``CHIP_MAIN``).
"""

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (HERE, os.path.join(ROOT, "tests"), os.path.join(ROOT, "lib")):
    if _path not in sys.path:
        sys.path.append(_path)

SAMPLES = 1000  # as bench_gateway: about 200 s of the module's 5 Hz per run
LOADS = 30
LOAD_RUN_SAMPLES = 25  # run 4 only needs the gateway up

from bench_web_client import LOAD_GAP_S, STATE_EVERY_S, BenchError, PageLoads, PageOpen  # noqa: E402


# ---------------------------------------------------------------------- the runs on the PC
def _steady(heap, samples_target):
    """Heap in use of the states in the second half of a run (the first half settles)."""
    late = [used for samples, used in heap if samples >= samples_target // 2]
    return late or [used for _, used in heap[-5:]]


def measure_host(interpreter, frozen, samples=SAMPLES, loads=LOADS, progress=print):
    """The four runs of the module docstring on the PC (tools/bench_gateway.measure)."""
    import bench_gateway

    # bench_gateway points XRT_MPY64 at its interpreter (support_e2e starts the gateway with it);
    # the RP2040 part's tools need the real 64-bit one back
    saved = os.environ.get("XRT_MPY64")
    try:
        return _measure_host(bench_gateway, interpreter, frozen, samples, loads, progress)
    finally:
        if saved is None:
            os.environ.pop("XRT_MPY64", None)
        else:
            os.environ["XRT_MPY64"] = saved


def _measure_host(bench_gateway, interpreter, frozen, samples, loads, progress):
    runs = {}
    plan = (("off", {"web": {"enabled": False}}, None),
            ("idle", None, None),
            ("open", None, PageOpen))
    for name, overrides, beside in plan:
        progress("bench_web: run '%s' (%d samples, about %d s)" % (name, samples, samples // 5 + 10))
        result = bench_gateway.measure(interpreter, samples, frozen, config_overrides=overrides, beside=beside)
        result["steady_heap"] = _steady(result["heap"], samples)
        log = result.pop("log")
        result["tracebacks"] = log.count("Traceback")
        runs[name] = result
        progress("bench_web: run '%s': heap %d .. %d B, the wall clock moved %.1f ms" % (
            name, min(result["steady_heap"]), max(result["steady_heap"]), result["wall_clock_moved_ms"]))
    progress("bench_web: run 'loads' (%d page loads)" % loads)
    result = bench_gateway.measure(interpreter, LOAD_RUN_SAMPLES, frozen,
                                   beside=lambda port: PageLoads(port, loads))
    runs["loads"] = {"loads": result["beside"]["loads"], "tracebacks": result.pop("log").count("Traceback")}
    return {"runtime": bench_gateway.runtime_name(interpreter), "interpreter": interpreter,
            "frozen": frozen, "samples": samples, "runs": runs}


# ---------------------------------------------------------------------- the report
def percentile(values, fraction):
    from bench_gateway import percentile as nearest_rank

    return nearest_rank(values, fraction)


def _spread(values, unit="ms", digits=1):
    """'median / p95 / max unit (n = N)' or n/a."""
    if not values:
        return "n/a"
    fmt = "%%.%df" % digits
    return "%s / %s / %s %s (n = %d)" % (fmt % percentile(values, 0.5), fmt % percentile(values, 0.95),
                                         fmt % max(values), unit, len(values))


def gateway_section_latency(path=None):
    """The publish latencies the Gateway section of BENCHMARKS.md holds now: {"state": (median,
    p95, max), "period": (...)} in ms; a row that is missing is left out."""
    import benchreport

    with open(path or benchreport.BENCHMARKS) as f:
        text = f.read()
    begin, end = text.find("<!-- gateway:begin -->"), text.find("<!-- gateway:end -->")
    found = {}
    for line in text[begin:end].splitlines():
        for key, label in (("state", "publish latency, state:"), ("period", "publish latency, period record:")):
            if line.startswith("| " + label):
                numbers = line.split(" | ")[1].split(" ms")[0].split(" / ")
                found[key] = tuple(float(x) for x in numbers)
    return found


def _heap_row(runs, label, pick):
    cells = []
    for name in ("off", "idle", "open"):
        cells.append(pick(runs[name]))
    return "| %s | %s |" % (label, " | ".join(cells))


def host_report(host, reference=None):
    runs = host["runs"]
    off = max(runs["off"]["steady_heap"])
    lines = [
        "Measured with `make bench-web` (tools/bench_web.py) on **%s**: the gateway as `make bench-gateway` "
        "runs it (interpreter `%s`%s; host profile, simulated UI2 in real time, `period_s` 5, mosquitto on "
        "loopback, a paho subscriber and the latency probe), %d samples (about %d s) per run, with the web "
        "page off (`web.enabled: false`), with the web server on and nobody connected, and with a page open "
        "(a client doing what the page does: one live stream, `GET /api/events`, and `GET /api/state` every "
        "%d s; the page polls only while its stream is down, so this is the heavier case)." % (host["runtime"], os.path.relpath(host["interpreter"], ROOT),
                    " with rbamp, gateway, microdot, umqtt and the simulator frozen in" if host["frozen"]
                    else " loading .py sources", host["samples"], host["samples"] // 5, STATE_EVERY_S),
        "",
        "| figure (%s) | web page off | web server idle | page open |" % host["runtime"],
        "|---|---|---|---|",
        _heap_row(runs, "heap in use after gc, second half of the run (min .. max)",
                  lambda r: "%d .. %d B" % (min(r["steady_heap"]), max(r["steady_heap"]))),
        _heap_row(runs, "**heap: more than with the web page off** (max against max)",
                  lambda r: "-" if r is runs["off"] else "**%+d B**" % (max(r["steady_heap"]) - off)),
        _heap_row(runs, "samples / expected at 5 Hz",
                  lambda r: "%d / %d" % (r["samples"], r["uptime_ms"] // 200)),
        _heap_row(runs, "publish latency, state: payload built to arrival (median / p95 / max)",
                  lambda r: _spread(r["latency"]["state"])),
        _heap_row(runs, "publish latency, period record: LATCH to arrival (median / p95 / max)",
                  lambda r: _spread(r["latency"]["period"])),
        _heap_row(runs, "of which LATCH to hand-over to the MQTT link",
                  lambda r: _spread(r["latency"]["handover"])),
    ]
    page = runs["open"]["beside"]
    lines += [
        "",
        "The open page (run 3): %d live events in %.0f s, gap between events %s; `GET /api/state` %s; "
        "%d reconnects of the live stream; %s." % (
            page["events"], page["seconds"], _spread(page["event_gap_ms"], digits=0), _spread(page["state_ms"]),
            page["reconnects"], "no errors" if not page["problems"] else "errors: " + "; ".join(page["problems"][:3])),
    ]
    loads = runs["loads"]["loads"]
    live = [x for x in loads if not x["refused"]]
    if loads:
        lines += [
            "",
            "Page load on %s, %d loads %.0f s apart from a fresh gateway (nothing else open); each request on "
            "a new connection, timed from connect to the last byte (a client of raw sockets, "
            "tools/bench_web_client.py, on the same PC); the live stream was refused (503, streams at the "
            "server's cap) in %d of them:" % (host["runtime"], len(loads), LOAD_GAP_S, len(loads) - len(live)),
            "",
            "| request | size | time (median / p95 / max) |",
            "|---|---|---|",
            "| `GET /` (the page: one HTML document, no other assets) | %d B | %s |" % (
                loads[0]["page_bytes"], _spread([x["page_ms"] for x in loads])),
            "| the first `GET /api/state` | %d B | %s |" % (
                loads[0]["state_bytes"], _spread([x["state_ms"] for x in loads])),
            "| `GET /api/events` to its first `state` event | %s B of data | %s |" % (
                live[0]["event_bytes"] if live else "-", _spread([x["event_ms"] for x in live])),
            "| **the three in a row: page load to live values** | - | **%s** |" % _spread([x["total_ms"] for x in live]),
        ]
    tracebacks = sum(r["tracebacks"] for r in runs.values())
    moved = max(r.get("wall_clock_moved_ms", 0.0) for r in runs.values())
    lines += ["", "Gateway logs of the four runs: %s. The PC's wall clock (the probe's stamps) moved by up to "
              "%.1f ms against its monotonic clock (the subscriber's) during a run; every arrival is converted "
              "with the offset sampled within 20 ms before it (tools/bench_gateway.py `WallClock`)." % (
                  "no traceback" if not tracebacks else "**%d tracebacks**" % tracebacks, moved)]
    if reference:
        lines += ["", _latency_verdict(runs, reference)]
    return "\n".join(lines)


def _latency_verdict(runs, reference):
    """The page-open run against the Gateway section's figures (the issue: latency must stay
    within them)."""
    parts = []
    for key, label in (("state", "state"), ("period", "period record")):
        ref = reference.get(key)
        values = runs["open"]["latency"][key]
        if ref is None or not values:
            parts.append("%s: not compared (no figure)" % label)
            continue
        median, p95 = percentile(values, 0.5), percentile(values, 0.95)
        within = median <= ref[1] and p95 <= ref[2]
        parts.append("%s %.1f / %.1f ms against %.1f / %.1f / %.1f ms: %s" % (
            label, median, p95, ref[0], ref[1], ref[2], "within" if within else "**not within**"))
    return ("Against the Gateway section (median / p95 / max there; \"within\": the page-open median at "
            "most the p95 there and its p95 at most the max there): " + "; ".join(parts) + ".")


PLOT_NAME = "web_heap"


def plot_host(host):
    """Heap in use over each run (left) and the page loads (right)."""
    from benchreport import pyplot, save_plot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    runs = host["runs"]
    for name, label, colour in (("off", "web page off", "#999999"), ("idle", "web server idle", "#4575b4"),
                                ("open", "page open", "#d73027")):
        heap = runs[name]["heap"]
        axes[0].plot([s for s, _ in heap], [h / 1024.0 for _, h in heap], label=label, color=colour, linewidth=1)
    axes[0].set_xlabel("samples (5 Hz)")
    axes[0].set_ylabel("heap in use after gc (KiB)")
    axes[0].set_title("gateway heap, %s" % host["runtime"])
    axes[0].legend(fontsize="small")
    loads = runs["loads"]["loads"]
    live = [x for x in loads if not x["refused"]]
    series = [("GET /", [x["page_ms"] for x in loads]), ("/api/state", [x["state_ms"] for x in loads]),
              ("first event", [x["event_ms"] for x in live]), ("all three", [x["total_ms"] for x in live])]
    axes[1].boxplot([values for _, values in series], showfliers=True)
    axes[1].set_xticks(range(1, len(series) + 1), [name for name, _ in series])
    axes[1].set_ylabel("ms")
    axes[1].set_title("page load, %d loads" % len(loads))
    fig.suptitle("Web page on %s (frozen build), real-time simulated UI2" % host["runtime"])
    return save_plot(fig, PLOT_NAME)


# ---------------------------------------------------------------------- the emulated RP2040
# main.py on the chip's filesystem: the gateway as the image's frozen main.py starts it, plus a
# task that waits until it meters and then prints the heap; when the gateway has its web server
# (``gateway.web``: built, listening on lwIP), the task tries a real connection to it over the
# chip's loopback, then hands requests to the server's connection handler (the guard's checks,
# then microdot's app.handle_request) with in-memory streams in place of a socket (none from
# outside reaches the emulated chip: its CYW43 is not emulated). One line per step:
#   W <step> <heap free> <heap used> <emulated us of the step> [<detail>...]
#   S <outcome>                          the loopback connection
#   M <module>...                        config-loader modules loaded again by then
# with the heap read after gc.collect(). The gateway's own health line 30 s after boot follows.
CHIP_MAIN = """import asyncio, gc, sys, time
from gateway import app as _gwapp

def _line(step, us, *detail):
    gc.collect()
    print("W", step, gc.mem_free(), gc.mem_alloc(), us, *detail)

class _Reader:
    def __init__(self, data):
        self.data = data
        self.at = 0
    async def read(self, n=-1):
        end = len(self.data) if n < 0 else min(len(self.data), self.at + n)
        chunk = self.data[self.at:end]
        self.at = end
        return chunk

class _Writer:
    # a connection's writer (asyncio StreamWriter): counts what the server sends, keeps the status
    # line; after `events` SSE events it fails like a socket whose peer left (ECONNRESET), as a
    # closed browser tab does
    def __init__(self, events=None):
        self.head = b""
        self.sent = 0
        self.events = events
        self.seen = 0
    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        if len(self.head) < 64:
            self.head += bytes(data[:64])
        self.sent += len(data)
        if self.events is not None and b"event: state" in data:
            self.seen += 1
            if self.seen >= self.events:
                raise OSError(104)
    async def drain(self):
        pass
    def close(self):
        pass
    async def wait_closed(self):
        pass
    def get_extra_info(self, name):
        return ("10.0.0.2", 50000)

def _status(writer):
    parts = writer.head.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "-"

async def _request(web, path, events=None):
    writer = _Writer(events)
    reader = _Reader(b"GET " + path + b" HTTP/1.1\\r\\nHost: pico\\r\\nAccept: */*\\r\\n\\r\\n")
    t0 = time.ticks_us()
    await web._serve(reader, writer)  # what the listening socket hands each connection to
    return time.ticks_diff(time.ticks_us(), t0), _status(writer), writer.sent

async def _loopback(port):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
        writer.write(b"GET /api/state HTTP/1.1\\r\\nHost: pico\\r\\n\\r\\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.read(64), 3)
        writer.close()
        print("S answered", head.split(b"\\r\\n")[0].decode().replace(" ", "_"))
    except Exception as exc:
        print("S no", repr(exc).replace(" ", "_"))

async def _bench(gateway):
    while gateway.metering is None or gateway.metering.samples < 10:
        await asyncio.sleep_ms(200)
    await asyncio.sleep_ms(1000)
    web = gateway.web
    _line("metering", 0, gateway.metering.samples, 0 if web is None else 1)
    if web is not None:
        await _loopback(web.port)
        for path in (b"/", b"/api/state", b"/api/config", b"/api/state"):
            us, status, sent = await _request(web, path)
            _line("GET", us, path.decode(), status, sent)
        us, status, sent = await _request(web, b"/api/events", events=3)
        await asyncio.sleep_ms(100)  # the stream lets go at its next turn
        _line("SSE", us, "/api/events", status, sent, gateway.viewers)
    print("M", *[name for name in _gwapp.CONFIG_LOADER_MODULES if name in sys.modules])
    print("W done")

_run = _gwapp.Gateway.run

async def _run_with_bench(self):
    asyncio.create_task(_bench(self))
    await _run(self)

_gwapp.Gateway.run = _run_with_bench
_gwapp.main()
"""

CHIP_RUN_S = 45  # emulated seconds after "up": the bench task, then the health line at 30 s
# Wi-Fi and a broker configured, as on a board in use (its MQTT link and backlog are in the heap
# figures): the radio's start fails once on the emulator and the gateway meters on without it.
# Without them the config is in safe mode, which opens setup mode at boot (another state than a
# board in use); with them setup mode would open only after setup.wifi_wait_s (300 s) of failed
# Wi-Fi, after this run.
CHIP_CONFIG_EXTRA = {"wifi": {"ssid": "home", "password": "not-a-real-secret"}, "mqtt": {"host": "192.168.1.10"}}


def parse_chip(console):
    """The W, S and M lines and the gateway's health lines of the chip's console."""
    import bench_rp2040

    steps, requests, loaded, loopback = {}, [], [], None
    for line in console.splitlines():
        fields = line.split()
        if fields[:1] == ["M"]:
            loaded = fields[1:]
        elif fields[:1] == ["S"] and len(fields) == 3:
            loopback = {"answered": fields[1] == "answered", "detail": fields[2].replace("_", " ")}
        if len(fields) < 5 or fields[0] != "W":
            continue
        entry = {"free": int(fields[2]), "used": int(fields[3]), "us": int(fields[4]), "detail": fields[5:]}
        if fields[1] in ("GET", "SSE"):
            requests.append(entry)
        else:
            steps[fields[1]] = entry
    health = [tuple(int(x) for x in m.groups()) for m in bench_rp2040.HEALTH.finditer(console)]
    return {"steps": steps, "requests": requests, "health": health, "loaded_again": loaded,
            "loopback": loopback, "done": "W done" in console,
            "clean": "Traceback" not in console}


def _chip_run(tmp, web_enabled):
    import bench_rp2040

    config = dict(bench_rp2040.CONFIG, **CHIP_CONFIG_EXTRA)
    config["web"] = {"enabled": web_enabled}
    files = {"config.json": config, "main.py": CHIP_MAIN}
    result = bench_rp2040._run(tmp, files=files, sims=[bench_rp2040.SIM_V13], timeout_s=CHIP_RUN_S + 60,
                               steps=[{"wait": bench_rp2040.UP}, {"run_s": CHIP_RUN_S}])
    if result.exit != 0:
        raise BenchError("the chip run stopped early: %s" % result.reason)
    chip = parse_chip(result.console)
    chip["emulated_s"], chip["wall_s"], chip["reboots"] = result.emulated_s, result.wall_s, result.reboots
    if not chip["done"] or result.reboots or not chip["health"]:
        tail = result.console.strip().splitlines()[-5:]
        raise BenchError("the chip did not finish the web steps (%d resets): %s" % (result.reboots, " / ".join(tail)))
    return chip


def measure_rp2040(tmp):
    """The gateway on the emulated Pico W with the web page off, then on (module docstring)."""
    import bench_rp2040

    bench_rp2040.firmware()
    return {"off": _chip_run(os.path.join(tmp, "off"), False), "on": _chip_run(os.path.join(tmp, "on"), True)}


def rp2040_report(chip):
    import bench_rp2040

    off, on = chip["off"], chip["on"]
    base_off, base_on = off["steps"]["metering"], on["steps"]["metering"]
    health_off, health_on = off["health"][0], on["health"][0]

    def row(label, free, used, against, how):
        delta = "" if against is None else " (%+d B)" % (used - against)
        return "| %s | %s B | %s B%s | %s |" % (label, format(free, ","), format(used, ","), delta, how)

    lines = [
        "On the emulated RP2040 (`make bench-web`: our Pico W image, %s, on %s; a simulated UI2 on I2C0; "
        "config with Wi-Fi and a broker, whose radio never starts: the CYW43 is not emulated). **No "
        "socket from outside reaches the chip there**, so no browser: the gateway runs as the image "
        "starts it, once with `web.enabled: false` and once with the web page on (its server built and "
        "listening on lwIP, 0.0.0.0:80, nobody connected); in the second run a task in the same asyncio "
        "loop then hands requests to the gateway's own server (`gateway.web`) through its connection "
        "handler (the guard's checks, then microdot's `app.handle_request(reader, writer)`) with "
        "in-memory streams in place of a socket: what the chip holds and spends for the page, without "
        "the socket buffers a connected client adds." % (bench_rp2040.MICROPYTHON, bench_rp2040.RP2040JS),
        "",
        "| step (emulated RP2040) | heap free | heap used | how |",
        "|---|---:|---:|---|",
        row("web page off: gateway metering", base_off["free"], base_off["used"], None,
            "after %s samples, `gc.collect()`" % base_off["detail"][0]),
        row("web page off: health line at %d s" % health_off[0], health_off[1], health_off[2], None,
            "the gateway's own line (after `gc.collect()`)"),
        row("**web page on, nobody connected**: gateway metering", base_on["free"], base_on["used"],
            base_off["used"], "after %s samples; against the page off" % base_on["detail"][0]),
        row("**web page on**: health line at %d s" % health_on[0], health_on[1], health_on[2], health_off[2],
            "against the page off's health line, after the requests below"),
    ]
    for entry in on["requests"]:
        path, status, sent = entry["detail"][0], entry["detail"][1], int(entry["detail"][2])
        if len(entry["detail"]) > 3:
            how = "3 events, then the client leaves: %d B sent in %.1f ms; viewers afterwards: %s" % (
                sent, entry["us"] / 1000.0, entry["detail"][3])
        else:
            how = "status %s, %d B sent, **%.1f ms** on the chip" % (status, sent, entry["us"] / 1000.0)
        lines.append(row("web page on: after `GET %s`" % path, entry["free"], entry["used"], base_on["used"],
                         how + "; against the page on, before the requests"))
    loopback = on["loopback"]
    if loopback is not None:
        lines += ["", "A connection to the server over the chip's own loopback (127.0.0.1:80, "
                  "`asyncio.open_connection`): %s." % (
                      "answered `%s`" % loopback["detail"] if loopback["answered"]
                      else "no answer (%s; 113 is EHOSTUNREACH: no route to 127.0.0.1, lwIP's loopback interface "
                      "is not in the image)" % loopback["detail"])]
    if on["loaded_again"]:
        lines += ["", "After these requests, modules of the config loader, which the gateway lets go after boot "
                  "to keep its RAM (`gateway.app.CONFIG_LOADER_MODULES`), are loaded again and stay: %s "
                  "(`GET /api/config`)." % ", ".join("`%s`" % name for name in on["loaded_again"])]
    lines += ["", "Times are emulated (rp2040js counts cycles at 125 MHz; flash wait states and XIP cache "
              "misses are not modelled, see the RP2040 section): a request's time is the emulated time "
              "the connection handler took, from the request's first byte to the last byte handed to the "
              "writer, while the gateway's own tasks run in the same loop (a route that never awaits runs "
              "through; the live stream waits for the gateway's rounds of live values, about one a "
              "second). Consoles %s; no reset in either run." % (
                  "clean" if off["clean"] and on["clean"] else "**with a traceback**")]
    return "\n".join(lines)


def report(host, chip, chip_error=None, plot=None, reference=None):
    parts = []
    if host is not None:
        parts.append(host_report(host, reference))
        if plot:
            parts += ["", "![gateway heap per run and page loads](%s)" % plot]
    if chip is not None:
        parts += ["", rp2040_report(chip)]
    elif chip_error:
        parts += ["", "The emulated RP2040 was not measured: %s." % chip_error]
    return "\n".join(parts).strip("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interpreter", default=os.path.join(ROOT, ".cache/mpy32/micropython-32-frozen"))
    parser.add_argument("--sources", action="store_true", help="the interpreter loads lib/ from .py files")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="samples per PC run (default %d)" % SAMPLES)
    parser.add_argument("--loads", type=int, default=LOADS, help="page loads (default %d)" % LOADS)
    parser.add_argument("--no-host", action="store_true", help="skip the PC runs")
    parser.add_argument("--no-rp2040", action="store_true", help="skip the emulated RP2040")
    parser.add_argument("--json", help="also save the raw figures to this file")
    parser.add_argument("--reuse", help="take the parts skipped (--no-host, --no-rp2040) from an earlier --json")
    parser.add_argument("--write", action="store_true", help="replace the web section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.samples < 10 or args.loads < 1:
        parser.error("--samples must be at least 10 and --loads at least 1")
    if not args.no_host and not os.path.exists(args.interpreter):
        parser.error("no interpreter at %s (make bench-web builds it)" % args.interpreter)
    host = chip = chip_error = None
    if args.reuse:
        with open(args.reuse) as f:
            earlier = json.load(f)
        host = earlier["host"] if args.no_host else None
        chip, chip_error = (earlier["rp2040"], earlier["rp2040_error"]) if args.no_rp2040 else (None, None)
    if args.write and args.no_host and host is None:
        parser.error("--write needs the PC figures: drop --no-host or --reuse a --json that has them")

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"host": host, "rp2040": chip, "rp2040_error": chip_error}, f, indent=1)

    if not args.no_rp2040:
        import bench_rp2040

        print("bench_web: the emulated RP2040", file=sys.stderr)
        try:
            chip = measure_rp2040(tempfile.mkdtemp(prefix="bench-web-rp2040-"))
        except (bench_rp2040.BenchError, BenchError) as exc:  # a missing toolchain or Node: said in the report
            chip_error = str(exc)
        save()
    if not args.no_host:
        try:
            host = measure_host(args.interpreter, not args.sources, args.samples, args.loads,
                                progress=lambda text: print(text, file=sys.stderr))
        except BenchError as exc:
            print("bench_web: %s" % exc, file=sys.stderr)
            return 1
        save()
    plot = plot_host(host) if args.write and host is not None else None
    text = report(host, chip, chip_error, plot, gateway_section_latency())
    print(text)
    if args.write:
        from benchreport import replace_section

        replace_section("web", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
