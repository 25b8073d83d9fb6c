"""The energy-accuracy benchmark (tools/bench_energy.py), two simulated days on mpy32: the totals a
subscriber receives stay within 0.01 % of the simulator's ground truth while every kind of fault
really happened (EMI bursts with ghost bytes, reboots, stale latches, a publish outage)."""

import json
import os
import subprocess
import sys

import pytest
from xrt.pytest_plugin import interpreter_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "tools", "bench_energy.py")


def _mpy32():
    binary = interpreter_for("mpy32")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the mpy32 interpreter is missing (CI=true)")
        pytest.skip("no mpy32 interpreter (`make deps` builds it)")
    return binary


def _run(*args):
    return subprocess.run([sys.executable, BENCH] + list(args), capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def test_two_faulty_days_publish_totals_within_the_target():
    out = _run("--days", "2", "--no-plot", "--json", "--mpy32", _mpy32())
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    figures, summary = result["figures"], result["summary"]
    assert summary["implementation"] == "micropython" and summary["days"] == 2
    # kWh really flowed on every series, so a relative error below 1e-4 means something
    assert all(wh > 5000 for wh in figures["final_energy_wh"]), figures["final_energy_wh"]
    for error in figures["final_error"]:
        assert abs(error) < 0.0001, figures
    # the faults happened and the gateway saw them
    stats = [m["stats"] for m in summary["modules"].values()]
    sims = list(summary["sims"].values())
    counts = summary["counts"]
    assert counts["emi_bursts"] == 16 and sum(s["injected_nacks"] for s in sims) > 0
    # every injected NACK reached the driver (a booting module NACKs too: hence >=)
    assert sum(s["bus_errors"] for s in stats) >= sum(s["injected_nacks"] for s in sims)
    assert sum(s["ghost_reads"] for s in sims) > 0
    assert counts["reboots_scheduled"] == 3 and summary["sims"]["0x50"]["boots"] == 4
    assert summary["modules"]["0x50"]["stats"]["reboots"] == 3
    assert summary["modules"]["0x50"]["stats"]["stale"] >= 1
    assert summary["modules"]["0x50"]["refilled_mwh"] > 0
    # the outage held totals back, and they caught up: the run ends with the latest delivered
    assert counts["outages"] == 1 and summary["delivered"] < summary["published"]
    assert max(figures["max_lag_outage_wh"]) > 10 * max(figures["max_lag_online_wh"])
    assert summary["periods"] == 2 * 1440 and summary["commit_errors"] == 0


def test_bad_arguments_are_one_line_and_a_non_zero_exit(tmp_path):
    out = _run("--days", "0", "--no-plot")
    assert out.returncode == 2 and out.stderr.strip() == "bench_energy: --days must be 1..366, got 0"
    out = _run("--days", "1", "--no-plot", "--mpy32", str(tmp_path / "nothing"))
    assert out.returncode == 2 and "no mpy32 interpreter at" in out.stderr
    assert "Traceback" not in out.stderr
