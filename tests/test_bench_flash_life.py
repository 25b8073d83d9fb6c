"""The flash-life benchmark's core, run briefly so it cannot rot: a few simulated hours of the
gateway (Gateway.run in virtual time) with the journal and the backlog on counted flash."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import bench_flash_life
import xrt


def _run(placement, backlog, outage=False, hours=3, period_s=60):
    if not xrt.is_micropython():
        raise xrt.Skip("VfsLfs2 (MicroPython's littlefs) exists only on MicroPython")
    return bench_flash_life.simulate({"period_s": period_s, "hours": hours, "placement": placement,
                                      "backlog": backlog, "outage": outage, "fs_blocks": 24})


def test_pico_online_the_backlog_writes_nothing_and_every_record_is_delivered():
    r = _run("pico", "staged")
    assert 1400 <= r["periods_day"] <= 1452 and r["pending_at_end"] == 0
    assert r["backlog_writes_day"] == 0 and sum(r["fs_day"]) == 0, r["fs_day"]
    assert r["backlog_held"] == r["delivered"] >= 170
    assert r["commits_day"] >= r["periods_day"]  # the journal commits at least once per period
    assert r["errors"] == [] and r["commit_errors"] == 0
    # the store's own figures, not constants: a 1-module, 2-channel layout
    assert r["slots"] * r["slot_size"] <= 16 * 4096 and r["record_len"] <= r["slot_size"]


def test_pico_before_the_stage_every_period_costs_block_erases():
    r = _run("pico", "direct")
    assert r["backlog_writes_day"] == 2 * r["periods_day"]  # a record and its mark
    assert sum(r["fs_day"]) >= r["periods_day"], sum(r["fs_day"])


def test_a_daily_outage_writes_that_hour_and_delivers_everything():
    r = _run("pico", "staged", outage=True, hours=5)
    # the outage hour's 60 records, a mark for each in the catch-up, and the flush's mark
    assert 100 <= r["backlog_writes_day"] <= 130, r["backlog_writes_day"]
    assert sum(r["fs_day"]) > 0 and r["pending_at_end"] == 0


def _via_mpy32(placement, backlog, hours=2):
    """The benchmark's own way: a 32-bit MicroPython subprocess with the heap the run needs."""
    if xrt.is_micropython():
        raise xrt.Skip("the host side of the benchmark runs under CPython")
    try:
        binary = bench_flash_life.find_mpy32()
    except SystemExit:
        raise xrt.Skip("no 32-bit MicroPython")
    return bench_flash_life.run_scenario(binary, {"period_s": 60, "hours": hours, "placement": placement,
                                                  "backlog": backlog, "outage": False, "fs_blocks": 72})


def test_stock_journal_file_shares_the_littlefs_and_the_report_renders():
    stock = _via_mpy32("stock", "staged")
    assert stock["journal_day"] is None and sum(stock["fs_day"]) > 0  # the journal file's commits
    assert stock["backlog_writes_day"] == 0 and stock["pending_at_end"] == 0
    before = _via_mpy32("stock", "direct")
    assert before["backlog_writes_day"] == 2 * before["periods_day"]
    assert sum(before["fs_day"]) > sum(stock["fs_day"])
    pico = _via_mpy32("pico", "staged")
    text = bench_flash_life.report([pico, stock, before], 1.0)
    assert "| 60 | Pico W image | staged, broker online |" in text
    assert "| 60 | stock firmware | before: every record and its ack written, broker online |" in text
    assert "Target: >= 20 years at the default config (period_s 60): Pico W image met" in text
    assert "erases per journal commit" in text
