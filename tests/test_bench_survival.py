"""The survival benchmark runs on mpy32 and reports what the gateway keeps through restarts and
power cuts (one trial each here; `make bench-survival` runs 20). Host-side."""

import os
import subprocess
import sys

from support_e2e import ROOT, require


def test_one_trial_of_each_event_measures_what_the_design_promises():
    mpy32 = os.environ.get("XRT_MPY32") or os.path.join(ROOT, ".cache", "mpy32", "micropython-32-plain")
    require(os.path.exists(mpy32), "the mpy32 interpreter")
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import bench_survival

    result = bench_survival.measure(mpy32, 1)
    assert result["platform"] == "linux" and result["float_bits"] == 32
    window = bench_survival._window_wh
    assert abs(result["restart_wh"][0]) < window(bench_survival.RESTART_W), result
    assert abs(result["cut_with_wh"][0]) < window(bench_survival.CUT_W), result
    assert result["cut_without_wh"][0] > 5 * window(bench_survival.CUT_W), result
    assert 0 < result["commit_virtual_us"][0] <= 50000 and result["commit_cpu_us"][0] > 0
    text = bench_survival.report(result)
    assert "| gateway restart" in text and "mpy32" in text


def test_bad_arguments_are_one_line_and_a_non_zero_exit():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_survival.py"), "--trials", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--trials must be at least 1" in done.stderr
