"""Host checks of the benchmark plumbing: the BENCHMARKS.md section writer (on copies, never the
real file), the journal benchmark's plot, and the driver benchmark's bus table coverage."""

import os
import shutil
import subprocess
import sys

import pytest

import bench_driver
import benchreport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sections(text):
    names = []
    for line in text.splitlines():
        if line.startswith("<!-- ") and line.endswith(":begin -->"):
            names.append(line[5:-len(":begin -->")])
    return names


def _copy(tmp_path):
    path = str(tmp_path / "BENCHMARKS.md")
    shutil.copy(os.path.join(ROOT, "BENCHMARKS.md"), path)
    return path


def test_replace_section_changes_only_its_own_section_of_a_copy(tmp_path):
    path = _copy(tmp_path)
    original = open(path).read()
    names = _sections(original)
    assert "driver" in names and "journal" in names and "gateway" in names
    benchreport.replace_section("journal", "| new | table |\n", path=path)
    text = open(path).read()
    begin, end = "<!-- journal:begin -->", "<!-- journal:end -->"
    assert text[text.index(begin):text.index(end) + len(end)] == begin + "\n| new | table |\n" + end
    # Everything outside the journal markers is byte for byte what it was.
    assert text[:text.index(begin)] == original[:original.index(begin)]
    assert text[text.index(end):] == original[original.index(end):]
    assert _sections(text) == names
    assert not [f for f in os.listdir(str(tmp_path)) if f != "BENCHMARKS.md"]  # no temporary left


def test_replace_section_refuses_missing_or_doubled_markers(tmp_path):
    path = str(tmp_path / "doc.md")
    with open(path, "w") as f:
        f.write("<!-- a:begin -->\nx\n<!-- a:end -->\n<!-- a:end -->\n<!-- b:end -->\n<!-- b:begin -->\n")
    before = open(path).read()
    for name in ("a", "b", "missing"):
        with pytest.raises(benchreport.SectionMissing):
            benchreport.replace_section(name, "y", path=path)
    assert open(path).read() == before


WRITER = """
import sys
sys.path.insert(0, %r)
import benchreport
name, rounds, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for k in range(rounds):
    benchreport.replace_section(name, "%%s round %%d" %% (name, k), path=path)
"""


def test_concurrent_benchmarks_lose_no_section_update(tmp_path):
    path = str(tmp_path / "doc.md")
    with open(path, "w") as f:
        f.write("# doc\n<!-- a:begin -->\n<!-- a:end -->\nmiddle\n<!-- b:begin -->\n<!-- b:end -->\n")
    script = WRITER % os.path.join(ROOT, "tools")
    rounds = 200
    writers = [subprocess.Popen([sys.executable, "-c", script, name, str(rounds), path])
               for name in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    text = open(path).read()
    assert "<!-- a:begin -->\na round %d\n<!-- a:end -->" % (rounds - 1) in text
    assert "<!-- b:begin -->\nb round %d\n<!-- b:end -->" % (rounds - 1) in text
    assert text.startswith("# doc\n") and "\nmiddle\n" in text


def test_journal_benchmark_draws_its_wear_plot(tmp_path):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("matplotlib is not installed: `make bench-deps` installs it")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_journal.py"),
                          "--days", "1", "--naive-commits", "300", "--plot", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    png = tmp_path / "journal_wear.png"
    assert "plot: %s" % png in out.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert width > 600 and height > 300, (width, height)
    assert "](%s)" % png in out.stdout  # the report links the plot it drew


def test_journal_benchmark_rejects_a_bad_option_in_one_line():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_journal.py"),
                          "--days", "soon"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stdout.strip() == "bench_journal: --days: not a valid value: soon"
    assert "Traceback" not in out.stderr


def test_driver_bus_table_covers_every_variant_and_protocol():
    rows = bench_driver.bus_costs()
    seen = {(call, variant, protocol) for call, variant, protocol, driver, naive in rows}
    for variant in ("UI1", "UI2", "UI3", "I1", "I2", "I3"):
        for protocol in ("v1.3", "v1.2"):
            assert ("rt", variant, protocol) in seen and ("period", variant, protocol) in seen
        assert ("rt", variant, "v1.2 + DRDY") in seen
    for call, variant, protocol, driver, naive in rows:
        if call == "rt":
            channels = int(variant[-1])
            floats = 2 * channels + (2 + 2 * channels if variant.startswith("UI") else 0)
            assert naive[0] == 4 * floats  # the naive loop: four 1-byte reads a float
            # v1.2: the floats the variant has (no PF on I variants: it needs the voltage)
            read = floats
            if protocol == "v1.3":
                assert driver[0] == 1  # one burst over the variant's span
            elif protocol == "v1.2 + DRDY":
                assert driver[0] == 4 * read  # a single byte-wise pass right after the edge
            else:
                # one pass between two reads of the digest seq, averaged over every phase of the
                # window: a pass that a commit splits is read again, and that is rare
                assert 4 * read + 2 <= driver[0] <= 1.3 * (4 * read + 2), (variant, driver, read)
        assert driver[2] > 0 and naive[2] > 0


def test_gateway_latency_matching_uses_the_right_stamps():
    import bench_gateway

    log = "\n".join([
        "bench-probe base 1200", "bench-probe hooks 300", "info: gateway up",
        "bench-probe latch 1000000000", "bench-probe period 1051000000 7",
        "bench-probe latch 6000000000", "bench-probe period 6052000000 8",
        "bench-probe state 2000000000 10", "bench-probe state 2200000000 11",
        "bench-probe state 2400000000 11",  # two payloads with 11 samples: ambiguous
    ])
    probe = bench_gateway.parse_probe(log)
    assert probe["base"] == 1200 and probe["hooks"] == 300
    states = [(10, 2025000000), (11, 2430000000)]
    periods = [(7, 1100000000), (8, 6090000000), (9, 9000000000)]  # 9 was never stamped
    lat = bench_gateway.latencies(probe, states, periods)
    assert lat["state"] == [25.0]
    assert lat["period"] == [100.0, 90.0]  # each from its own (the last earlier) latch
    assert lat["handover"] == [51.0, 52.0]
    assert bench_gateway.percentile([5, 1, 4, 2, 3], 0.5) == 3
    assert bench_gateway.percentile(list(range(1, 101)), 0.95) == 95


def test_gateway_benchmark_measures_latency_through_a_real_broker():
    """A short run from sources on mpy64: the probe still finds the methods it wraps and every
    figure comes out (needs mosquitto, like the MQTT tests)."""
    interpreter = os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_gateway.py"),
                          "--interpreter", interpreter, "--sources", "--samples", "40"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.stdout.splitlines()
            if line.startswith("| ")}
    state = rows["publish latency, state: payload built to arrival (median / p95 / max)"]
    period = rows["publish latency, period record: LATCH to arrival (median / p95 / max)"]
    handover = rows["of which LATCH to hand-over to the MQTT link (median / p95 / max)"]
    assert "n/a" not in state + period + handover, out.stdout
    median_ms = float(handover.split(" | ")[1].split(" / ")[0])
    # the protocol's 50 ms settle lies between the latch and the record; the probe stamps with the
    # wall clock, the settle runs on the monotonic one, and this machine's wall clock is slewed
    # (seen: 49.8 ms on a loaded CI run): a sanity bound, not a timing claim
    assert median_ms >= 40, handover
    probe = rows["of which the benchmark's probe (absent on a board)"]
    assert 0 < int(probe.split(" | ")[1].split()[0]) < 4096
