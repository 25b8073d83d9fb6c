"""The journal benchmark's core, run briefly so it cannot rot: one simulated day per profile on
a small ring (4 blocks x 512 B, 36 slots of 56 B), so the day wraps the ring hundreds of times."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import bench_journal
import xrt


def _day(profile):
    return bench_journal.simulate(profile, 1, block_size=512, blocks=4)


def test_pathological_day_commits_every_4088_mwh_and_wears_evenly():
    r = _day(bench_journal.Pathological())
    # 3680 W on each channel is 1022.2 mWh a second: due after 4 seconds, 21600 times a day.
    assert r["commits"] == r["commits_growth"] == 86400 // 4
    assert r["import_kwh"] == [88, 88]
    assert r["worst_lost_mwh"] == [4088, 4088] or r["worst_lost_mwh"] == [4089, 4089]
    assert r["inline_erases"] == 0 and r["overwrites"] == 0
    assert r["max_erases"] - r["min_erases"] <= 1
    # Every block is erased once per trip round the ring (36 commits), and only then.
    laps = r["commits"] // r["slots"]
    assert laps <= r["max_erases"] <= laps + 1, (laps, r["max_erases"])


def test_household_day_stays_within_the_step_and_uses_both_rules():
    r = _day(bench_journal.Household())
    assert r["commits_growth"] > 1000 and r["commits_interval"] > 100
    assert max(r["worst_lost_mwh"]) <= 5000
    assert 5 <= r["import_kwh"][0] + r["import_kwh"][1] <= 20
    assert r["inline_erases"] == 0 and r["overwrites"] == 0


def test_report_renders_every_profile():
    results = []
    for profile in (bench_journal.Household(), bench_journal.Pathological()):
        r = bench_journal.simulate(profile, 1, block_size=512, blocks=4)
        r["runtime"] = xrt.runtime()
        results.append(r)
    naive = {"commits": 10, "geometry": "4 x 512 B", "erases": 3, "max_erases": 2,
             "min_erases": 0, "programs": 20, "bytes_programmed": 640, "runtime": "mpy64"}
    text = bench_journal._format_report(results, naive, 1)
    assert "| household" in text and "| pathological" in text
    assert "littlefs file lifetime" in text and "1 days, x 365.00" in text


def test_naive_littlefs_rewrite_erases_inside_commits():
    if not xrt.is_micropython():
        raise xrt.Skip("VfsLfs2 exists only on MicroPython")
    r = bench_journal.naive_littlefs(commits=400, block_size=512, blocks=16)
    assert r["commits"] == 400
    assert r["erases"] > 0 and r["max_erases"] >= r["min_erases"]
    assert r["programs"] >= 400


def test_commit_allocation_figure():
    if not xrt.is_micropython():
        raise xrt.Skip("gc.mem_alloc exists only on MicroPython")
    r = bench_journal.commit_allocation(commits=20)
    assert r["small"] == 0
    # A boot's scan of 16 x 4 KiB: a block buffer, the erased block it is compared with, and
    # the newest record decoded; nothing per slot.
    assert 2 * 4096 < r["load"] < 12000, r["load"]
    if xrt.runtime() == "mpy32":
        assert r["big"] > 0  # 48-bit totals are heap ints on a 32-bit build
    else:
        assert r["big"] == 0
