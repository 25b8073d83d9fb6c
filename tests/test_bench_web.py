"""The web page benchmark (tools/bench_web.py) runs and its report parses: a short run on the PC
(mpy64 from sources; mosquitto or amqtt, like the MQTT tests), the chip script's console lines
made into the RP2040 table, the Gateway section's latency figures read back, and a short run on the
emulated Pico W (skipped without Node or the toolchain, except under CI=true). Host-side. No
timing asserts: the figures must be there and be of the right kind, not fast."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import bench_web  # noqa: E402


def _rows(text):
    """{first cell: [the other cells]} of every Markdown table row."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def test_a_short_run_on_the_pc_measures_every_figure(tmp_path):
    interpreter = os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython")
    raw = str(tmp_path / "web.json")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_web.py"), "--interpreter", interpreter,
                          "--sources", "--samples", "40", "--loads", "3", "--no-rp2040", "--json", raw],
                         capture_output=True, text=True, timeout=480)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(out.stdout)

    heap = rows["heap in use after gc, second half of the run (min .. max)"]
    assert len(heap) == 3, heap
    for cell in heap:
        low, high = (int(x) for x in cell.rstrip(" B").split(" .. "))
        assert 0 < low <= high, heap
    delta = rows["**heap: more than with the web page off** (max against max)"]
    assert delta[0] == "-" and all(cell.strip("*").endswith(" B") for cell in delta[1:]), delta
    state = rows["publish latency, state: payload built to arrival (median / p95 / max)"]
    assert "n/a" not in " ".join(state), state  # the probe found the MQTT link's payloads in every run

    with open(raw) as f:
        figures = json.load(f)
    runs = figures["host"]["runs"]
    assert figures["rp2040"] is None
    assert all(run["tracebacks"] == 0 for run in runs.values()), runs
    page = runs["open"]["beside"]
    assert page["events"] > 0 and page["problems"] == [], page  # the live stream delivered state events
    loads = runs["loads"]["loads"]
    assert len(loads) == 3
    for load in loads:
        # the page is one HTML document; the state and the first event are the contract's JSON;
        # loads 2 s apart find the stream of the load before closed
        assert not load["refused"], loads
        assert load["page_bytes"] > 1000 and load["state_bytes"] > 100 and load["event_bytes"] > 100, load
    assert rows["**the three in a row: page load to live values**"][1].endswith("(n = 3)**")
    assert "Against the Gateway section" in out.stdout


CHIP_OFF = """gateway 0.1.0 up: 1 module(s), 2 channel(s), device id bench-rp2040
W metering 150000 60000 0 15 0
M
W done
health: uptime 29 s, heap free 150500 B, used 59500 B, samples 150, periods 0, commits 1, commit errors 0, mains losses 0
"""
CHIP_ON = """gateway 0.1.0 up: 1 module(s), 2 channel(s), device id bench-rp2040
W metering 130000 80000 0 15 1
S no OSError(113,)
W GET 129000 81000 40000 / 200 21000
W GET 129000 81000 30000 /api/state 200 2400
W GET 129000 81000 20000 /api/config 200 900
W GET 129000 81000 29000 /api/state 200 2400
W SSE 129000 81000 3000000 /api/events 200 7300 0
M gateway.config_secrets gateway.jsonstrict
W done
health: uptime 29 s, heap free 128000 B, used 82000 B, samples 150, periods 0, commits 1, commit errors 0, mains losses 0
"""


def test_the_chip_lines_make_the_rp2040_table():
    off, on = bench_web.parse_chip(CHIP_OFF), bench_web.parse_chip(CHIP_ON)
    assert off["done"] and on["done"] and off["clean"] and on["clean"]
    assert off["loaded_again"] == [] and off["loopback"] is None and off["requests"] == []
    assert on["loaded_again"] == ["gateway.config_secrets", "gateway.jsonstrict"]
    assert on["loopback"] == {"answered": False, "detail": "OSError(113,)"}
    assert on["steps"]["metering"] == {"free": 130000, "used": 80000, "us": 0, "detail": ["15", "1"]}
    assert [r["detail"][0] for r in on["requests"]] == ["/", "/api/state", "/api/config", "/api/state",
                                                      "/api/events"]
    text = bench_web.rp2040_report({"off": off, "on": on})
    rows = _rows(text)
    assert rows["**web page on, nobody connected**: gateway metering"][:2] == ["130,000 B", "80,000 B (+20000 B)"]
    assert rows["**web page on**: health line at 29 s"][:2] == ["128,000 B", "82,000 B (+22500 B)"]
    assert "**40.0 ms** on the chip" in rows["web page on: after `GET /`"][2]
    assert "viewers afterwards: 0" in rows["web page on: after `GET /api/events`"][2]
    assert "`gateway.config_secrets`, `gateway.jsonstrict`" in text
    assert "no answer (OSError(113,);" in text


def test_the_gateway_section_latency_is_read_back_and_judged():
    reference = bench_web.gateway_section_latency()
    for key in ("state", "period"):
        median, p95, most = reference[key]
        assert 0 < median <= p95 <= most, reference
    runs = {"open": {"latency": {"state": [1.0] * 19 + [50.0], "period": [reference["period"][2] + 1.0] * 20}}}
    verdict = bench_web._latency_verdict(runs, {"state": (2.0, 3.0, 60.0), "period": reference["period"]})
    state, period = verdict.split(": ", 1)[1].split("; ")
    assert state.endswith(": within"), verdict  # median 1.0 <= 3.0, p95 1.0 <= 60.0
    assert period.endswith("**not within**."), verdict


def test_the_web_page_is_measured_on_the_emulated_chip(tmp_path):
    import support_firmware
    import support_picow

    # the prerequisites first, so that a missing one skips (or fails in CI) with its own reason
    support_picow.ensure_runner()
    support_firmware.pico_w_image()
    support_picow.micropython()
    chip = bench_web.measure_rp2040(str(tmp_path))
    off, on = chip["off"], chip["on"]
    for run in (off, on):
        assert run["clean"] and run["reboots"] == 0 and run["health"], run
        assert int(run["steps"]["metering"]["detail"][0]) >= 10  # metering ran before the figures
    assert off["steps"]["metering"]["detail"][1] == "0" and on["steps"]["metering"]["detail"][1] == "1"
    assert off["requests"] == [] and on["loopback"] is not None
    statuses = {r["detail"][0]: r["detail"][1] for r in on["requests"]}
    assert statuses == {"/": "200", "/api/state": "200", "/api/config": "200", "/api/events": "200"}, on
    sse = on["requests"][-1]
    assert int(sse["detail"][2]) > 0 and sse["detail"][3] == "0", sse  # events sent; the viewer left
    text = bench_web.rp2040_report(chip)
    assert "**No socket from outside reaches the chip there**" in text
